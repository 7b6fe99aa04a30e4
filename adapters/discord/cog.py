"""The GroomGuard cog: listeners that translate, card delivery, moderator controls and the /groomguard commands."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands
from discord.ext import commands
from groomguard.actions import ChildNotice, Enforcement, ModAlert
from groomguard.adapters.discord import translate
from groomguard.adapters.discord.cards import (
    COG_NAME,
    NOTE_ACTIONS,
    NOTE_FIELD,
    NOTE_MODAL_ID,
    CaseButton,
    TimeoutSelect,
    attach_picture,
    confirm_view,
    duration_label,
    link_case,
    mention,
    modal_value,
    note_modal,
    render_embed,
    render_view,
)
from groomguard.adapters.discord.cardstore import Card, CardStore
from groomguard.adapters.discord.checks import (
    StartupError,
    enforcement_problems,
    intent_problems,
    mod_channel_problems,
    portal_problems,
)
from groomguard.cases import ACTIVE, detector_title
from groomguard.config import DiscordSettings
from groomguard.events import AgeBand, AgeDeclared, AgeSource, BaseEvent, Decision
from groomguard.findings import Evidence
from groomguard.workspace import DecisionRefused, decide, evidence_line

if TYPE_CHECKING:
    from groomguard.port import EnginePort

log = logging.getLogger(__name__)

#: Discord's JSON error code for "Cannot send messages to this user" (DMs closed or bot blocked).
CANNOT_DM = 50007
_REPORT = re.compile(r"\b(report|reporting)\b", re.IGNORECASE)
#: Controls that decide at once.
_BUTTON_DECISIONS = {"confirm": Decision.CONFIRM, "timeout": Decision.TIMEOUT}
_PAST = {
    Decision.CONFIRM: "confirmed",
    Decision.DISMISS: "dismissed",
    Decision.ESCALATE: "escalated",
    Decision.BAN: "ban recorded",
    Decision.KICK: "kick recorded",
    Decision.TIMEOUT: "timeout recorded",
}


class DiscordNotReady(RuntimeError):
    """The bot is not connected yet; the action stays in the engine's outbox and is re-sent once it is."""


class ModChannelUnusable(RuntimeError):
    """The mod channel is missing or public; alerts are held back rather than posted where anyone can read them."""


def _now() -> datetime:
    return datetime.now(UTC)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# /groomguard is hidden from members without Manage Server until a server admin allows the moderator
