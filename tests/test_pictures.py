"""Case pictures: the contact graph and view timeline as SVG and PNG, with children as labels only."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from groomguard import pictures
from groomguard.cases import Case
from groomguard.testing import running_engine
from PIL import Image
from web_scenario import KIDS, communities

T = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def graph(n: int, others: int = 0) -> pictures.ContactGraph:
    answers = ["accepted", "rejected", "expired", ""]
    return pictures.ContactGraph(
        nodes=tuple(
            pictures.GraphNode(pictures.child_label(i), f"kid-account-{i}", "friend request", answers[i % 4])
            for i in range(n)
        ),
        others=others,
    )


def test_child_labels_are_short_and_stable() -> None:
    assert [pictures.child_label(i) for i in (0, 1, 25, 26, 27, 701, 702)] == [
        "child A",
        "child B",
        "child Z",
        "child AA",
        "child AB",
        "child ZZ",
        "child AAA",
    ]
    assert pictures.child_labels(["x", "y"]) == {"x": "child A", "y": "child B"}


def test_graph_svg_has_a_node_for_each_contact_and_names_nobody() -> None:
    svg = pictures.to_svg(pictures.graph_scene(graph(9, others=4)), "g")
    assert svg.count('data-role="child"') == 9
    assert svg.count('data-role="suspect"') == 1 and svg.count('data-role="other"') == 1
    assert "kid-account" not in svg
    assert "<title>child C, friend request, no answer</title>" in svg
    assert 'stroke-dasharray="6,4"' in svg, "a refused request is dashed, not only red"
    assert 'role="img" aria-labelledby="g-t g-d"' in svg
    assert "The suspect reached 9 children (4 refused or unanswered) and 4 other accounts." in svg


def test_revealed_children_are_named_only_when_asked() -> None:
    g = graph(3)
    svg = pictures.to_svg(pictures.graph_scene(g, {"kid-account-1": "kid-account-1"}))
    assert "kid-account-1" in svg and "kid-account-0" not in svg and "kid-account-2" not in svg


def test_many_children_are_capped_with_a_count() -> None:
    svg = pictures.to_svg(pictures.graph_scene(graph(pictures.MAX_NODES + 6)))
    assert svg.count('data-role="child"') == pictures.MAX_NODES
    assert "+6 more" in svg


@pytest.mark.parametrize("scale", [1.0, pictures.CARD_SCALE])
def test_graph_png_is_drawn(scale: float) -> None:
    png = pictures.to_png(pictures.graph_scene(graph(8, others=2)), scale)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.size == (round(640 * scale), round(420 * scale))
    assert pictures.png_size(png) == image.size
    colours = dict((c, n) for n, c in image.getcolors(maxcolors=1 << 20) or [])
    inked = sum(n for c, n in colours.items() if c != (255, 255, 255)) / (image.width * image.height)
    assert 0.02 < inked < 0.5, inked
    assert any(abs(c[0] - 0xF7) < 8 and abs(c[1] - 0xB9) < 8 for c in colours), "child nodes drawn in their colour"
    assert any(abs(c[0] - 0xB4) < 8 and c[1] < 0x40 for c in colours), "the suspect drawn in red"


def test_timeline_has_a_bar_per_hour_with_views_of_minors() -> None:
    hours = tuple((T + timedelta(hours=h), h % 3, 4 + h % 3) for h in range(24))
    timeline = pictures.ViewTimeline(hours, frozenset([hours[-1][0]]))
    svg = pictures.to_svg(pictures.timeline_scene(timeline))
    assert svg.count('data-role="bar"') == sum(1 for _, m, _ in hours if m)
    assert svg.count("(flagged)") == 1
    assert "Views per hour over 24 hours: 24 of children&#x27;s posts; at most 6 in one hour." in svg
    png = pictures.to_png(pictures.timeline_scene(timeline), 0.75)
    assert Image.open(io.BytesIO(png)).size == (480, 195)


def test_empty_timeline_is_empty() -> None:
    assert pictures.ViewTimeline(((T, 0, 0),)).empty
    assert not pictures.ViewTimeline(((T, 0, 2),)).empty


async def test_pictures_from_a_real_store(tmp_path: Path) -> None:
    async with running_engine(tmp_path / "db") as (engine, _):
        for event in communities():
            await engine.submit(event)
        await engine.drain()
        fan_out = engine.cases.by_id[1]
        spike = engine.cases.by_id[2]
        g = await pictures.contact_graph(engine.store, fan_out)  # type: ignore[arg-type]
        assert [n.label for n in g.nodes] == [f"child {c}" for c in "ABCDEFGH"]
        assert [n.account for n in g.nodes] == KIDS[:8]
        assert [n.answer for n in g.nodes] == ["rejected"] * 3 + ["accepted"] * 5
        assert {n.how for n in g.nodes} == {"friend request"} and g.others == 1
        card = await pictures.card_picture(engine.store, fan_out)  # type: ignore[arg-type]
        assert card is not None and card.filename == "case-1-contacts.png" and card.png.startswith(b"\x89PNG")
        assert not any(kid in card.alt for kid in KIDS)
        timeline = await pictures.view_timeline(engine.store, spike)  # type: ignore[arg-type]
        assert len(timeline.hours) == pictures.TIMELINE_HOURS
        assert timeline.hours[-1][1] == 80 and len(timeline.spikes) == 1
        card = await pictures.card_picture(engine.store, spike)  # type: ignore[arg-type]
        assert card is not None and card.filename == "case-2-views.png"
        assert await pictures.picture_for_alert(engine.store, 999) is None  # type: ignore[arg-type]


def test_svg_text_is_escaped() -> None:
    scene = pictures.Scene(10, 10, "t<", "d&")
    scene.add(pictures.Shape("text", 1, 1, text="<script>"))
    svg = pictures.to_svg(scene)
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert '<title id="t&lt;-t">t&lt;</title>' in svg and '<desc id="t&lt;-d">d&amp;</desc>' in svg


def test_case_without_contacts_has_no_picture_to_draw() -> None:
    case = Case(1, "test", "c", "s", "open", T, T)
    assert not pictures.has_view_spike(case)
