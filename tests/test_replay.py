"""The replay adapter: every bad line is reported with its number and reason, counted, and never stops the run."""

from __future__ import annotations

import io
from pathlib import Path

from groomguard.adapters.replay import HARD_LINE_BYTES, MAX_LINE_BYTES, replay
from groomguard.events import MAX_TEXT_CHARS, MessageSent, dump_event
from groomguard.testing import EventFactory, running_engine


async def test_bad_lines_are_skipped_with_reasons_and_counted(db: Path, ev: EventFactory) -> None:
    good = [ev.message("a", "hi"), ev.message("b", "hello")]
    lines = [
        dump_event(good[0]).encode(),
        b"\xff\xfe binary junk",
        b'{"type": "message_sent"}',
        b"",
        b"x" * (HARD_LINE_BYTES + 10),
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


async def test_a_message_over_a_megabyte_is_truncated_with_a_note_not_dropped(db: Path, ev: EventFactory) -> None:
    small = dump_event(ev.message("a", "hello"))
    raw = small.replace('"hello"', '"' + "hello " * 300_000 + '"').encode()  # 1.8 MB of text in one event
    assert len(raw) > MAX_LINE_BYTES
    async with running_engine(db) as (engine, _):
        report = await replay(engine, io.BytesIO(raw + b"\n"))
        assert engine.stats.stored == 1
    assert report.submitted == 1 and not report.skipped
    assert report.truncated and "truncated" in report.truncated[0][1]


def test_truncated_text_is_flagged_on_the_event() -> None:
    event = EventFactory().message("a", "x" * (MAX_TEXT_CHARS + 5))
    assert isinstance(event, MessageSent) and event.truncated and len(event.text) == MAX_TEXT_CHARS


async def test_a_lone_surrogate_is_a_clear_per_line_error(db: Path, ev: EventFactory) -> None:
    good = dump_event(ev.message("a", "hi there")).encode()
    bad = good.replace(b"hi there", b"hi \\ud800 there")
    assert b"\\ud800" in bad
    async with running_engine(db) as (engine, _):
        report = await replay(engine, io.BytesIO(bad + b"\n" + good + b"\n"))
    assert [n for n, _ in report.skipped] == [1]
    assert "surrogate" in report.skipped[0][1]
