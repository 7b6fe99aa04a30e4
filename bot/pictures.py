"""Pictures of a case: the suspect's contact graph and the view timeline, as SVG (web) and small PNG (alert cards).

Both formats are drawn from one scene of shapes, so the web page and the card show the same thing. Children
appear as short labels ("child A") unless the caller reveals them; the PNG for cards never names anyone.
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any, Protocol

from groomguard.cases import Case
from groomguard.records import ContactEdge, RequestRecord

log = logging.getLogger(__name__)

#: Children drawn on the graph; the rest are counted in one "+N more" label.
MAX_NODES = 24
#: Hours of the view timeline, ending at the hour of the latest view-spike finding.
TIMELINE_HOURS = 48
#: How far back the graph looks for the suspect's contacts before the case opened.
GRAPH_LOOKBACK = timedelta(days=28)

# Colours chosen to stay apart for the common colour-vision deficiencies; line style carries the meaning too.
INK = "#1f2933"
MUTED = "#7b8794"
SUSPECT = "#b42318"
CHILD = "#f7b955"
OTHER = "#8fb8de"
ACCEPTED = "#1f2933"
REFUSED = "#b42318"
NO_ANSWER = "#9aa5b1"
MINOR_VIEWS = "#b42318"
ALL_VIEWS = "#d9dee4"
BACKGROUND = "#ffffff"

#: How each answer is drawn: (stroke colour, dash pattern, words for the legend).
EDGE_STYLE: dict[str, tuple[str, tuple[int, ...], str]] = {
    "accepted": (ACCEPTED, (), "accepted"),
    "rejected": (REFUSED, (6, 4), "refused"),
    "expired": (NO_ANSWER, (2, 4), "no answer"),
    "pending": (NO_ANSWER, (2, 4), "no answer yet"),
    "": (MUTED, (), "contact (reply, mention)"),
}
HOW = {
    "friend": "friend request",
    "follow": "follow",
    "dm": "DM request",
    "invite": "invite",
    "mention": "mention",
    "reply": "reply",
}


def child_label(index: int) -> str:
    """'child A' … 'child Z', 'child AA' …: short, stable labels in the order the case lists children."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return f"child {letters}"


def child_labels(children: Sequence[str]) -> dict[str, str]:
    """Each child of a case → its short label."""
    return {child: child_label(i) for i, child in enumerate(children)}


# -- what is drawn ---------------------------------------------------------------------


@dataclass(frozen=True)
class GraphNode:
    """One child the suspect reached: its label, the real id (shown only when revealed), how and how it ended."""

    label: str
    account: str
    how: str = ""
    answer: str = ""


@dataclass(frozen=True)
class ContactGraph:
    """The suspect and the children the case counts; other (non-child) contacts are only counted."""

    nodes: tuple[GraphNode, ...]
    others: int = 0
    suspect_label: str = "suspect"


@dataclass(frozen=True)
class ViewTimeline:
    """Views by the suspect per hour: of minors' posts and in all; `spike` marks the hours a finding flagged."""

    hours: tuple[tuple[datetime, int, int], ...]
    spikes: frozenset[datetime] = frozenset()

    @property
    def empty(self) -> bool:
        return not any(total for _, _, total in self.hours)


class PictureReader(Protocol):
    """The store reads the pictures need (both SQLite and PostgreSQL stores have them)."""

    async def contacts_from(
        self, community: str, source: str, since: datetime, targets: Sequence[str]
    ) -> list[ContactEdge]: ...

    async def requests_from(self, community: str, source: str, since: datetime) -> list[RequestRecord]: ...

    async def viewer_buckets(self, community: str, viewer: str, from_hour: int) -> list[tuple[int, int, int]]: ...


