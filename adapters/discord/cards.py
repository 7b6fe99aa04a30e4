"""Alert cards for the mod channel: embeds rendered from ModAlert, and persistent controls whose custom ids carry the case."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import Any, Protocol

import discord
from groomguard.actions import ModAlert
from groomguard.cases import ACTIVE, CaseStatus
from groomguard.events import Decision
from groomguard.pictures import CardPicture
from groomguard.workspace import evidence_line

#: Cases whose status still takes decisions; closed cards keep only "View evidence".
OPEN_STATUSES = ACTIVE
STATUS_COLOUR = {
    CaseStatus.OPEN: discord.Colour.red(),
    CaseStatus.ESCALATED: discord.Colour.dark_red(),
    CaseStatus.CONFIRMED: discord.Colour.orange(),
    CaseStatus.DISMISSED: discord.Colour.light_grey(),
    CaseStatus.BANNED: discord.Colour.dark_grey(),
}
BUTTON_ACTIONS = (
    "confirm",
    "dismiss",
    "escalate",
    "ban",
    "banok",
    "bancancel",
    "kick",
    "kickok",
    "kickcancel",
    "evidence",
)
COG_NAME = "GroomGuard"
#: Embed fields given to the children list (1024 characters each, about 40 mentions a field): enough
#: for every child a case keeps (groomguard.cases.MAX_CHILDREN).
CHILD_FIELDS = 5
#: Discord refuses an embed longer than this in all.
EMBED_LIMIT = 6000
#: Evidence lines shown on the card itself; "View evidence" lists them all.
EVIDENCE_ON_CARD = 5


#: Controls that open a note modal before deciding, with whether the note is required: a case closed
#: by Dismiss or Ban (Kick) keeps the moderator's reason; Escalate may say what to look at.
NOTE_ACTIONS = {
    "dismiss": Decision.DISMISS,
    "escalate": Decision.ESCALATE,
    "banok": Decision.BAN,
    "kickok": Decision.KICK,
}
NOTE_REQUIRED = frozenset({"dismiss", "banok", "kickok"})
NOTE_FIELD = "note"
NOTE_MODAL_ID = re.compile(r"gg-note:(?P<case>\d{1,12}):(?P<action>" + "|".join(NOTE_ACTIONS) + r")")
_NOTE_TITLES = {"dismiss": "Dismiss", "escalate": "Escalate", "banok": "Ban", "kickok": "Kick"}


class NoteModal(discord.ui.Modal):
    """The note asked for on Dismiss, Escalate, Ban and Kick; its submit is handled by the cog's
    on_interaction from the custom id (`gg-note:<case>:<action>`), so it works across restarts too."""

    async def on_submit(self, interaction: discord.Interaction[Any], /) -> None:
        return None  # handled in GroomGuardCog.on_interaction


def note_modal(case_id: int, action: str, suspect_label: str = "") -> discord.ui.Modal:
    """A modal with one paragraph input for the decision's note (required for Dismiss, Ban, Kick)."""
    what = _NOTE_TITLES[action]
    modal = NoteModal(title=_clip(f"{what} case #{case_id}", 45), timeout=900, custom_id=f"gg-note:{case_id}:{action}")
    required = action in NOTE_REQUIRED
    modal.add_item(
        discord.ui.TextInput(
            label=_clip("Why? (kept on the case record)" if required else "Note for the case record (optional)", 45),
            style=discord.TextStyle.paragraph,
            custom_id=NOTE_FIELD,
            placeholder=_clip(
                {
                    "dismiss": "e.g. it is her uncle; the family confirmed",
                    "escalate": "e.g. asks for photos; needs a senior moderator",
                    "banok": "e.g. asked three children for photos",
                    "kickok": "e.g. new account contacting children",
                }[action],
                100,
            ),
            required=required,
            min_length=3 if required else None,
            max_length=1000,
        )
    )
    return modal


def modal_value(data: dict[str, Any], field_id: str) -> str:
    """The value of one text input in a modal submit payload (rows of components, or labelled components)."""
    stack: list[Any] = list(data.get("components") or [])
    while stack:
        item = stack.pop(0)
        if not isinstance(item, dict):
            continue
        if item.get("custom_id") == field_id and isinstance(item.get("value"), str):
            return str(item["value"])
        stack.extend(item.get("components") or [])
        if isinstance(item.get("component"), dict):
            stack.append(item["component"])
    return ""


def custom_id(case_id: int, action: str) -> str:
    """`gg:<case>:<action>` — everything a press needs is in the id, so no view state has to survive a restart."""
    return f"gg:{case_id}:{action}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mention(account: str) -> str:
    """A user mention for embeds (embeds never ping); non-snowflake ids are shown as text."""
    return f"<@{account}>" if account.isdigit() else discord.utils.escape_markdown(account)


