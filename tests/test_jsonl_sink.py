"""The JSON Lines sink after a crash: a line torn by kill -9 is cut, never glued to the next action."""

from __future__ import annotations

import json
import logging
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