async def contact_graph(reader: PictureReader, case: Case) -> ContactGraph:
    """The case's children with how the suspect first reached each one and how the request ended."""
    since = case.opened_at - GRAPH_LOOKBACK
    edges = await reader.contacts_from(case.community, case.suspect, since, case.children)
    requests = await reader.requests_from(case.community, case.suspect, since)
    first: dict[str, ContactEdge] = {}
    for edge in sorted(edges, key=lambda e: e.at):
        first.setdefault(edge.target, edge)
    answers: dict[str, str] = {}
    for record in sorted(requests, key=lambda r: r.requested_at):
        # The latest request to a child says where things stand now.
        answers[record.target] = record.status
    labels = child_labels(case.children)
    nodes = tuple(
        GraphNode(
            label=labels[child],
            account=child,
            how=HOW.get(first[child].kind, first[child].kind) if child in first else "",
            answer=answers.get(child, ""),
        )
        for child in case.children
    )
    children = set(case.children)
    others = len({e.target for e in edges if e.target not in children and e.target != case.suspect})
    return ContactGraph(nodes=nodes, others=others)


async def view_timeline(reader: PictureReader, case: Case) -> ViewTimeline:
    """The suspect's views per hour over the TIMELINE_HOURS up to the latest view-spike finding."""
    reason = case.reasons.get("view_spike")
    end = datetime.fromisoformat(reason["at"]) if reason else case.updated_at
    end_hour = int(end.timestamp()) // 3600
    start_hour = end_hour - TIMELINE_HOURS + 1
    counts = {h: (m, t) for h, m, t in await reader.viewer_buckets(case.community, case.suspect, start_hour)}
    hours = tuple(
        (datetime.fromtimestamp(h * 3600, UTC), *counts.get(h, (0, 0))) for h in range(start_hour, end_hour + 1)
    )
    spikes = frozenset([datetime.fromtimestamp(end_hour * 3600, UTC)]) if reason else frozenset()
    return ViewTimeline(hours=hours, spikes=spikes)  # type: ignore[arg-type]


def has_view_spike(case: Case) -> bool:
    return "view_spike" in case.reasons


# -- a scene of shapes, drawn as SVG or PNG --------------------------------------------


@dataclass(frozen=True)
class Shape:
    """One primitive: 'line' (x, y, x2, y2), 'circle' (x, y, r), 'rect' (x, y, w=x2, h=y2) or 'text' (x, y)."""

    kind: str
    x: float
    y: float
    x2: float = 0
    y2: float = 0
    r: float = 0
    fill: str = "none"
    stroke: str = "none"
    width: float = 1
    dash: tuple[int, ...] = ()
    text: str = ""
    size: int = 12
    anchor: str = "middle"
    bold: bool = False
    #: Accessible name of a shape that stands for something (a node, a bar): SVG <title>, and a test hook.
    name: str = ""
    role: str = ""


@dataclass
class Scene:
    """Shapes on a canvas, with a title and a description for screen readers."""

    width: int
    height: int
    title: str
    description: str
    shapes: list[Shape] = field(default_factory=list)

    def add(self, *shapes: Shape) -> None:
        self.shapes.extend(shapes)


