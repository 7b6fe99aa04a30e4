"""Crash safety for real: `groomguard replay` as a subprocess, killed with SIGKILL and SIGTERM/SIGINT, then resumed.

Besides kills spread over the whole stream, some kills are aimed at moments when a detector holds
state between events (`IN_FLIGHT`): in the middle of a view burst after view_spike has fired, in the
middle of a fan-out campaign after fan_out has fired, and in the middle of a grooming conversation
after grooming_language has raised a finding. Every table (findings, cases, outbox, notices,
detector memory, ...) must then equal an uninterrupted run's: 0 lost, 0 doubled.
"""

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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from groomguard.events import BaseEvent, ContentViewed, dump_event
from groomguard.testing import EventFactory
from groomguard.testing.simulate import CommunitySpec, generate

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
#: Fixed so a failure can be replayed; GROOMGUARD_CRASH_SEED picks other kill points.
SEED = int(os.environ.get("GROOMGUARD_CRASH_SEED", "20260531"))
KILLS = 8
RUN_TIMEOUT = 180
#: Detector states a targeted kill must interrupt: view bursts, fan-out campaigns and grooming
#: conversations (grooming_language's evidence between findings). Kills inside the conversations also
#: land among view_spike's out-of-order views (a resent view arriving before its hour), which once made
#: the rebuilt viewer stats differ from the running ones (see the late-view test in
#: tests/test_detectors_view_spike.py).
IN_FLIGHT = ("view_burst", "fan_out", "conversation")
#: Views in one planted burst hour: view_spike fires at 25, then again each time the count doubles,
#: so a restart inside the burst that forgot the last firing would fire again at once.
BURST_VIEWS = 3000


def _bursts(community: str, platform: str, minors: list[str], burst: datetime) -> list[BaseEvent]:
    """One adult ("burst-<community>") viewing minors' posts once an hour for two days, then a burst hour."""
    viewer = f"burst-{community}"
    out: list[BaseEvent] = []
    n = 0

    def view(at: datetime, author: str) -> None:
        nonlocal n
        n += 1
        out.append(
            ContentViewed(
                event_id=f"burst-{n}", platform=platform, community=community, at=at,
                viewer=viewer, author=author, content_id=f"post-{n}",
            )
        )  # fmt: skip

    for hour in range(60, 12, -1):
        view(burst - timedelta(hours=hour, minutes=-7), minors[hour % len(minors)])
    for i in range(BURST_VIEWS):
        view(burst + timedelta(seconds=i * 3600 / BURST_VIEWS), minors[i % 10])
    return out


#: Synthetic lines, written for this test: probing and secrecy first, then one new stage every few
#: hours, so grooming_language raises several findings and holds a conversation's evidence between them.
TALK = (
    "hey cutie how old r u",
    "r u home alone rn",
    "dont tell ur mum we talk ok",
    "what school do u go to",
    "add me on snap its more private",
    "send me a pic of u",
    "we could meet up this weekend, i can pick u up",
    "i can buy u robux if u want",
)


def _talk(community: str, platform: str, child: str, start: datetime) -> list[BaseEvent]:
    """One adult ("talker-<community>") grooming one child in DMs, a message every two hours."""
    f = EventFactory(community=community, platform=platform, start=start)
    talker = f"talker-{community}"
    events: list[BaseEvent] = [f.joined(talker), f.adult(talker)]
    events += [
        f.message(talker, line, conversation=f"dm-{community}", private=True, recipients=(child,), at=f.tick(hours=2))
        for line in TALK
    ]
    return [e.model_copy(update={"event_id": f"talk-{e.event_id}"}) for e in events]


def _stream(path: Path) -> tuple[set[str], int, list[str]]:
    """Write a large multi-community stream with bad and duplicate lines; return valid keys, line count, stored order.

    The stream ends an hour ago: retention runs on the wall clock, so data older than the retention
    period would (rightly) be purged by a restart and differ from the uninterrupted run. For the same
    reason the view bursts lie in the last day (view_spike's distinct-author rows are kept 48 hours).
    """
    events: list[BaseEvent] = []
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
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
        generated, truth = generate(spec)
        shift = now - timedelta(hours=1) - max(e.at for e in generated)
        events.extend(e.model_copy(update={"at": e.at + shift}) for e in generated)
        burst = now - timedelta(hours=4 + 5 * i)
        events.extend(_bursts(spec.community, spec.platform, sorted(truth.minors), burst))
        events.extend(_talk(spec.community, spec.platform, sorted(truth.minors)[-1], now - timedelta(hours=40 + 6 * i)))
    events.sort(key=lambda e: e.at)
    rng = random.Random(SEED)
    lines = [dump_event(e) for e in events]
    # At-least-once producers resend; broken producers send junk. Neither may change the outcome.
    for _ in range(200):
        lines.insert(rng.randrange(len(lines)), rng.choice(lines))
    for junk in ('{"type": "teleport"}', "{not json", '{"type": "message_sent"}'):
        lines.insert(rng.randrange(len(lines)), junk)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    order: list[str] = []
    seen: set[str] = set()
    for line in lines:  # the order replay stores them in: seq n is order[n - 1]
        try:
            data = json.loads(line)
            key = f"{data['platform']}:{data['event_id']}"
        except (ValueError, KeyError):
            continue
        if key in seen:
            continue
        seen.add(key)
        order.append(key)
    return {e.key for e in events}, len(lines), order


