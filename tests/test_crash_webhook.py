"""Crash safety under webhook load: `groomguard run` killed with SIGKILL while signed batches arrive (issue 12).

A sender posts the stream in fixed batches and, like a real at-least-once producer, re-sends a batch
until it gets a 200. The server is killed in the middle of requests, some aimed inside view bursts
and fan-out campaigns, and restarted; every table must end up equal to an uninterrupted run's.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from groomguard.adapters.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from groomguard.events import BaseEvent, dump_event
from groomguard.testing.simulate import CommunitySpec, generate

from tests.test_crash import ROOT, _bursts, _outcome

pytestmark = pytest.mark.slow

SECRET = "crash-webhook-secret"
BATCH = 200
SEED = int(os.environ.get("GROOMGUARD_CRASH_SEED", "20261201"))


def _events() -> list[BaseEvent]:
    """Two communities with fan-out groomers and one view burst each, ending an hour ago."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    events: list[BaseEvent] = []
    for i in range(2):
        spec = CommunitySpec(
            community=f"hook-{i}", platform=f"hook{i}", adults=250, minors=180, days=10, chatter_per_day=250,
            fan_out_groomers=3, language_groomers=0, seed=300 + i,
        )  # fmt: skip
        generated, truth = generate(spec)
        shift = now - timedelta(hours=1) - max(e.at for e in generated)
        events.extend(e.model_copy(update={"at": e.at + shift}) for e in generated)
        events.extend(_bursts(spec.community, spec.platform, sorted(truth.minors), now - timedelta(hours=4 + 5 * i)))
    events.sort(key=lambda e: e.at)
    return events


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`groomguard run` with the webhook on, as a real process that can be killed and started again."""

    def __init__(self, base: Path, name: str) -> None:
        self.port = _free_port()
        self.db = base / f"{name}.db"
        self.log = base / f"{name}.log"
        self.config = base / f"{name}.toml"
        self.config.write_text(
            f'[store]\npath = "{self.db}"\n[webhook]\nenabled = true\nport = {self.port}\nrate_per_second = 100000\n'
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GROOMGUARD_")}
        env["GROOMGUARD_WEBHOOK__SECRET"] = SECRET
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "groomguard", "run", "--config", str(self.config)],
                cwd=ROOT, env=env, stdout=log, stderr=log,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("the webhook did not come up")

    def kill(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        return self.proc.wait(timeout=30)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def post(self, body: bytes) -> int:
        """One signed POST; the status, or 0 when the connection failed (the server is down)."""
        ts = str(int(time.time()))
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/events",
            data=body,
            headers={
                TIMESTAMP_HEADER: ts,
                SIGNATURE_HEADER: sign(SECRET, ts, body),
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return int(reply.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except OSError:
            return 0


def _send(server: Server, body: bytes) -> None:
    """At-least-once: re-send until the batch is acknowledged."""
    for _ in range(50):
        status = server.post(body)
        if status == 200:
            return
        assert status in (0, 503), f"unexpected {status}"
        time.sleep(0.1)
    raise AssertionError("batch never acknowledged")


def _bodies(events: list[BaseEvent]) -> list[bytes]:
    return [
        ("[" + ",".join(dump_event(e) for e in events[i : i + BATCH]) + "]").encode()
        for i in range(0, len(events), BATCH)
    ]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("crash-webhook")
    events = _events()
    bodies = _bodies(events)
    server = Server(base, "reference")
    server.start()
    try:
        for body in bodies:
            _send(server, body)
    finally:
        assert server.stop() == 0, server.log.read_text()[-3000:]
    outcome = _outcome(server.db)
    batch_of = {e.key: i // BATCH for i, e in enumerate(events)}
    windows: dict[str, list[tuple[int, int]]] = {"view_spike": [], "fan_out": []}
    spans: dict[tuple[str, str], list[int]] = {}
    for _cid, detector, _c, suspect, _s, _r, _e, _child, _at, key in outcome["findings"]:
        if detector in windows and key in batch_of:
            spans.setdefault((detector, suspect), []).append(batch_of[key])
    for (detector, _suspect), at in sorted(spans.items()):
        if max(at) > min(at):
            windows[detector].append((min(at), max(at)))
    assert windows["view_spike"] and windows["fan_out"], "the stream should hold detector state across batches"
    return {"base": base, "bodies": bodies, "outcome": outcome, "windows": windows}


def test_sigkill_under_webhook_load_loses_and_doubles_nothing(reference: dict[str, Any]) -> None:
    rng = random.Random(SEED)
    bodies, windows = reference["bodies"], reference["windows"]
    # Kill while batch k is being handled: spread ones, and ones inside a burst or a campaign (after
    # the detector fired for it and before its last finding).
    aims = {rng.randrange(1, len(bodies)) for _ in range(4)}
    for spans in windows.values():
        for first, last in spans[:2]:
            aims.add(rng.randint(first + 1, last))
    server = Server(reference["base"], "killed")
    server.start()
    kills = 0
    try:
        for k, body in enumerate(bodies):
            if k in aims:
                sender = threading.Thread(target=server.post, args=(body,))
                sender.start()
                time.sleep(rng.uniform(0, 0.03))
                assert server.kill() == -signal.SIGKILL
                kills += 1
                sender.join(timeout=60)
                server.start()
            _send(server, body)  # the producer re-sends what it has no 200 for
    finally:
        assert server.stop() == 0, server.log.read_text()[-3000:]
    assert kills >= 6
    outcome = _outcome(server.db)
    for table, rows in reference["outcome"].items():
        assert outcome[table] == rows, f"{table} differs from the uninterrupted run after {kills} kills"
    con = __import__("sqlite3").connect(server.db)
    try:
        assert con.execute("SELECT COUNT(*) FROM actions WHERE delivered_at IS NULL").fetchone()[0] == 0
    finally:
        con.close()
    print("webhook crash report:", json.dumps({"kills": kills, "batches": len(bodies), "aims": sorted(aims)}))
