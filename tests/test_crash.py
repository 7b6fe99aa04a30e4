"""Crash safety for real: `groomguard replay` as a subprocess, killed with SIGKILL and SIGTERM/SIGINT, then resumed."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bot.events import dump_event
from bot.simulate import CommunitySpec, generate

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
#: Fixed so a failure can be replayed; GROOMGUARD_CRASH_SEED picks other kill points.
SEED = int(os.environ.get("GROOMGUARD_CRASH_SEED", "20260531"))
KILLS = 8
RUN_TIMEOUT = 180


def _stream(path: Path) -> tuple[set[str], int]:
    """Write a large multi-community stream with bad and duplicate lines; return valid keys and line count."""
    events = []
    for i in range(4):
        spec = CommunitySpec(
            community=f"crash-{i}",
            platform=f"crash{i}",
            adults=300,
            minors=220,
            days=14,
            chatter_per_day=350,
            fan_out_groomers=3,
            language_groomers=2,
            seed=100 + i,
        )
        events.extend(generate(spec)[0])
    events.sort(key=lambda e: e.at)
    rng = random.Random(SEED)
    lines = [dump_event(e) for e in events]
    # At-least-once producers resend; broken producers send junk. Neither may change the outcome.
    for _ in range(200):
        lines.insert(rng.randrange(len(lines)), rng.choice(lines))
    for junk in ('{"type": "teleport"}', "{not json", '{"type": "message_sent"}'):
        lines.insert(rng.randrange(len(lines)), junk)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {e.key for e in events}, len(lines)


def _command(stream: Path, db: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "bot", "replay", str(stream), "--db", str(db), "--out", str(out), "--quiet"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROOMGUARD_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _start(stream: Path, db: Path, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        _command(stream, db, out), cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _progress(db: Path) -> tuple[int, int]:
    """(events stored, watermark) as another process sees them; (0, 0) before the schema exists."""
    if not db.exists():
        return 0, 0
    try:
        con = sqlite3.connect(db, timeout=5)
        try:
            stored = con.execute("SELECT COUNT(*) FROM events").fetchone()[0]
            row = con.execute("SELECT value FROM meta WHERE name = 'watermark'").fetchone()
            return int(stored), int(row[0]) if row else 0
        finally:
            con.close()
    except sqlite3.Error:
        return 0, 0


def _outcome(db: Path) -> dict[str, Any]:
    """Everything derived from the events, without wall-clock columns; double processing changes it."""
    con = sqlite3.connect(db)
    try:
        q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
        return {
            "accounts": q("SELECT * FROM accounts ORDER BY 1, 2"),
            "regions": q("SELECT * FROM regions ORDER BY 1, 2, 3"),
            "contacts": q("SELECT * FROM contacts ORDER BY 1, 2, 3"),
            "requests": q("SELECT * FROM requests ORDER BY 1, 2, 3, 4"),
            "accepted": q("SELECT * FROM accepted ORDER BY 1, 2, 3"),
            # Additive upserts: a batch processed twice would double these counters.
            "views": q("SELECT * FROM views ORDER BY 1, 2, 3"),
            "conversations": q("SELECT * FROM conversations ORDER BY 1, 2"),
            "messages": q("SELECT * FROM messages ORDER BY 1, 2"),
            "cases": q(
                "SELECT id, platform, community, suspect, status, round(risk, 9), opened_at, updated_at,"
                " alert_version, dismissals, children, reasons FROM cases ORDER BY id"
            ),
            "findings": q(
                "SELECT case_id, detector, community, suspect, round(score, 9), reason, evidence, child, at, event_key"
                " FROM findings ORDER BY id"
            ),
            "actions": q("SELECT id, kind, case_id, subject, created_at, payload FROM actions ORDER BY id"),
            "notices": q("SELECT * FROM notices ORDER BY 1, 2, 3, 4"),
        }
    finally:
        con.close()


def _log_integrity(db: Path, keys: set[str]) -> dict[str, Any]:
    """Facts about the event log: each key once, sequence without holes, everything processed and delivered."""
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT seq, key FROM events ORDER BY seq").fetchall()
        watermark = int(con.execute("SELECT value FROM meta WHERE name = 'watermark'").fetchone()[0])
        pending = con.execute("SELECT COUNT(*) FROM actions WHERE delivered_at IS NULL").fetchone()[0]
    finally:
        con.close()
    stored = [k for _, k in rows]
    return {
        "stored": len(stored),
        "distinct": len(set(stored)),
        "missing": len(keys - set(stored)),
        "unexpected": len(set(stored) - keys),
        "contiguous": [s for s, _ in rows] == list(range(1, len(rows) + 1)),
        "processed_to_end": watermark == (rows[-1][0] if rows else 0),
        "pending_actions": pending,
    }


def _delivered(out: Path) -> tuple[set[str], int]:
    """Action ids the sink received, and how many lines it got (at-least-once: repeats allowed)."""
    if not out.exists():
        return set(), 0
    ids = [json.loads(line)["action_id"] for line in out.read_text(encoding="utf-8").splitlines() if line]
    return set(ids), len(ids)


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The stream and the outcome of one uninterrupted subprocess run over it."""
    base = tmp_path_factory.mktemp("crash")
    stream = base / "stream.jsonl"
    keys, lines = _stream(stream)
    ref_db, ref_out = base / "reference.db", base / "reference-actions.jsonl"
    started = time.perf_counter()
    done = subprocess.run(
        _command(stream, ref_db, ref_out), cwd=ROOT, env=_env(), capture_output=True, timeout=RUN_TIMEOUT
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    reference = _outcome(ref_db)
    assert reference["cases"], "the planted groomers should open cases"
    assert any(kind == "mod_alert" for _, kind, *_ in reference["actions"])
    integrity = _log_integrity(ref_db, keys)
    assert integrity["missing"] == 0 and integrity["processed_to_end"]
    return {
        "base": base,
        "stream": stream,
        "keys": keys,
        "lines": lines,
        "reference": reference,
        "reference_ids": _delivered(ref_out)[0],
        "seconds": time.perf_counter() - started,
    }


def _assert_same_as_reference(db: Path, out: Path, workload: dict[str, Any]) -> dict[str, Any]:
    integrity = _log_integrity(db, workload["keys"])
    assert integrity == {
        "stored": len(workload["keys"]),
        "distinct": len(workload["keys"]),
        "missing": 0,
        "unexpected": 0,
        "contiguous": True,
        "processed_to_end": True,
        "pending_actions": 0,
    }
    outcome = _outcome(db)
    for table, rows in workload["reference"].items():
        assert outcome[table] == rows, f"{table} differs from the uninterrupted run"
    delivered, lines = _delivered(out)
    assert delivered == workload["reference_ids"], "alerts/notices delivered differ from the uninterrupted run"
    return {"delivered_lines": lines, "distinct_actions": len(delivered)}


def test_sigkill_at_random_points_loses_and_doubles_nothing(workload: dict[str, Any]) -> None:
    db, out = workload["base"] / "killed.db", workload["base"] / "killed-actions.jsonl"
    rng = random.Random(SEED)
    total = len(workload["keys"])
    kills: list[dict[str, Any]] = []
    for attempt in range(KILLS):
        proc = _start(workload["stream"], db, out)
        if attempt == 0 or rng.random() < 0.25:
            # Anywhere: during imports, migrations, recovery or the first batches.
            time.sleep(rng.uniform(0.05, min(1.5, workload["seconds"] * 0.5)))
        else:
            # Stratified so the kills spread over the whole stream instead of bunching at its end.
            target = int(total * rng.uniform(attempt, attempt + 1) / (KILLS + 1))
            deadline = time.monotonic() + RUN_TIMEOUT
            while proc.poll() is None and _progress(db)[0] < target and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0, 0.2))  # land between, not only on, commits
        proc.send_signal(signal.SIGKILL)
        rc = proc.wait(timeout=30)
        stored, watermark = _progress(db)
        kills.append({"rc": rc, "stored": stored, "watermark": watermark})
        if rc == 0:
            break  # finished before the kill landed; the checks below still hold
        assert rc == -signal.SIGKILL
    final = subprocess.run(
        _command(workload["stream"], db, out), cwd=ROOT, env=_env(), capture_output=True, timeout=RUN_TIMEOUT
    )
    assert final.returncode == 0, final.stderr.decode()[-3000:]
    delivery = _assert_same_as_reference(db, out, workload)
    killed = [k for k in kills if k["rc"] == -signal.SIGKILL]
    assert len(killed) >= KILLS - 1, f"too few kills landed: {kills}"
    assert sum(0 < k["stored"] < total for k in killed) >= KILLS // 2, f"too few kills landed mid-stream: {kills}"
    report = {
        "kills": len(killed),
        "events": total,
        "lines": workload["lines"],
        "kill_points": kills,
        "losses": 0,
        "doubles": 0,
        **delivery,
    }
    (workload["base"] / "sigkill-report.json").write_text(json.dumps(report))
    print("sigkill report:", json.dumps(report))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_graceful_stop_drains_the_queue(workload: dict[str, Any], signum: signal.Signals) -> None:
    db, out = workload["base"] / f"{signum.name}.db", workload["base"] / f"{signum.name}-actions.jsonl"
    total = len(workload["keys"])
    proc = _start(workload["stream"], db, out)
    deadline = time.monotonic() + RUN_TIMEOUT
    while proc.poll() is None and _progress(db)[0] < total // 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    text = stderr.decode()
    if proc.returncode == 0:
        pytest.skip("the replay finished before the signal landed")
    assert proc.returncode == 128 + signum, text[-3000:]
    match = re.search(r"queue drained, (\d+) events received, (\d+) stored, (\d+) duplicates", text)
    assert match, text[-3000:]
    received, stored, duplicates = map(int, match.groups())
    assert received == stored + duplicates, "every event taken into the queue is stored before exit"
    # Graceful: everything stored was processed and every action handed to the sink.
    integrity = _log_integrity(db, workload["keys"])
    assert integrity["processed_to_end"] and integrity["pending_actions"] == 0
    assert integrity["stored"] == integrity["distinct"] < total
    final = subprocess.run(
        _command(workload["stream"], db, out), cwd=ROOT, env=_env(), capture_output=True, timeout=RUN_TIMEOUT
    )
    assert final.returncode == 0, final.stderr.decode()[-3000:]
    _assert_same_as_reference(db, out, workload)