def _command(stream: Path, db: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "groomguard", "replay", str(stream), "--db", str(db), "--out", str(out), "--quiet"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROOMGUARD_")}
    env["PYTHONUNBUFFERED"] = "1"
    # Small batches: batches processed while a commit runs are committed together (up to 8 batch sizes),
    # and the aimed kills need commits finer than a detector's state window to land inside one.
    env["GROOMGUARD_ENGINE__BATCH_SIZE"] = "100"
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
            # Live detector memory; rows already expired at their community's clock are hidden from
            # detectors and purged whenever retention runs (a restart does), so they are not compared.
            "detector_memory": q(
                "SELECT * FROM detector_memory m WHERE expires_at IS NULL OR expires_at > (SELECT "
                "json_extract(c.value, '$') FROM detector_memory c WHERE c.detector = 'engine.clock' "
                "AND c.community = m.community) ORDER BY 1, 2, 3"
            ),
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
    keys, lines, order = _stream(stream)
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
    windows = _in_flight_windows(ref_db, order)
    for kind in IN_FLIGHT:
        assert windows[kind], f"the stream should hold {kind} state across several findings"
    return {
        "windows": windows,
        "base": base,
        "stream": stream,
        "keys": keys,
        "lines": lines,
        "reference": reference,
        "reference_ids": _delivered(ref_out)[0],
        "seconds": time.perf_counter() - started,
    }


def _in_flight_windows(db: Path, order: list[str]) -> dict[str, list[tuple[int, int]]]:
    """Per kind, (first, last) stored index of the findings one suspect got from one stateful detector.

    Between the two the detector holds state about that suspect (view_spike: the hour's last firing;
    fan_out: the campaign's ranking), so a kill with the watermark inside the window interrupts it.
    """
    index = {key: i for i, key in enumerate(order)}
    kinds = {"view_spike": "view_burst", "fan_out": "fan_out", "grooming_language": "conversation"}
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT detector, suspect, event_key FROM findings ORDER BY id").fetchall()
    finally:
        con.close()
    spans: dict[tuple[str, str], list[int]] = {}
    for detector, suspect, key in rows:
        if detector in kinds and key in index:
            spans.setdefault((detector, suspect), []).append(index[key])
    out: dict[str, list[tuple[int, int]]] = {kind: [] for kind in kinds.values()}
    for (detector, _suspect), at in sorted(spans.items()):
        if max(at) - min(at) > 200:
            out[kinds[detector]].append((min(at), max(at)))
    return out


def _in_flight(watermark: int, windows: dict[str, list[tuple[int, int]]]) -> list[str]:
    """Kinds whose state was live at the watermark: a window's first finding processed, its last one not."""
    return [kind for kind, spans in windows.items() if any(first < watermark <= last for first, last in spans)]


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
    windows = workload["windows"]
    # Stratified targets spread the kills over the whole stream; aimed ones land inside detector state.
    plan: list[tuple[str, int | None]] = [("anywhere", None)]
    for attempt in range(1, KILLS):
        if rng.random() < 0.25:
            plan.append(("anywhere", None))
        else:
            plan.append(("spread", int(total * rng.uniform(attempt, attempt + 1) / (KILLS + 1))))
    for kind in IN_FLIGHT:
        for first, last in windows[kind][:2]:
            plan.append((kind, first + max(1, (last - first) // 3)))
    # In stream order: the first kill lands early, the targets ascend, and the other untargeted kills
    # come last (during recovery of a nearly finished stream), so none of them overtakes a target.
    targeted = sorted((t for t in plan if t[1] is not None), key=lambda t: t[1] or 0)
    plan = [plan[0], *targeted, *[t for t in plan[1:] if t[1] is None]]
    kills: list[dict[str, Any]] = []
    for aim, target in plan:
        proc = _start(workload["stream"], db, out)
        if target is None:
            # Anywhere: during imports, migrations, recovery or the first batches.
            time.sleep(rng.uniform(0.05, min(1.0, workload["seconds"] * 0.2)))
        else:
            deadline = time.monotonic() + RUN_TIMEOUT
            # Aimed kills wait for the watermark (processed), the others for events stored.
            done = 1 if aim in IN_FLIGHT else 0
            while proc.poll() is None and _progress(db)[done] < target and time.monotonic() < deadline:
                time.sleep(0.005 if aim in IN_FLIGHT else 0.01)
            # Land between, not only on, commits; aimed kills stay close so they stay inside the window.
            time.sleep(rng.uniform(0, 0.01 if aim in IN_FLIGHT else 0.2))
        proc.send_signal(signal.SIGKILL)
        rc = proc.wait(timeout=30)
        stored, watermark = _progress(db)
        kills.append({"aim": aim, "rc": rc, "stored": stored, "watermark": watermark})
        kills[-1]["in_flight"] = _in_flight(watermark, windows)
        if rc == 0:
            break  # finished before the kill landed; the checks below still hold
        assert rc == -signal.SIGKILL, (
            kills[-1],
            proc.stderr.read().decode(errors="replace")[-3000:] if proc.stderr else "",
        )
    final = subprocess.run(
        _command(workload["stream"], db, out), cwd=ROOT, env=_env(), capture_output=True, timeout=RUN_TIMEOUT
    )
    assert final.returncode == 0, final.stderr.decode()[-3000:]
    delivery = _assert_same_as_reference(db, out, workload)
    killed = [k for k in kills if k["rc"] == -signal.SIGKILL]
    assert len(killed) >= KILLS - 1, f"too few kills landed: {kills}"
    assert sum(0 < k["stored"] < total for k in killed) >= KILLS // 2, f"too few kills landed mid-stream: {kills}"
    for kind in IN_FLIGHT:
        assert any(kind in k["in_flight"] for k in killed), (
            f"no kill landed while {kind} state was live: {kills}; windows {windows}"
        )
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
