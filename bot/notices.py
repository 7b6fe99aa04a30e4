"""Child notices: pick a kind, stage-appropriate text from templates and rate-limit per child."""

from __future__ import annotations

import tomllib
from collections import defaultdict, deque
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
        for stage in self.order:
            if stage in stages and stage in self.texts:
                return self.texts[stage]
        return self.texts["general"]


@cache
def load_templates(path: Path = TEMPLATES) -> NoticeTemplates:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return NoticeTemplates(tuple(data.get("order", ())), dict(data["templates"]))


class NoticeBook:
    """Decides whether a child may be notified now; the suspect is never a recipient."""

    def __init__(self, settings: NoticeSettings) -> None:
        self.settings = settings
        self.templates = load_templates()
        self.sent: dict[tuple[str, str], deque[tuple[datetime, str]]] = defaultdict(deque)
        self.pending: list[tuple[str, str, str, str]] = []
        self.suppressed = 0

    def forget(self, account: str, community: str | None = None) -> None:
        """Drop the notice history naming `account`, as child or as suspect (the right to erasure)."""
        for key in list(self.sent):
            if community is not None and key[0] != community:
                continue
            if key[1] == account:
                del self.sent[key]
                continue
            kept = deque(entry for entry in self.sent[key] if entry[1] != account)
            if kept:
                self.sent[key] = kept
            else:
                del self.sent[key]
        self.pending = [row for row in self.pending if account not in row[1:3]]

    def load(self, rows: list[tuple[str, str, str, datetime]]) -> None:
        for community, child, suspect, at in rows:
            self.sent[(community, child)].append((at, suspect))

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
        if not self._allow(finding.community, child, finding.suspect, finding.at):
            return None
        return self._notice(
            self.templates.pick(finding.stages),
            finding.platform,
            finding.community,
            child,
            case_id,
            finding.at,
            finding.event_key,
        )

    def pattern_notice(
        self, platform: str, community: str, child: str, suspect: str, case_id: int, at: datetime, event_key: str
    ) -> ChildNotice | None:
        """The account-pattern notice for a child `suspect` just contacted, or None when rate-limited.

        The caller has checked that `suspect` has an open fan_out, rejections or new-account case and
        that `child` is a minor who is not under suspicion. Same limits as every notice: one per child
        and account per `min_hours_between`, `max_per_child_per_day` in all.
        """
        if not child or child == suspect or not self._allow(community, child, suspect, at):
            return None
        template = self.templates.texts.get("account_pattern") or self.templates.texts["general"]
        return self._notice(template, platform, community, child, case_id, at, event_key)

    def _allow(self, community: str, child: str, suspect: str, at: datetime) -> bool:
        """Apply the rate limit and, when allowed, record the notice (in memory and for the store)."""
        history = self.sent[(community, child)]
        while history and history[0][0] < at - timedelta(days=1):
            history.popleft()
        recent_same = any(
            s == suspect and at - sent < timedelta(hours=self.settings.min_hours_between) for sent, s in history
        )
        if recent_same or len(history) >= self.settings.max_per_child_per_day:
            self.suppressed += 1
            return False
        history.append((at, suspect))
        self.pending.append((community, child, suspect, at.isoformat()))
        return True

    def _notice(
        self,
        template: str,
        platform: str,
        community: str,
        child: str,
        case_id: int | None,
        at: datetime,
        event_key: str,
    ) -> ChildNotice:
        helpline = self.settings.helpline()
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
            case_id=case_id,
            at=at,
        )

    def take_pending(self) -> list[tuple[str, str, str, str]]:
        pending, self.pending = self.pending, []
        return pending