def graph_scene(
    graph: ContactGraph, revealed: Mapping[str, str] | None = None, width: int = 640, height: int = 420
) -> Scene:
    """The contact graph: suspect in the middle, each child on a ring, edges styled by how the request ended.

    `revealed` maps a child's account to the name to print beside its label (web reveal); without it no
    account is named anywhere in the picture.
    """
    revealed = revealed or {}
    shown = graph.nodes[:MAX_NODES]
    refused = sum(1 for n in graph.nodes if n.answer in ("rejected", "expired"))
    scene = Scene(
        width,
        height,
        "Contact graph",
        f"The suspect reached {len(graph.nodes)} child{'ren' if len(graph.nodes) != 1 else ''}"
        f" ({refused} refused or unanswered)"
        + (f" and {graph.others} other account{'s' if graph.others != 1 else ''}" if graph.others else "")
        + ".",
    )
    cx, cy = width / 2, (height - 40) / 2 + 4
    ring = min(cx, cy) - 44
    positions: list[tuple[float, float]] = []
    for i in range(len(shown)):
        angle = -math.pi / 2 + 2 * math.pi * i / max(1, len(shown))
        positions.append((cx + ring * math.cos(angle), cy + ring * math.sin(angle)))
    for node, (x, y) in zip(shown, positions, strict=True):
        colour, dash, _ = EDGE_STYLE.get(node.answer, EDGE_STYLE[""])
        scene.add(Shape("line", cx, cy, x, y, stroke=colour, width=2, dash=dash))
    if graph.others:
        ox, oy = 46.0, height - 70.0
        scene.add(Shape("line", cx, cy, ox, oy, stroke=OTHER, width=2, dash=(1, 3)))
        scene.add(
            Shape("circle", ox, oy, r=18, fill=OTHER, stroke=INK, name=f"{graph.others} other contacts", role="other")
        )
        scene.add(Shape("text", ox, oy + 4, text=str(graph.others), size=12, bold=True))
        scene.add(Shape("text", ox, oy + 32, text="other contacts", size=10, fill=MUTED))
    for node, (x, y) in zip(shown, positions, strict=True):
        how = f", {node.how}" if node.how else ""
        ended = f", {EDGE_STYLE.get(node.answer, EDGE_STYLE[''])[2]}" if node.answer else ""
        scene.add(Shape("circle", x, y, r=13, fill=CHILD, stroke=INK, name=f"{node.label}{how}{ended}", role="child"))
        short = node.label.removeprefix("child ")
        scene.add(Shape("text", x, y + 4, text=short, size=11, bold=True))
        below = y + 26 if y >= cy else y - 18
        caption = revealed.get(node.account, "")
        if caption:
            scene.add(Shape("text", x, below, text=_clip(caption, 18), size=10))
    scene.add(Shape("circle", cx, cy, r=27, fill=SUSPECT, stroke=INK, name="the suspect", role="suspect"))
    scene.add(Shape("text", cx, cy + 4, text="suspect", size=10, fill="#ffffff", bold=True))
    if len(graph.nodes) > len(shown):
        scene.add(Shape("text", width - 10, 18, text=f"+{len(graph.nodes) - len(shown)} more", size=11, anchor="end"))
    _legend(scene, [(key, *EDGE_STYLE[key]) for key in ("accepted", "rejected", "expired", "")])
    return scene


def _legend(scene: Scene, items: Iterable[tuple[str, str, tuple[int, ...], str]]) -> None:
    x, y = 12.0, scene.height - 14.0
    for _, colour, dash, words in items:
        scene.add(Shape("line", x, y - 4, x + 22, y - 4, stroke=colour, width=2, dash=dash))
        scene.add(Shape("text", x + 28, y, text=words, size=11, anchor="start", fill=INK))
        x += 34 + 7 * len(words)


def timeline_scene(timeline: ViewTimeline, width: int = 640, height: int = 260) -> Scene:
    """Bars per hour: all the suspect's views (light) with the views of children's posts (red) in front."""
    peak = max((t for _, _, t in timeline.hours), default=0)
    minors = sum(m for _, m, _ in timeline.hours)
    scene = Scene(
        width,
        height,
        "View timeline",
        f"Views per hour over {len(timeline.hours)} hours: {minors} of children's posts; at most {peak} in one hour.",
    )
    left, right, top, bottom = 44.0, 12.0, 16.0, 52.0
    plot_w, plot_h = width - left - right, height - top - bottom
    scale = plot_h / peak if peak else 0.0
    slot = plot_w / max(1, len(timeline.hours))
    base = top + plot_h
    scene.add(Shape("line", left, base, width - right, base, stroke=INK, width=1))
    scene.add(Shape("line", left, top, left, base, stroke=INK, width=1))
    scene.add(Shape("text", left - 6, top + 8, text=str(peak), size=10, anchor="end"))
    scene.add(Shape("text", left - 6, base, text="0", size=10, anchor="end"))
    for i, (hour, to_minors, total) in enumerate(timeline.hours):
        x = left + i * slot + 1
        w = max(1.0, slot - 2)
        spike = hour in timeline.spikes
        label = f"{hour:%d %b %H:00} UTC: {to_minors} of {total} views were of children's posts" + (
            " (flagged)" if spike else ""
        )
        if total:
            scene.add(Shape("rect", x, base - total * scale, w, total * scale, fill=ALL_VIEWS))
        if to_minors:
            scene.add(
                Shape(
                    "rect",
                    x,
                    base - to_minors * scale,
                    w,
                    to_minors * scale,
                    fill=MINOR_VIEWS,
                    stroke=INK if spike else "none",
                    width=2 if spike else 1,
                    name=label,
                    role="bar",
                )
            )
    if timeline.hours:
        first, last = timeline.hours[0][0], timeline.hours[-1][0]
        scene.add(Shape("text", left, base + 16, text=f"{first:%d %b %H:00}", size=10, anchor="start"))
        scene.add(Shape("text", width - right, base + 16, text=f"{last:%d %b %H:00} UTC", size=10, anchor="end"))
    x, y = 12.0, height - 12.0
    for colour, words in ((MINOR_VIEWS, "views of children's posts"), (ALL_VIEWS, "all views")):
        scene.add(Shape("rect", x, y - 10, 14, 10, fill=colour, stroke=INK, width=0.5))
        scene.add(Shape("text", x + 20, y, text=words, size=11, anchor="start"))
        x += 36 + 7 * len(words)
    return scene


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- SVG -------------------------------------------------------------------------------

