"""The JSON Lines sink after a crash: a line torn by kill -9 is cut, never glued to the next action."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from groomguard.actions import ModAlert
from groomguard.app.sinks import JsonlSink, cut_torn_tail


def _alert(action_id: str) -> ModAlert:
    return ModAlert(
        action_id=action_id,
        platform="webhook",
        community="c1",
        case_id=1,
        suspect="adult",
        risk=0.9,
        reasons=(),
        at=datetime(2026, 3, 1, tzinfo=UTC),
    )


async def test_a_torn_last_line_is_removed_before_the_next_append(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "actions.jsonl"
    whole = _alert("a1").model_dump_json() + "\n"
    out.write_text(whole + _alert("a2").model_dump_json()[:37], encoding="utf-8")  # killed mid-write
    with caplog.at_level(logging.WARNING):
        await JsonlSink(out).deliver(_alert("a2"))  # the outbox redelivers the torn action
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["action_id"] for line in lines] == ["a1", "a2"]
    assert "partial line" in caplog.text


def test_a_clean_or_missing_file_is_left_alone(tmp_path: Path) -> None:
    out = tmp_path / "actions.jsonl"
    assert cut_torn_tail(out) == 0 and not out.exists()
    out.write_text('{"action_id": "a1"}\n', encoding="utf-8")
    assert cut_torn_tail(out) == 0 and out.read_text(encoding="utf-8") == '{"action_id": "a1"}\n'
    out.write_text("x" * 100_000, encoding="utf-8")  # no newline at all: nothing complete to keep
    assert cut_torn_tail(out) == 100_000 and out.read_bytes() == b""


async def test_a_restarted_or_second_sink_on_the_same_file_never_writes_an_action_twice(tmp_path: Path) -> None:
    out = tmp_path / "actions.jsonl"
    first, second = JsonlSink(out), JsonlSink(out)  # two processes (or one before and after a restart)
    await first.deliver(_alert("a1"))
    await second.deliver(_alert("a1"))  # the engine that took over hands the same action over again
    await second.deliver(_alert("a2"))
    await first.deliver(_alert("a2"))
    await JsonlSink(out).deliver(_alert("a1"))
    assert [json.loads(line)["action_id"] for line in out.read_text(encoding="utf-8").splitlines()] == ["a1", "a2"]


async def test_lines_that_are_not_actions_are_kept_and_counted(tmp_path: Path) -> None:
    out = tmp_path / "actions.jsonl"
    out.write_text('# exported by hand\n{"no": "id"}\n' + _alert("a1").model_dump_json() + "\n", encoding="utf-8")
    sink = JsonlSink(out)
    await sink.deliver(_alert("a1"))
    await sink.deliver(_alert("a2"))
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[:2] == ["# exported by hand", '{"no": "id"}'] and len(lines) == 4
    assert sink.unreadable == 2


WRITER = """
import asyncio, sys
from datetime import UTC, datetime
from groomguard.actions import ModAlert
from groomguard.app.sinks import JsonlSink

async def main() -> None:
    sink = JsonlSink(__import__("pathlib").Path(sys.argv[1]))
    ids = [f"a{i}" for i in range(300)]
    for i in (ids if sys.argv[2] == "up" else ids[::-1]):
        alert = ModAlert(action_id=i, platform="webhook", community="c1", case_id=1, suspect="adult", risk=0.9,
                         reasons=(), at=datetime(2026, 3, 1, tzinfo=UTC))
        await sink.deliver(alert)

asyncio.run(main())
"""


async def test_two_processes_appending_the_same_actions_write_each_once(tmp_path: Path) -> None:
    out = tmp_path / "actions.jsonl"
    procs = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", WRITER, str(out), order) for order in ("up", "down")
    ]
    assert [await p.wait() for p in procs] == [0, 0]
    ids = [json.loads(line)["action_id"] for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(ids) == 300 and set(ids) == {f"a{i}" for i in range(300)}
