"""Sinks that ship with the core: a rich terminal view for moderators and a JSON Lines file."""

from __future__ import annotations

import asyncio
import fcntl
import json
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
    """Appends every action as one JSON line, idempotent on action_id across restarts and processes.

    With a path, the file is its own record of what was posted: each append first reads, under an
    exclusive lock on the file, the lines other processes (or this one before a restart) appended since,
    so engines sharing one file after a takeover, or a process restarted on it, never write an action
    twice. A stream (stdout) dedupes within the run only.
    """

    def __init__(self, path: Path | None = None, stream: IO[str] | None = None) -> None:
        self.path = path
        self.stream = stream
        self.seen: set[str] = set()
        self._lock = asyncio.Lock()
        #: Bytes of the file already read into `seen`.
        self._offset = 0
        #: Lines of the file that are not an action (hand edits, another tool's output): counted, logged once.
        self.unreadable = 0

    async def deliver(self, action: ModAlert | ChildNotice | Enforcement) -> None:
        if action.action_id in self.seen:
            return
        line = action.model_dump_json() + "\n"
        async with self._lock:
            if self.stream is not None:
                self.stream.write(line)
                self.stream.flush()
            elif self.path is not None and not self._append(action.action_id, line.encode("utf-8")):
                return  # already in the file: written by another process, or before a restart
            self.seen.add(action.action_id)

    def _append(self, action_id: str, data: bytes) -> bool:
        """Append one line unless the file already holds `action_id`; True when it was written.

        Under `flock` (held for one read of what was appended since and one write), one O_APPEND write per
        line, looping on short writes. Every writer takes the lock, so a partial last line found under it
        was left by a process killed mid-write: it is cut, and the outbox redelivers that action whole.
        """
        assert self.path is not None
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._catch_up(fd)
            if action_id in self.seen:
                return False
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            self._offset += len(data)
            return True
        finally:
            os.close(fd)  # releases the lock

    def _catch_up(self, fd: int) -> None:
        """Read the action ids of the whole lines appended past `_offset`; cut a torn last line."""
        size = os.fstat(fd).st_size
        if size < self._offset:  # truncated or replaced under us: read it again from the start
            self._offset = 0
        if size == self._offset:
            return
        chunk = os.pread(fd, size - self._offset, self._offset)
        end = chunk.rfind(b"\n") + 1
        if end < len(chunk):
            os.ftruncate(fd, self._offset + end)
            log.warning(
                "%s ended in a partial line (an interrupted write): removed %d bytes", self.path, len(chunk) - end
            )
        for raw in chunk[:end].splitlines():
            try:
                self.seen.add(str(json.loads(raw)["action_id"]))
            except (ValueError, KeyError, TypeError):
                if raw.strip():
                    self.unreadable += 1
                    if self.unreadable == 1:
                        log.warning("%s holds lines that are not actions; they are kept and skipped", self.path)
        self._offset += end


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
