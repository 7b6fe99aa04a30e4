"""Sinks that ship with the core: a rich terminal view for moderators and a JSON Lines file."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import IO

from groomguard.actions import ChildNotice, Enforcement, ModAlert
from rich.console import Console
from rich.panel import Panel
from rich.table import Table


def alert_table(alert: ModAlert) -> Table:
    """The reasons and evidence of an alert as a table (shared by the terminal sink and the CLI)."""
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold")
    table.add_column()
    for reason in alert.reasons:
        table.add_row(f"{reason.detector} {reason.score:.2f}", reason.text)
    if alert.evidence:
        shown = ", ".join(f"{e.kind}:{e.ref}" for e in alert.evidence[:8])
        more = f" (+{len(alert.evidence) - 8} more)" if len(alert.evidence) > 8 else ""
        table.add_row("evidence", shown + more)
    return table


class TerminalSink:
    """Prints alert cards, child notices (as sent) and enforcement for someone watching the console."""

    def __init__(self, console: Console | None = None, show_updates: bool = True) -> None:
        self.console = console or Console()
        self.show_updates = show_updates
        self.seen: set[str] = set()

    async def deliver(self, action: ModAlert | ChildNotice | Enforcement) -> None:
        if action.action_id in self.seen:
            return
        self.seen.add(action.action_id)
        if isinstance(action, ModAlert):
            if action.is_update and not self.show_updates:
                return
            title = f"case #{action.case_id} · {action.suspect} · risk {action.risk:.2f} · {action.status}"
            if action.is_update:
                title += f" · update {action.version}"
            self.console.print(Panel(alert_table(action), title=title, title_align="left", border_style="red"))
        elif isinstance(action, ChildNotice):
            title = f"private notice to {action.child} · case #{action.case_id} · never shown to the other account"
            self.console.print(Panel(action.text, title=title, title_align="left", border_style="cyan"))
        else:
            self.console.print(
                f"[yellow]{action.decision.value} {action.suspect}[/] by {action.moderator}: {action.reason}"
            )


class JsonlSink:
    """Appends every action as one JSON line; idempotent on action_id within a run."""

    def __init__(self, path: Path | None = None, stream: IO[str] | None = None) -> None:
        self.path = path
        self.stream = stream
        self.seen: set[str] = set()
        self._lock = asyncio.Lock()

    async def deliver(self, action: ModAlert | ChildNotice | Enforcement) -> None:
        if action.action_id in self.seen:
            return
        line = action.model_dump_json() + "\n"
        async with self._lock:
            if self.stream is not None:
                self.stream.write(line)
                self.stream.flush()
            elif self.path is not None:
                with self.path.open("a", encoding="utf-8") as handle:
                    handle.write(line)
            self.seen.add(action.action_id)
