"""The replay adapter: every bad line is reported with its number and reason, counted, and never stops the run."""

from __future__ import annotations

import io
from pathlib import Path

from adapters.replay import MAX_LINE_BYTES, replay
from bot.events import dump_event
from bot.testing import EventFactory, running_engine


async def test_bad_lines_are_skipped_with_reasons_and_counted(db: Path, ev: EventFactory) -> None:
    good = [ev.message("a", "hi"), ev.message("b", "hello")]
    lines = [
        dump_event(good[0]).encode(),
        b"\xff\xfe binary junk",
        b'{"type": "message_sent"}',
        b"",
        b"x" * (MAX_LINE_BYTES + 10),
        dump_event(good[1]).encode(),
        dump_event(good[1]).encode(),  # a duplicate is stored once, not an error
    ]
    stream = io.BytesIO(b"\n".join(lines) + b"\n")
    async with running_engine(db) as (engine, _):
        report = await replay(engine, stream)
        assert engine.stats.stored == 2 and engine.stats.duplicates == 1
        assert engine.stats.rejected == {"replay": 3}
    assert report.submitted == 3
    assert [n for n, _ in report.skipped] == [2, 3, 5]
    reasons = dict(report.skipped)
    assert "JSON" in reasons[2]
    assert "event_id" in reasons[3] or "Field required" in reasons[3]
    assert "longer than" in reasons[5]