# role under Server Settings → Integrations; every command checks the moderator again when used.
@app_commands.default_permissions(manage_guild=True)
@app_commands.guild_only()
class GroomGuardCog(commands.GroupCog, name=COG_NAME, group_name="groomguard"):
    """Translates gateway events for the engine and renders its actions; never decides anything itself."""

    def __init__(self, bot: commands.Bot, settings: DiscordSettings, engine: EnginePort, cards: CardStore) -> None:
        self.bot = bot
        self.settings = settings
        self.engine = engine
        self.cards = cards
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.skipped = 0
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending_undelivered: dict[int, list[str]] = {}
        # One delivery at a time: the engine's dispatcher, its idle redelivery and the connect-time
        # nudge can hand over the same action concurrently, and is_done/mark_done must not interleave.
        self._delivering = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        super().__init__()

    # -- lifecycle ------------------------------------------------------------------------

    async def cog_load(self) -> None:
        problems = intent_problems(self.bot.intents)
        if problems:
            raise StartupError(problems)
        self.bot.add_dynamic_items(CaseButton, TimeoutSelect)
        if self.bot.is_ready():
            self._spawn(self._on_connected())

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(CaseButton, TimeoutSelect)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Any) -> None:
        # Owned tasks: kept so they can be cancelled on unload, and failures are logged with what failed.
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("discord background task %s failed", task.get_name(), exc_info=task.exception())

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        await self._on_connected()

    async def _on_connected(self) -> None:
        """Run the start-up checks once connected; record problems so `start` and /groomguard status can say them."""
        problems = intent_problems(self.bot.intents) + portal_problems(getattr(self.bot, "application_flags", None))
        for guild_id in self.settings.guild_ids or [g.id for g in self._guilds()]:
            cid = self.settings.mod_channel_for(guild_id)
            channel = self.bot.get_channel(cid) if cid else None
            problems += mod_channel_problems(channel, cid, set(self.settings.moderator_role_ids), guild_id)
        self.problems = problems
        self.warnings = [w for g in self._guilds() for w in enforcement_problems(g)]
        for warning in self.warnings:
            log.warning("discord: %s", warning)
        if problems:
            error = StartupError(problems)
            log.error("%s", error)
            if not self.ready.done():
                self.ready.set_exception(error)
            return
        if not self.ready.done():
            self.ready.set_result(None)
        for guild in self._guilds():
            await self._sweep_roles(guild)
        await self._redeliver()

    def _guilds(self) -> list[discord.Guild]:
        return [g for g in self.bot.guilds if self._protected(g.id)]

    def _protected(self, guild_id: int | None) -> bool:
        return guild_id is not None and (not self.settings.guild_ids or guild_id in self.settings.guild_ids)

    async def _redeliver(self) -> None:
        """Nudge the engine to re-send its outbox now that Discord is reachable.

        The engine re-sends on its own after `groomguard run` starts adapters and every 30 s when its
        outbox is idle; this nudge is kept because a busy outbox never goes idle, and a reconnect
        (or an extension loaded before the bot logs in) would otherwise leave held child notices
        waiting. The engine marks what was delivered; `deliver` dedupes on action_id.
        """
        try:
            count = await self.engine.redeliver()
        except Exception:
            log.exception("redelivery after connecting failed; the engine retries later")
            return
        if count:
            log.info("re-sent %d outbox actions after connecting", count)

    # -- translation: gateway → events ----------------------------------------------------

    async def _emit(self, events: Sequence[BaseEvent]) -> None:
        for event in events:
            await self.engine.submit(event)

    async def _sweep_roles(self, guild: discord.Guild) -> None:
        """Age and region roles held at start-up; fixed event ids make repeats after restarts no-ops."""
        events: list[BaseEvent] = []
        for member in guild.members:
            events += translate.role_events(
                member, member.roles, self.settings.age_roles, self.settings.region_roles, "sweep"
            )
            events += translate.standing_events(member, self.settings.moderator_role_ids, "sweep")
        await self._emit(events)
        if events:
            log.info("guild %s: %d age/region role declarations from start-up sweep", guild.id, len(events))

    @commands.Cog.listener()
    async def on_member_join(self, member: discord.Member) -> None:
        if not self._protected(member.guild.id):
            return
        event = translate.join_event(member)
        events: list[BaseEvent] = [event] if event else []
        stamp = str(int(_now().timestamp() * 1000))
        events += translate.role_events(
            member, member.roles, self.settings.age_roles, self.settings.region_roles, stamp
        )
        events += translate.standing_events(member, self.settings.moderator_role_ids, stamp)
        await self._emit(events)

    @commands.Cog.listener()
    async def on_raw_member_remove(self, payload: discord.RawMemberRemoveEvent) -> None:
        if not self._protected(payload.guild_id):
            return
        event = translate.leave_event(payload.guild_id, payload.user)
        if event:
            await self._emit([event])

    @commands.Cog.listener()
    async def on_member_update(self, before: discord.Member, after: discord.Member) -> None:
        if not self._protected(after.guild.id):
            return
        # Only added roles declare anything. Removing an age role emits nothing on purpose: the last
        # declaration stands, so a child cannot lose protection by being talked into dropping "13-15"
        # (or by a role clean-up). A new age role is a new declaration; moderators can always
        # correct a band with /groomguard age.
        added = [r for r in after.roles if r not in before.roles]
        removed = [r for r in before.roles if r not in after.roles]
        if added:
            stamp = str(int(_now().timestamp() * 1000))
            await self._emit(
                translate.role_events(after, added, self.settings.age_roles, self.settings.region_roles, stamp)
                + translate.standing_events(after, self.settings.moderator_role_ids, stamp)
            )
        if any(translate.age_band_of(r, self.settings.age_roles) for r in removed):
            log.info("member %s in %s lost an age role; their recorded band is kept", after.id, after.guild.id)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.guild is None:
            await self._on_direct_message(message)
            return
        if not self._protected(message.guild.id):
            return
        try:
            events = translate.message_events(message)
        except Exception:
            self.skipped += 1
            log.exception("skipped message %s in channel %s: could not translate", message.id, message.channel.id)
            return
        await self._emit(events)

    async def _on_direct_message(self, message: discord.Message) -> None:
        """DMs to the bot: kept as private messages for the detectors, plus two things a user can ask for."""
        if message.author.bot:
            return
        guild = next((g for g in self._guilds() if g.get_member(message.author.id) is not None), None)
        if guild is None:
            return
        events = translate.message_events(message, community=guild.id)
        text = events[0].text if events else ""  # type: ignore[attr-defined]
        age = translate.self_declared_age(text)
        if age is not None:
            events.append(translate.self_age_event(message, guild.id, age))
        await self._emit(events)
        if age is not None:
            await message.channel.send("Thanks, I've noted that. You can tell me again any time it changes.")
        elif _REPORT.search(text):
            await self._report_by_dm(message, guild, text)

    async def _report_by_dm(self, message: discord.Message, guild: discord.Guild, text: str) -> None:
        """Forward a DM'd report to the moderators and thank the reporter; nobody else is contacted."""
        channel = self._checked_mod_channel(guild.id, raise_=False)
        await self.engine.audit(
            _now(),
            str(message.author.id),
            "dm_report",
            {"platform": translate.PLATFORM, "message": str(message.id), "forwarded": channel is not None},
            community=str(guild.id),
        )
        if channel is not None:
            embed = discord.Embed(
                title="Report sent to GroomGuard by DM",
                description=_clip(f"From {mention(str(message.author.id))} in {guild.name}:\n\n{text}", 4000),
                colour=discord.Colour.gold(),
                timestamp=message.created_at,
            )
            await channel.send(embed=embed, allowed_mentions=discord.AllowedMentions.none())
        await message.channel.send(
            "Thank you for telling us. The moderators have your message and will look at it. "
            "If you feel unsafe right now, talk to an adult you trust."
        )
        log.info("dm report %s from %s forwarded to moderators", message.id, message.author.id)

    @commands.Cog.listener()
    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        if self._protected(payload.guild_id) and (event := translate.edit_event(payload)) is not None:
            await self._emit([event])

    @commands.Cog.listener()
    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        if self._protected(payload.guild_id) and (event := translate.delete_event(payload)) is not None:
            await self._emit([event])

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        if self._protected(payload.guild_id):
            await self._emit(translate.reaction_events(payload))

    @commands.Cog.listener()
    async def on_thread_create(self, thread: discord.Thread) -> None:
        # The event vocabulary has no "room created"; a thread becomes a conversation with its first
        # message, and people added to a private thread become invitations (on_thread_member_join).
        log.debug("thread %s created in %s by %s", thread.id, thread.parent_id, thread.owner_id)

    @commands.Cog.listener()
    async def on_thread_member_join(self, member: discord.ThreadMember) -> None:
        thread = member.thread
        if self._protected(thread.guild.id):
            await self._emit(translate.thread_invite_events(thread, [member.id]))

    # -- moderator permission -------------------------------------------------------------

    def is_moderator(self, interaction: discord.Interaction[Any]) -> bool:
        """Configured moderator roles or Manage Server, in the server where the control was used."""
        user = interaction.user
        if not isinstance(user, discord.Member):
            return False
        if user.guild_permissions.manage_guild or interaction.permissions.manage_guild:
            return True
        allowed = set(self.settings.moderator_role_ids)
        return any(role.id in allowed for role in user.roles)

    async def _require_moderator(self, interaction: discord.Interaction[Any], what: str, case_id: int | None) -> bool:
        if self.is_moderator(interaction):
            return True
        await interaction.response.send_message(
            "Only GroomGuard moderators can do that. This attempt has been recorded.", ephemeral=True
        )
        await self.engine.audit(
            _now(),
            str(interaction.user.id),
            "refused",
            {"platform": translate.PLATFORM, "control": what, "why": "not a moderator"},
            community=str(interaction.guild_id) if interaction.guild_id else None,
            case_id=case_id,
        )
        log.warning("refused %s on case %s for non-moderator %s", what, case_id, interaction.user.id)
        return False

    # -- card controls --------------------------------------------------------------------

    async def on_case_button(
        self, interaction: discord.Interaction[Any], case_id: int, action: str, minutes: int | None = None
    ) -> None:
        """Every card control lands here (from the custom id), so a restart loses nothing."""
        if not await self._require_moderator(interaction, f"button:{action}", case_id):
            return
        found = await self.engine.get_case(case_id)
        if found is None:
            await interaction.response.send_message(f"Case #{case_id} no longer exists.", ephemeral=True)
            return
        case = found[0]
        if action == "evidence":
            await interaction.response.send_message(embed=self._evidence_embed(case_id, found), ephemeral=True)
        elif action in ("ban", "kick"):
            what = "Ban" if action == "ban" else "Kick"
            await interaction.response.send_message(
                f"{what} {mention(case.suspect)} from this server for case #{case_id}? "
                "The reason goes into Discord's audit log and GroomGuard's.",
                view=confirm_view(case_id, action),
                ephemeral=True,
                allowed_mentions=discord.AllowedMentions.none(),
            )
        elif action in ("bancancel", "kickcancel"):
            what = "Ban" if action == "bancancel" else "Kick"
            await interaction.response.edit_message(content=f"{what} cancelled; nothing was done.", view=None)
        elif action in NOTE_ACTIONS:
            # Dismiss, Escalate and the confirmed Ban/Kick ask for a note first (a Discord modal); the
            # decision is made when the moderator submits it (on_interaction → on_note_submitted).
            if not case.active:
                await interaction.response.send_message(f"Case #{case_id} is already {case.status}.", ephemeral=True)
                return
            await interaction.response.send_modal(note_modal(case_id, action, mention(case.suspect)))
        elif action in _BUTTON_DECISIONS:
            await interaction.response.defer(ephemeral=True, thinking=True)
            await self._apply(interaction, case_id, _BUTTON_DECISIONS[action], "", minutes)

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        """Note modals are handled here, from their custom id, so a submit still works after a restart."""
        if interaction.type is not discord.InteractionType.modal_submit:
            return
        data: dict[str, Any] = dict(interaction.data or {})  # type: ignore[arg-type]
        match = NOTE_MODAL_ID.fullmatch(str(data.get("custom_id", "")))
        if match is None:
            return
        await self.on_note_submitted(interaction, int(match["case"]), match["action"], modal_value(data, NOTE_FIELD))

    async def on_note_submitted(
        self, interaction: discord.Interaction[Any], case_id: int, action: str, note: str
    ) -> None:
        """A moderator submitted the note for Dismiss, Escalate, Ban or Kick: check them again, then decide."""
        if not await self._require_moderator(interaction, f"modal:{action}", case_id):
            return
        decision = NOTE_ACTIONS.get(action)
        if decision is None:
            return
        if action in ("banok", "kickok") and interaction.message is not None:
            doing = "Banning" if action == "banok" else "Kicking"
            await interaction.response.edit_message(content=f"{doing} for case #{case_id}…", view=None)
        else:
            await interaction.response.defer(ephemeral=True, thinking=True)
        await self._apply(interaction, case_id, decision, note, None)

    async def _apply(
        self,
        interaction: discord.Interaction[Any],
        case_id: int,
        decision: Decision,
        note: str,
        minutes: int | None,
    ) -> None:
        """The one decision path (groomguard.workspace.decide), then tell the moderator what happened."""
        try:
            outcome = await decide(
                self.engine,
                case_id,
                decision,
                str(interaction.user.id),
                note,
                event_id=f"decision:{interaction.id}",
                community=str(interaction.guild_id),
                at=_now(),
                duration_minutes=minutes if decision is Decision.TIMEOUT else None,
            )
        except DecisionRefused as refused:
            await interaction.followup.send(f"Case #{case_id}: not applied — {refused}.", ephemeral=True)
            return
        extra = f" for {duration_label(minutes)}" if decision is Decision.TIMEOUT and minutes else ""
        saved = " Your note is on the case record." if note.strip() else ""
        await interaction.followup.send(f"Case #{outcome.case_id}: {_PAST[decision]}{extra}.{saved}", ephemeral=True)

    def _evidence_embed(
        self, case_id: int, found: tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]
    ) -> discord.Embed:
        case, findings, _audit = found
        embed = discord.Embed(title=f"Evidence for case #{case_id}", colour=discord.Colour.dark_teal())
        lines: list[str] = []
        for name, reason in sorted(case.reasons.items(), key=lambda kv: -float(kv[1]["score"])):
            lines.append(f"**{detector_title(name)}**")
            for raw in reason.get("evidence", []):
                item = Evidence(**raw)
                lines.append(f"• {evidence_line(item, mention(item.child) if item.child else None)}")
        embed.description = _clip("\n".join(lines) or "No evidence items recorded.", 4000)
        embed.set_footer(text=f"{len(findings)} finding(s) on record")
        return embed

    # -- delivery: actions → Discord ------------------------------------------------------

    async def deliver(self, action: ModAlert | ChildNotice | Enforcement) -> None:
        """Carry out one action; idempotent on action_id through the adapter's own table."""
        if action.platform != translate.PLATFORM:
            return
        if not self.bot.is_ready() or not self.ready.done() or self.ready.exception() is not None:
            raise DiscordNotReady(f"discord not ready; {action.action_id} stays in the outbox")
        async with self._delivering:
            if await self.cards.is_done(action.action_id):
                return
            if isinstance(action, ModAlert):
                await self._show_alert(action)
            elif isinstance(action, ChildNotice):
                await self._notify_child(action)
            else:
                await self._enforce(action)
            await self.cards.mark_done(action.action_id)

    def _checked_mod_channel(self, guild_id: int | str, raise_: bool = True) -> discord.TextChannel | None:
        """The private mod channel of this server, checked now (permissions change while we run)."""
        cid = self.settings.mod_channel_for(int(guild_id))
        channel = self.bot.get_channel(cid) if cid else None
        problems = mod_channel_problems(channel, cid, set(self.settings.moderator_role_ids), int(guild_id))
        if problems:
            if raise_:
                raise ModChannelUnusable("; ".join(problems))
            log.error("mod channel unusable: %s", "; ".join(problems))
            return None
        return channel  # type: ignore[return-value]

    async def _show_alert(self, alert: ModAlert, undelivered: list[str] | None = None) -> None:
        card = await self.cards.card(alert.case_id)
        if card is not None and card.version > alert.version:
            return
        if card is not None and card.version == alert.version and undelivered is None:
            return
        channel = self._checked_mod_channel(alert.community)
        assert channel is not None
        notes = undelivered if undelivered is not None else (card.undelivered if card else [])
        notes = list(dict.fromkeys(notes + self._pending_undelivered.pop(alert.case_id, [])))
        embed = render_embed(alert, notes)
        files = await self._card_extras(alert, embed)
        view = render_view(alert, self.settings.timeout_choices_minutes)
        message_id: int | None = None
        if card is not None:
            try:
                target = self.bot.get_channel(card.channel_id) or channel
                await target.get_partial_message(card.message_id).edit(embed=embed, view=view, attachments=files)  # type: ignore[union-attr]
                message_id = card.message_id
                channel_id = card.channel_id
            except discord.NotFound:
                log.warning("card for case %s was deleted; posting a new one", alert.case_id)
        if message_id is None:
            sent = await channel.send(
                embed=embed, view=view, files=files, allowed_mentions=discord.AllowedMentions.none()
            )
            message_id, channel_id = sent.id, channel.id
        await self.cards.save(
            Card(alert.case_id, int(alert.community), channel_id, message_id, alert.version, alert, notes)
        )
        log.info("case %s card %s at version %s", alert.case_id, message_id, alert.version)

    async def _card_extras(self, alert: ModAlert, embed: discord.Embed) -> list[discord.File]:
        """The case picture and the web view link on a card (kept apart from the card text in cards.py)."""
        link_case(embed, self.engine.case_link(alert.case_id))
        picture = await self.engine.case_picture(alert.case_id)
        return attach_picture(embed, picture)

    async def _notify_child(self, notice: ChildNotice) -> None:
        """DM the child; when Discord refuses (DMs closed), tell the moderators on the case card instead."""
        if not notice.child.isdigit():
            log.warning("child notice %s has a non-Discord account id; skipped", notice.action_id)
            return
        card = await self.cards.card(notice.case_id) if notice.case_id else None
        if card is not None and card.alert.suspect == notice.child:
            log.error("child notice %s addressed to the case suspect; refused", notice.action_id)
            return
        try:
            user = self.bot.get_user(int(notice.child)) or await self.bot.fetch_user(int(notice.child))
            dm = await user.create_dm()
            await dm.send(notice.text, allowed_mentions=discord.AllowedMentions.none())
            log.info("child notice %s sent to %s (case %s)", notice.action_id, notice.child, notice.case_id)
            return
        except discord.Forbidden as error:
            if error.code != CANNOT_DM:
                raise
        except discord.NotFound:
            log.warning("child notice %s: account %s not found", notice.action_id, notice.child)
            return
        log.info("child notice %s: DMs closed for %s; telling moderators", notice.action_id, notice.child)
        await self.engine.audit(
            _now(),
            "groomguard",
            "child_notice_undelivered",
            {"platform": translate.PLATFORM, "child": notice.child, "discord_code": CANNOT_DM},
            community=notice.community,
            case_id=notice.case_id,
        )
        if notice.case_id is None:
            return
        if card is not None:
            await self._show_alert(card.alert, [*card.undelivered, notice.child])
            return
        # No card yet (the case is under the alert threshold): hold the note for the first card, and say it now.
        self._pending_undelivered.setdefault(notice.case_id, []).append(notice.child)
        channel = self._checked_mod_channel(notice.community)
        assert channel is not None
        await channel.send(
            embed=discord.Embed(
                title=f"Case #{notice.case_id} · child notice not delivered",
                description=f"{mention(notice.child)} has DMs closed, so GroomGuard's private safety message "
                "could not be sent. Please check on them another way.",
                colour=discord.Colour.gold(),
            ),
            allowed_mentions=discord.AllowedMentions.none(),
        )

    async def _enforce(self, action: Enforcement) -> None:
        """Timeout, kick or ban for real, with the reason in Discord's audit log and GroomGuard's."""
        guild = self.bot.get_guild(int(action.community))
        reason = _clip(f"{action.reason} (moderator {action.moderator}, via GroomGuard)", 512)
        outcome, detail = "applied", ""
        try:
            if guild is None:
                raise ModChannelUnusable(f"guild {action.community} is not available to the bot")
            target = discord.Object(int(action.suspect))
            if action.decision is Decision.BAN:
                await guild.ban(
                    target, reason=reason, delete_message_seconds=self.settings.ban_delete_message_hours * 3600
                )
            elif action.decision is Decision.TIMEOUT:
                minutes = min(action.duration_minutes or 60, 40_320)
                member = guild.get_member(target.id) or await guild.fetch_member(target.id)
                await member.timeout(timedelta(minutes=minutes), reason=reason)
            elif action.decision is Decision.KICK:
                await guild.kick(target, reason=reason)
            else:
                return
        except (discord.Forbidden, discord.NotFound, ModChannelUnusable) as error:
            # Permanent failures: retrying will not help, so say so on the record instead of looping.
            outcome, detail = "failed", str(error)[:300]
            log.error("%s of %s for case %s failed: %s", action.decision.value, action.suspect, action.case_id, detail)
        await self.engine.audit(
            _now(),
            action.moderator,
            f"discord_{action.decision.value}_{outcome}",
            {"platform": translate.PLATFORM, "suspect": action.suspect, "reason": reason, "error": detail},
            community=action.community,
            case_id=action.case_id,
        )

    # -- /groomguard commands -------------------------------------------------------------

    @app_commands.command(name="cases", description="List this server's open GroomGuard cases")
    @app_commands.guild_only()
    async def cases_cmd(self, interaction: discord.Interaction[Any]) -> None:
        if not await self._require_moderator(interaction, "command:cases", None):
            return
        rows = await self.engine.case_queue(community=str(interaction.guild_id), platform=translate.PLATFORM, limit=500)
        open_rows = [r for r in rows if r["status"] in ACTIVE][:20]
        lines = [
            f"**#{r['id']}** {mention(r['suspect'])} · risk now {r['risk_now']:.2f} ({r['band']}) · "
            f"peak {r['peak']:.2f} · {r['status']}"
            for r in open_rows
        ]
        embed = discord.Embed(
            title=f"Open cases ({len(open_rows)})",
            description="\n".join(lines) or "No open cases.",
            colour=discord.Colour.red() if lines else discord.Colour.green(),
        )
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(name="case", description="Show one GroomGuard case")
    @app_commands.describe(case_id="the case number from the alert card")
    @app_commands.guild_only()
    async def case_cmd(self, interaction: discord.Interaction[Any], case_id: app_commands.Range[int, 1]) -> None:
        if not await self._require_moderator(interaction, "command:case", case_id):
            return
        found = await self.engine.get_case(case_id)
        if found is None or found[0].community != str(interaction.guild_id):
            await interaction.response.send_message(f"No case #{case_id} in this server.", ephemeral=True)
            return
        card = await self.cards.card(case_id)
        # Risk read at the server's clock, as on the card and in `groomguard cases show`.
        shown = await self.engine.case_detail(case_id)
        alert = shown[1] if shown is not None else self.engine.case_card(found[0], _now())
        embed = render_embed(alert, card.undelivered if card else [])
        if card is not None:
            embed.add_field(
                name="Card",
                value=f"https://discord.com/channels/{card.guild_id}/{card.channel_id}/{card.message_id}",
                inline=False,
            )
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(name="age", description="Set a member's age band (moderator knowledge beats roles)")
    @app_commands.describe(member="the member", band="minor (under 18), adult, or unknown")
    @app_commands.guild_only()
    async def age_cmd(
        self,
        interaction: discord.Interaction[Any],
        member: discord.Member,
        band: Literal["minor", "adult", "unknown"],
    ) -> None:
        if not await self._require_moderator(interaction, "command:age", None):
            return
        event = AgeDeclared(
            event_id=f"mod-age:{interaction.id}",
            platform=translate.PLATFORM,
            community=str(interaction.guild_id),
            at=_now(),
            account=str(member.id),
            band=AgeBand(band),
            source=AgeSource.MODERATOR,
        )
        await self.engine.ingest([event])
        await self.engine.audit(
            _now(),
            str(interaction.user.id),
            "set_age",
            {"platform": translate.PLATFORM, "account": str(member.id), "band": band},
            community=str(interaction.guild_id),
        )
        await interaction.response.send_message(
            f"{mention(str(member.id))} is now recorded as **{band}** (nothing visible changes for them).",
            ephemeral=True,
            allowed_mentions=discord.AllowedMentions.none(),
        )

    @app_commands.command(name="forget", description="Erase everything GroomGuard holds about a member")
    @app_commands.describe(member="the member whose data is erased")
    @app_commands.guild_only()
    async def forget_cmd(self, interaction: discord.Interaction[Any], member: discord.User) -> None:
        if not await self._require_moderator(interaction, "command:forget", None):
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        account, community = str(member.id), str(interaction.guild_id)
        for card in await self.cards.cards_for(account):
            channel = self.bot.get_channel(card.channel_id)
            if isinstance(channel, discord.TextChannel):
                try:
                    await channel.get_partial_message(card.message_id).delete()
                except discord.HTTPException:
                    log.warning("could not delete card %s while forgetting an account", card.message_id)
        cards = await self.cards.forget(account)
        removed = await self.engine.forget(account, community)
        await self.engine.audit(
            _now(),
            str(interaction.user.id),
            "forget_requested",
            {"platform": translate.PLATFORM, "account": account, "rows": sum(removed.values()), "cards": cards},
            community=community,
        )
        await interaction.followup.send(
            f"Erased {sum(removed.values())} stored record(s) and {cards} alert card(s) about {mention(account)}.",
            ephemeral=True,
            allowed_mentions=discord.AllowedMentions.none(),
        )

    @app_commands.command(name="status", description="GroomGuard health: intents, mod channel, permissions, queue")
    @app_commands.guild_only()
    async def status_cmd(self, interaction: discord.Interaction[Any]) -> None:
        if not await self._require_moderator(interaction, "command:status", None):
            return
        stats = self.engine.stats
        embed = discord.Embed(
            title="GroomGuard status",
            colour=discord.Colour.red() if self.problems else discord.Colour.green(),
        )
        embed.add_field(
            name="Start-up checks", value=_clip("\n".join(self.problems) or "all passed", 1024), inline=False
        )
        if self.warnings:
            embed.add_field(name="Warnings", value=_clip("\n".join(self.warnings), 1024), inline=False)
        embed.add_field(
            name="Engine",
            value=f"events {stats.processed} · alerts {stats.alerts} · notices {stats.notices} · "
            f"queue {self.engine.queue_depth} · delivery errors {stats.delivery_errors}",
            inline=False,
        )
        await interaction.response.send_message(embed=embed, ephemeral=True)