def duration_label(minutes: int) -> str:
    if minutes % 1440 == 0:
        days = minutes // 1440
        return f"{days} day" + ("s" if days != 1 else "")
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour" + ("s" if hours != 1 else "")
    return f"{minutes} minutes"


def child_fields(children: Sequence[str], case_id: int) -> list[tuple[str, str]]:
    """'Children involved' as embed fields: every child as a mention (a moderator clicks it to open the
    profile), packed into fields of at most 1024 characters; past CHILD_FIELDS fields the rest are counted
    and `/groomguard case` lists them."""
    fields: list[list[str]] = [[]]
    for i, child in enumerate(children):
        item = mention(child)
        if sum(len(x) + 2 for x in fields[-1]) + len(item) > 1000:
            if len(fields) == CHILD_FIELDS:
                fields[-1].append(f"+{len(children) - i} more (see `groomguard cases show {case_id}`)")
                break
            fields.append([])
        fields[-1].append(item)
    name = f"Children involved ({len(children)})"
    return [(name if n == 0 else "\u200b", ", ".join(items)) for n, items in enumerate(fields) if items]


def render_embed(alert: ModAlert, undelivered: Sequence[str] = ()) -> discord.Embed:
    """The card: who, how risky (risk now, peak, what it means), why in plain words, evidence, children."""
    band = f" ({alert.band})" if alert.band else ""
    description = f"Suspect: {mention(alert.suspect)} (`{alert.suspect}`)"
    if alert.recommended:
        description += f"\nRecommended: {alert.recommended}"
    if alert.risk_note:
        description += f"\n-# {alert.risk_note}"
    embed = discord.Embed(
        title=_clip(
            f"Case #{alert.case_id} · risk now {alert.risk:.2f}{band} · peak {alert.peak:.2f} · {alert.status}", 256
        ),
        description=_clip(description, 4096),
        colour=STATUS_COLOUR.get(alert.status, discord.Colour.red()),
        timestamp=alert.at,
    )
    if alert.changes:
        embed.add_field(
            name=f"What changed (update {alert.version})",
            value=_clip("\n".join(f"• {c}" for c in alert.changes), 1024),
            inline=False,
        )
    for reason in alert.reasons[:10]:
        embed.add_field(
            name=_clip(f"{reason.title or reason.detector} · {reason.score:.2f}", 256),
            value=_clip(reason.text, 1024),
            inline=False,
        )
    for name, value in child_fields(alert.children, alert.case_id):
        if len(embed) + len(name) + len(value) > EMBED_LIMIT - 400:
            embed.add_field(name="\u200b", value="more children: see the case record", inline=False)
            break
        embed.add_field(name=name, value=value, inline=False)
    if alert.evidence:
        lines = [evidence_line(e, mention(e.child) if e.child else None) for e in alert.evidence[:EVIDENCE_ON_CARD]]
        more = len(alert.evidence) - len(lines)
        if more > 0:
            lines.append(f"+{more} more — press **View evidence**")
        value = _clip("\n".join(f"• {line}" for line in lines), 1024)
        if len(embed) + len(value) + 20 <= EMBED_LIMIT - 400:
            embed.add_field(name="Evidence", value=value, inline=False)
        else:
            embed.add_field(
                name="Evidence", value=f"{len(alert.evidence)} item(s) — press **View evidence**", inline=False
            )
    if undelivered:
        names = ", ".join(mention(c) for c in undelivered[:15])
        embed.add_field(
            name="⚠️ Child notice not delivered",
            value=_clip(
                f"{names} could not be sent GroomGuard's private safety message because their DMs are closed. "
                "Please check on them another way (a moderator they trust, or a private thread).",
                1024,
            ),
            inline=False,
        )
    embed.set_footer(text=f"GroomGuard · case {alert.case_id} · update {alert.version}")
    return embed


def render_view(alert: ModAlert, timeout_choices: Sequence[int]) -> discord.ui.View:
    """Persistent controls for a card; a closed case keeps only the evidence button."""
    view = discord.ui.View(timeout=None)
    case = alert.case_id
    if alert.status in OPEN_STATUSES:
        choices = set(alert.choices)
        for decision, label, style in (
            (Decision.CONFIRM, "Confirm", discord.ButtonStyle.danger),
            (Decision.DISMISS, "Dismiss", discord.ButtonStyle.secondary),
            (Decision.ESCALATE, "Escalate", discord.ButtonStyle.primary),
        ):
            if decision in choices:
                view.add_item(CaseButton(case, decision.value, label, style, row=0))
    view.add_item(CaseButton(case, "evidence", "View evidence", discord.ButtonStyle.secondary, row=0))
    if alert.status in OPEN_STATUSES:
        if Decision.KICK in alert.choices:
            view.add_item(CaseButton(case, "kick", "Kick…", discord.ButtonStyle.danger, row=1))
        if Decision.BAN in alert.choices:
            view.add_item(CaseButton(case, "ban", "Ban…", discord.ButtonStyle.danger, row=1))
        if Decision.TIMEOUT in alert.choices and timeout_choices:
            view.add_item(TimeoutSelect(case, timeout_choices, row=2))
    return view


