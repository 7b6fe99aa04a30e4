"""Replay adapter: feeds JSON Lines of events (a file or stdin) into the engine, skipping bad lines with reasons."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from groomguard.events import MAX_TEXT_CHARS, BaseEvent, EventError, parse_event

log = logging.getLogger(__name__)

#: Lines up to this size are parsed as they are. A longer line is still read (up to HARD_LINE_BYTES)
#: and parsed, and its message text is truncated by the event model with a note, never dropped.
MAX_LINE_BYTES = 1_048_576
#: Past this a line is not an event anyone meant to send: it is skipped, counted and reported.
HARD_LINE_BYTES = 16 * MAX_LINE_BYTES
#: Events of a replayed file handed to the engine per call (see `replay`).
FILE_CHUNK = 256


@dataclass
class ReplayReport:
    """What a replay read: lines, events submitted, and every skipped line with its reason."""

    lines: int = 0
    submitted: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)
    #: Lines over MAX_LINE_BYTES that were kept with their text truncated, with a note each.
    truncated: list[tuple[int, str]] = field(default_factory=list)

    @property
    def bad(self) -> int:
        return len(self.skipped)


def read_lines(handle: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """Yield (line number, raw line) without ever holding more than one oversized line in memory."""
    number = 0
    while True:
        line = handle.readline(HARD_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        if len(line) > HARD_LINE_BYTES and not line.endswith(b"\n"):
            while (rest := handle.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                pass
            yield number, b""  # marker for "too long"
            continue
        yield number, line


class Feed(Protocol):
    """What replay needs of the engine (a part of groomguard.port.EnginePort)."""

    async def submit(self, event: BaseEvent) -> None: ...

    async def submit_many(self, events: Sequence[BaseEvent]) -> None: ...

    def reject(self, source: str, count: int = 1) -> None: ...

    async def drain(self) -> None: ...


async def replay(
    engine: Feed,
    source: Path | IO[bytes] | str,
    progress: Callable[[int], None] | None = None,
) -> ReplayReport:
    """Submit every valid event in `source` ('-' = stdin); bad lines are reported and skipped."""
    report = ReplayReport()
    handle: IO[bytes]
    if source == "-" or source == Path("-"):
        handle = sys.stdin.buffer
    elif isinstance(source, str | Path):
        # Local files are read line by line; each read is short and the queue applies back-pressure.
        handle = Path(source).open("rb")  # noqa: SIM115, ASYNC230 - closed below
    else:
        handle = source
    # A file is read ahead in chunks handed over in one call each; a stream (stdin) event by event, so a
    # slow producer's events are not held back waiting for a chunk to fill.
    chunk_size = FILE_CHUNK if isinstance(source, str | Path) and handle is not sys.stdin.buffer else 1
    chunk: list[BaseEvent] = []
    try:
        for number, raw in read_lines(handle):
            report.lines += 1
            if progress is not None:
                progress(len(raw) or MAX_LINE_BYTES)
            if not raw:
                report.skipped.append((number, f"line longer than {HARD_LINE_BYTES} bytes"))
                engine.reject("replay")
                continue
            if not raw.strip():
                continue
            try:
                event = parse_event(raw)
            except EventError as error:
                report.skipped.append((number, error.reason))
                engine.reject("replay")
                log.warning("line %d skipped: %s", number, error.reason)
                continue
            if len(raw) > MAX_LINE_BYTES:
                note = f"line of {len(raw):,} bytes: message text truncated to {MAX_TEXT_CHARS:,} characters"
                report.truncated.append((number, note))
                log.warning("line %d: %s", number, note)
            chunk.append(event)
            if len(chunk) >= chunk_size:
                await engine.submit_many(chunk)
                report.submitted += len(chunk)
                chunk = []
        if chunk:
            await engine.submit_many(chunk)
            report.submitted += len(chunk)
    finally:
        if handle is not sys.stdin.buffer and isinstance(source, str | Path):
            handle.close()
    await engine.drain()
    return report