_SVG_ANCHOR = {"start": "start", "middle": "middle", "end": "end"}


def to_svg(scene: Scene, element_id: str = "") -> str:
    """Inline SVG with role="img", a title and a description; nodes and bars carry <title>s for hover and tests."""
    ident = escape(element_id or scene.title.lower().replace(" ", "-"), quote=True)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {scene.width} {scene.height}" '
        f'width="{scene.width}" height="{scene.height}" role="img" aria-labelledby="{ident}-t {ident}-d" '
        f'id="{ident}" class="picture">',
        f'<title id="{ident}-t">{escape(scene.title)}</title><desc id="{ident}-d">{escape(scene.description)}</desc>',
        f'<rect x="0" y="0" width="{scene.width}" height="{scene.height}" fill="{BACKGROUND}"/>',
    ]
    for s in scene.shapes:
        dash = f' stroke-dasharray="{",".join(map(str, s.dash))}"' if s.dash else ""
        paint = f'fill="{s.fill}" stroke="{s.stroke}" stroke-width="{s.width:g}"{dash}'
        data = f' data-role="{s.role}"' if s.role else ""
        title = f"<title>{escape(s.name)}</title>" if s.name else ""
        if s.kind == "line":
            out.append(
                f'<line x1="{s.x:.1f}" y1="{s.y:.1f}" x2="{s.x2:.1f}" y2="{s.y2:.1f}" stroke="{s.stroke}" '
                f'stroke-width="{s.width:g}"{dash}/>'
            )
        elif s.kind == "circle":
            out.append(f'<circle cx="{s.x:.1f}" cy="{s.y:.1f}" r="{s.r:g}" {paint}{data}>{title}</circle>')
        elif s.kind == "rect":
            out.append(
                f'<rect x="{s.x:.1f}" y="{s.y:.1f}" width="{s.x2:.1f}" height="{s.y2:.1f}" {paint}{data}>{title}</rect>'
            )
        elif s.kind == "text":
            weight = ' font-weight="bold"' if s.bold else ""
            fill = s.fill if s.fill != "none" else INK
            out.append(
                f'<text x="{s.x:.1f}" y="{s.y:.1f}" font-family="sans-serif" font-size="{s.size}" '
                f'text-anchor="{_SVG_ANCHOR.get(s.anchor, "middle")}" fill="{fill}"{weight}>{escape(s.text)}</text>'
            )
    out.append("</svg>")
    return "".join(out)


# -- PNG -------------------------------------------------------------------------------


