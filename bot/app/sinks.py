"""Sinks that ship with the core: a rich terminal view for moderators and a JSON Lines file."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import IO

from groomguard.actions import ChildNotice, Enforcement, ModAlert
from groomguard.workspace import evidence_line
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

log = logging.getLogger(__name__)

#: Evidence lines a terminal card shows; `groomguard cases show ID` lists them all.
EVIDENCE_SHOWN = 8


def card_title(alert: ModAlert) -> str:
    """'case #3 · adult0002 · risk now 0.93 (very high) · peak 0.99 · open' — the same words on every surface."""
    band = f" ({alert.band})" if alert.band else ""
    return (
        f"case #{alert.case_id} · {alert.suspect} · risk now {alert.risk:.2f}{band} · peak {alert.peak:.2f} · "
        f"{alert.status}"
    )


def alert_table(alert: ModAlert, evidence_limit: int = EVIDENCE_SHOWN) -> Table:
    """The reasons and evidence of an alert as a table (shared by the terminal sink and the CLI)."""
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold")
    table.add_column()
    if alert.recommended:
        table.add_row("recommended", alert.recommended)
    for reason in alert.reasons:
        table.add_row(reason.title or reason.detector, f"{reason.score:.2f} · {reason.text}")
    shown = alert.evidence[:evidence_limit]
    for n, item in enumerate(shown):
        table.add_row("evidence" if n == 0 else "", evidence_line(item))
    if len(alert.evidence) > len(shown):
        table.add_row("", f"+{len(alert.evidence) - len(shown)} more: groomguard cases show {alert.case_id}")
    if alert.children:
        table.add_row(
            "children",
            f"{len(alert.children)}: {', '.join(alert.children[:12])}" + (" …" if len(alert.children) > 12 else ""),
        )
    if alert.risk_note:
        table.add_row("", f"[dim]{alert.risk_note}[/]")
    return table


class TerminalSink:
    """Prints alert cards, child notices (as sent) and enforcement for someone watching the console.

    `show_alerts=False` leaves cards out (a replay prints each case's final card once it has finished).
    """

    def __init__(self, console: Console | None = None, show_updates: bool = True, show_alerts: bool = True) -> None:
        self.console = console or Console()
        self.show_updates = show_updates
        self.show_alerts = show_alerts
        self.seen: set[str] = set()

    async def deliver(self, action: ModAlert | ChildNotice | Enforcement) -> None:
        if action.action_id in self.seen:
            return
        self.seen.add(action.action_id)
        if isinstance(action, ModAlert):
            if not self.show_alerts or (action.is_update and not self.show_updates):
                return
            print_card(self.console, action)
        elif isinstance(action, ChildNotice):
            title = f"private notice to {action.child} · case #{action.case_id} · never shown to the other account"
            self.console.print(Panel(action.text, title=title, title_align="left", border_style="cyan"))
        else:
            self.console.print(
                f"[yellow]{action.decision.value} {action.suspect}[/] by {action.moderator}: {action.reason}"
            )


def print_card(console: Console, alert: ModAlert, evidence_limit: int = EVIDENCE_SHOWN) -> None:
    """One alert card as a panel (the terminal's version of the Discord embed and the Matrix card)."""
    title = card_title(alert)
    if alert.is_update:
        title += f" · update {alert.version}"
    console.print(Panel(alert_table(alert, evidence_limit), title=title, title_align="left", border_style="red"))


class JsonlSink:
    """Appends every action as one JSON line; idempotent on action_id within a run."""

    def __init__(self, path: Path | None = None, stream: IO[str] | None = None) -> None:
        self.path = path
        self.stream = stream
        self.seen: set[str] = set()
        self._lock = asyncio.Lock()
        self._repaired = False

    async def deliver(self, action: ModAlert | ChildNotice | Enforcement) -> None:
        if action.action_id in self.seen:
            return
        line = action.model_dump_json() + "\n"
        async with self._lock:
            if self.stream is not None:
                self.stream.write(line)
                self.stream.flush()
            elif self.path is not None:
                self._append(line.encode("utf-8"))
            self.seen.add(action.action_id)

    def _append(self, data: bytes) -> None:
        """One O_APPEND write per line (looping on short writes); a torn last line is cut first.

        A process killed mid-write leaves a partial line with no newline; the outbox redelivers that
        action, so the fragment is removed rather than glued to the next line.
        """
        assert self.path is not None
        if not self._repaired:
            self._repaired = True
            cut_torn_tail(self.path)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)


def cut_torn_tail(path: Path) -> int:
    """Truncate `path` after its last newline; returns the bytes removed (0 when it ends cleanly or is absent)."""
    try:
        handle = path.open("rb+")
    except FileNotFoundError:
        return 0
    with handle:
        size = handle.seek(0, os.SEEK_END)
        end = size
        while end > 0:
            start = max(0, end - 65536)
            handle.seek(start)
            chunk = handle.read(end - start)
            at = chunk.rfind(b"\n")
            if at >= 0:
                end = start + at + 1
                break
            end = start
        if end == size:
            return 0
        handle.truncate(end)
    log.warning("%s ended in a partial line (an interrupted write): removed %d bytes", path, size - end)
    return size - end
