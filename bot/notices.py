"""Child notices: pick a kind, stage-appropriate text from templates and rate-limit per child."""

from __future__ import annotations

import tomllib
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

from groomguard.actions import ChildNotice
from groomguard.config import NoticeSettings
from groomguard.findings import Finding

TEMPLATES = Path(__file__).with_name("templates") / "child_notice.toml"


@dataclass(frozen=True)
class NoticeTemplates:
    order: tuple[str, ...]
    texts: dict[str, str]

    def pick(self, stages: tuple[str, ...]) -> str:
        return self.texts[self.pick_key(stages)]

    def pick_key(self, stages: tuple[str, ...]) -> str:
        """The template key for what a conversation showed: the first stage in `order`, else 'general'."""
        for stage in self.order:
            if stage in stages and stage in self.texts:
                return stage
        return "general"


def template_path(locale: str) -> Path:
    """English lives in child_notice.toml; every other locale in child_notice.<locale>.toml beside it."""
    return TEMPLATES if locale == "en" else TEMPLATES.with_name(f"child_notice.{locale}.toml")


@cache
def load_templates(path: Path = TEMPLATES) -> NoticeTemplates:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return NoticeTemplates(tuple(data.get("order", ())), dict(data["templates"]))


@dataclass(frozen=True)
class Sent:
    """One notice sent to a child: when, about which account, and for which stage ('' = a first notice)."""

    at: datetime
    suspect: str
    stage: str = ""


class NoticeBook:
    """Decides whether a child may be notified now; the suspect is never a recipient.

    Limits, per child, in event time: one notice per account per `min_hours_between`; inside that window
    a new, more serious stage (`escalation_stages`: photos, a meeting) gets one more notice, once per
    stage; and never more than `max_per_child_per_day` in 24 hours, all together. What was sent is
    written with the batch (the notices table), so a restart keeps the same limits.
    """

    def __init__(self, settings: NoticeSettings) -> None:
        self.settings = settings
        self.templates = load_templates()
        self.sent: dict[tuple[str, str], deque[Sent]] = defaultdict(deque)
        self.pending: list[tuple[str, str, str, str, str]] = []
        self.suppressed = 0

    def forget(self, account: str, community: str | None = None) -> None:
        """Drop the notice history naming `account`, as child or as suspect (the right to erasure)."""
        for key in list(self.sent):
            if community is not None and key[0] != community:
                continue
            if key[1] == account:
                del self.sent[key]
                continue
            kept = deque(entry for entry in self.sent[key] if entry.suspect != account)
            if kept:
                self.sent[key] = kept
            else:
                del self.sent[key]
        self.pending = [row for row in self.pending if account not in row[1:3]]

    def load(self, rows: Sequence[tuple[str, str, str, datetime] | tuple[str, str, str, datetime, str]]) -> None:
        for row in rows:
            community, child, suspect, at = row[:4]
            stage = row[4] if len(row) > 4 else ""  # type: ignore[misc]
            self.sent[(community, child)].append(Sent(at, suspect, str(stage or "")))

    def notice_for(
        self, finding: Finding, case_id: int | None, child_under_suspicion: bool = False
    ) -> ChildNotice | None:
        """A notice for the finding's child, or None when rate-limited or not applicable.

        An account that is itself an active suspect (an adult posing as a child) never gets one:
        the notice would tell it that conversations are being read.
        """
        child = finding.child
        if not finding.notify_child or not child or child == finding.suspect or child_under_suspicion:
            return None
        locale, _ = self.settings.for_community(finding.community)
        key = self._templates(locale).pick_key(finding.stages)
        stage = self._allow(finding.community, child, finding.suspect, finding.at, key, finding.stages)
        if stage is None:
            return None
        return self._notice(stage, finding.platform, finding.community, child, case_id, finding.at, finding.event_key)

    def pattern_notice(
        self, platform: str, community: str, child: str, suspect: str, case_id: int, at: datetime, event_key: str
    ) -> ChildNotice | None:
        """The account-pattern notice for a child `suspect` just contacted, or None when rate-limited.

        The caller has checked that `suspect` has an open fan_out, rejections or new-account case and
        that `child` is a minor who is not under suspicion. Same limits as every notice: one per child
        and account per `min_hours_between`, `max_per_child_per_day` in all.
        """
        if not child or child == suspect or self._allow(community, child, suspect, at, "account_pattern") is None:
            return None
        return self._notice("account_pattern", platform, community, child, case_id, at, event_key)

    def _allow(
        self, community: str, child: str, suspect: str, at: datetime, key: str, stages: tuple[str, ...] = ()
    ) -> str | None:
        """Apply the limits; when allowed, record the notice and return the template key to send."""
        history = self.sent[(community, child)]
        while history and history[0].at < at - timedelta(days=1):
            history.popleft()
        if len(history) >= self.settings.max_per_child_per_day:
            self.suppressed += 1
            return None
        window = timedelta(hours=self.settings.min_hours_between)
        recent = [e for e in history if e.suspect == suspect and at - e.at < window]
        if recent:
            # Inside the window only a serious stage the child has not yet been told about goes out.
            told = {e.stage for e in recent}
            fresh = [s for s in self.templates.order if s in stages and s in self.settings.escalation_stages]
            fresh = [s for s in fresh if s not in told]
            if not fresh:
                self.suppressed += 1
                return None
            key = fresh[0]
        history.append(Sent(at, suspect, key))
        self.pending.append((community, child, suspect, at.isoformat(), key))
        return key

    def _templates(self, locale: str) -> NoticeTemplates:
        return self.templates if locale == "en" else load_templates(template_path(locale))

    def _notice(
        self,
        key: str,
        platform: str,
        community: str,
        child: str,
        case_id: int | None,
        at: datetime,
        event_key: str,
    ) -> ChildNotice:
        locale, helpline = self.settings.for_community(community)
        templates = self._templates(locale)
        template = templates.texts.get(key) or templates.texts["general"]
        text = template.format(
            helpline_name=helpline.name, helpline_contact=helpline.contact, helpline_url=helpline.url
        ).strip()
        return ChildNotice(
            action_id=f"notice:{event_key}:{child}",
            platform=platform,
            community=community,
            child=child,
            text=text,
            helpline=f"{helpline.name} {helpline.contact}",
            locale=locale,
            case_id=case_id,
            at=at,
        )

    def take_pending(self) -> list[tuple[str, str, str, str, str]]:
        pending, self.pending = self.pending, []
        return pending