def to_png(scene: Scene, scale: float = 1.0) -> bytes:
    """A PNG of the scene (Pillow); `scale` < 1 makes the small image cards carry."""
    from PIL import Image, ImageDraw, ImageFont

    w, h = max(1, round(scene.width * scale)), max(1, round(scene.height * scale))
    image = Image.new("RGB", (w, h), BACKGROUND)
    draw = ImageDraw.Draw(image)
    fonts: dict[int, ImageFont.FreeTypeFont | ImageFont.ImageFont] = {}

    def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
        px = max(6, round(size * scale))
        if px not in fonts:
            fonts[px] = ImageFont.load_default(size=px)
        return fonts[px]

    def xy(x: float, y: float) -> tuple[float, float]:
        return x * scale, y * scale

    for s in scene.shapes:
        width = max(1, round(s.width * scale))
        if s.kind == "line":
            _line(draw, xy(s.x, s.y), xy(s.x2, s.y2), s.stroke, width, tuple(round(d * scale) or 1 for d in s.dash))
        elif s.kind == "circle":
            x, y = xy(s.x, s.y)
            r = s.r * scale
            draw.ellipse(
                (x - r, y - r, x + r, y + r),
                fill=None if s.fill == "none" else s.fill,
                outline=None if s.stroke == "none" else s.stroke,
                width=width,
            )
        elif s.kind == "rect":
            x, y = xy(s.x, s.y)
            x2, y2 = xy(s.x + s.x2, s.y + s.y2)
            draw.rectangle(
                (x, y, max(x, x2 - 1), max(y, y2)),
                fill=None if s.fill == "none" else s.fill,
                outline=None if s.stroke == "none" else s.stroke,
                width=width,
            )
        elif s.kind == "text":
            anchor = {"start": "ls", "middle": "ms", "end": "rs"}.get(s.anchor, "ms")
            fill = s.fill if s.fill != "none" else INK
            draw.text(xy(s.x, s.y), s.text, fill=fill, font=font(s.size), anchor=anchor)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _line(
    draw: object, start: tuple[float, float], end: tuple[float, float], colour: str, width: int, dash: tuple[int, ...]
) -> None:
    """A straight line, dashed when `dash` is given (Pillow draws only solid lines)."""
    if not dash:
        draw.line((start, end), fill=colour, width=width)  # type: ignore[attr-defined]
        return
    (x1, y1), (x2, y2) = start, end
    length = math.hypot(x2 - x1, y2 - y1)
    if length == 0:
        return
    ux, uy = (x2 - x1) / length, (y2 - y1) / length
    pos, i = 0.0, 0
    while pos < length:
        step = dash[i % len(dash)]
        if i % 2 == 0:
            stop = min(length, pos + step)
            draw.line(((x1 + ux * pos, y1 + uy * pos), (x1 + ux * stop, y1 + uy * stop)), fill=colour, width=width)  # type: ignore[attr-defined]
        pos += step
        i += 1


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's header, without decoding it."""
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


# -- what a card carries ---------------------------------------------------------------

#: Size of the picture on alert cards, relative to the web's.
CARD_SCALE = 0.75


@dataclass(frozen=True)
class CardPicture:
    """The PNG for one alert card, its file name and its alt text (no account is named in any of them)."""

    png: bytes
    filename: str
    alt: str


async def card_picture(reader: PictureReader, case: Case) -> CardPicture | None:
    """The picture an alert card carries: the view timeline for a view spike, else the contact graph.

    None when there is nothing worth drawing (no child and no other contact).
    """
    if has_view_spike(case):
        timeline = await view_timeline(reader, case)
        if not timeline.empty:
            scene = timeline_scene(timeline)
            png = await asyncio.to_thread(to_png, scene, CARD_SCALE)
            return CardPicture(png, f"case-{case.id}-views.png", scene.description)
    graph = await contact_graph(reader, case)
    if not graph.nodes and not graph.others:
        return None
    scene = graph_scene(graph)
    # Drawing a PNG takes ~25 ms of CPU: off the event loop, so adapters and the engine keep answering.
    png = await asyncio.to_thread(to_png, scene, CARD_SCALE)
    return CardPicture(png, f"case-{case.id}-contacts.png", scene.description)


class CaseReader(PictureReader, Protocol):
    async def get_case(self, case_id: int) -> tuple[Case, list[dict[str, Any]], list[dict[str, Any]]] | None: ...


async def picture_for_alert(reader: CaseReader, case_id: int) -> CardPicture | None:
    """The card picture for a case by id, never an exception: a card goes out without it rather than not at all."""
    try:
        found = await reader.get_case(case_id)
        return None if found is None else await card_picture(reader, found[0])
    except Exception:
        log.exception("picture for case %s could not be drawn; the card goes without it", case_id)
        return None