def confirm_view(case_id: int, action: str = "ban") -> discord.ui.View:
    """The confirmation step behind Ban or Kick, sent ephemerally to the moderator who pressed it."""
    view = discord.ui.View(timeout=None)
    view.add_item(CaseButton(case_id, f"{action}ok", f"Yes, {action}", discord.ButtonStyle.danger))
    view.add_item(CaseButton(case_id, f"{action}cancel", "Cancel", discord.ButtonStyle.secondary))
    return view


class CaseControls(Protocol):
    """Where a card control's press goes (the cog); named here so cards need not import the cog."""

    async def on_case_button(
        self, interaction: discord.Interaction[Any], case_id: int, action: str, minutes: int | None = None
    ) -> None: ...


def _cog(interaction: discord.Interaction[Any]) -> CaseControls | None:
    client = interaction.client
    get_cog = getattr(client, "get_cog", None)
    cog = get_cog(COG_NAME) if get_cog is not None else None
    return cog  # type: ignore[no-any-return]


async def _unavailable(interaction: discord.Interaction[Any]) -> None:
    await interaction.response.send_message("GroomGuard is not running on this bot right now.", ephemeral=True)


class CaseButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=re.compile(r"gg:(?P<case>\d{1,12}):(?P<action>" + "|".join(BUTTON_ACTIONS) + r")"),
):
    """A card button; discord.py rebuilds it from the custom id on every press, so old cards keep working."""

    def __init__(
        self,
        case_id: int,
        action: str,
        label: str = "",
        style: discord.ButtonStyle = discord.ButtonStyle.secondary,
        row: int | None = None,
    ) -> None:
        super().__init__(
            discord.ui.Button(label=label or action, style=style, custom_id=custom_id(case_id, action), row=row)
        )
        self.case_id = case_id
        self.action = action

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Button[Any], match: re.Match[str], /
    ) -> CaseButton:
        return cls(int(match["case"]), match["action"], item.label or "", item.style)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        cog = _cog(interaction)
        if cog is None:
            await _unavailable(interaction)
            return
        await cog.on_case_button(interaction, self.case_id, self.action)


class TimeoutSelect(
    discord.ui.DynamicItem[discord.ui.Select[Any]],
    template=re.compile(r"gg:(?P<case>\d{1,12}):timeout"),
):
    """Timeout with a duration choice; the chosen minutes arrive in the interaction's values."""

    def __init__(self, case_id: int, choices: Sequence[int] = (), row: int | None = None) -> None:
        options = [discord.SelectOption(label=f"Time out for {duration_label(m)}", value=str(m)) for m in choices[:25]]
        super().__init__(
            discord.ui.Select(
                custom_id=custom_id(case_id, "timeout"),
                placeholder="Time out…",
                options=options or [discord.SelectOption(label="1 hour", value="60")],
                row=row,
            )
        )
        self.case_id = case_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Select[Any], match: re.Match[str], /
    ) -> TimeoutSelect:
        return cls(int(match["case"]), [int(o.value) for o in item.options if o.value.isdigit()])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        cog = _cog(interaction)
        if cog is None:
            await _unavailable(interaction)
            return
        values = (interaction.data or {}).get("values") or []  # type: ignore[union-attr]
        minutes = int(values[0]) if values and str(values[0]).isdigit() else None
        await cog.on_case_button(interaction, self.case_id, "timeout", minutes=minutes)


def attach_picture(embed: discord.Embed, picture: CardPicture | None) -> list[discord.File]:
    """Show the case's picture (contact graph or view timeline) as the embed image; returns the file to send
    with the message (an edit replaces the earlier picture)."""
    if picture is None:
        return []
    embed.set_image(url=f"attachment://{picture.filename}")
    return [discord.File(io.BytesIO(picture.png), filename=picture.filename, description=picture.alt[:1024])]


def link_case(embed: discord.Embed, url: str | None) -> None:
    """Make the card's title a link to the case in the web view (when [web] has a public URL)."""
    if url:
        embed.url = url
