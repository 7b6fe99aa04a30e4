"""Shared by the partition tests and bench/scale.py: a many-community stream, the stored outcome to compare,
waiting for every partition to catch up, and (run as a script) one engine process on a shared database.

As a script: `python tests/postgres/partition_kit.py URL --sink FILE [--handoffs FILE] [--partitions N]
[--lease S]` runs one engine with its LogFollower and a JSON Lines sink (FILE may be shared by several
engines: the sink dedupes on action_id across them), prints `ready` once its store is open, and on SIGTERM
stops cleanly and prints its stats as one JSON line. `--handoffs` also records every handoff to the sinks
(`HandoffLog`, no dedupe), so a caller can count actions handed over twice. It stores nothing itself: a
producer appends events.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import asyncpg
from groomguard.events import BaseEvent
from groomguard.store.partitions import partition_of
from groomguard.testing.simulate import CommunitySpec, generate


def communities(count: int, partitions: int) -> list[str]:
    """`count` community ids, half hashing to the lower half of the partitions and half to the upper, so two
    engines that split the partitions evenly both get work."""
    if partitions < 2:
        return [f"club-{i}" for i in range(count)]
    want_low, want_high = (count + 1) // 2, count // 2
    low: list[str] = []
    high: list[str] = []
    i = 0
    while len(low) < want_low or len(high) < want_high:
        name = f"club-{i}"
        i += 1
        if partition_of(name, partitions) < partitions // 2:
            if len(low) < want_low:
                low.append(name)
        elif len(high) < want_high:
            high.append(name)
    return low + high


def stream(count: int = 6, partitions: int = 16, days: int = 7, chatter: int = 40) -> list[BaseEvent]:
    """Several simulated communities (with planted groomers) interleaved in time order, each its own platform."""
    events: list[BaseEvent] = []
    for i, name in enumerate(communities(count, partitions)):
        spec = CommunitySpec(community=name, platform=name, seed=20 + i, days=days, chatter_per_day=chatter)
        events.extend(generate(spec)[0])
    events.sort(key=lambda e: e.at)  # stable: each community keeps its own order
    return events


async def outcome(url: str) -> dict[str, Any]:
    """What processing left in the database; two runs of one stream with the same partitions must match
    exactly (case ids and action ids included), except a case's stored risk, which is decayed to its
    community's clock at the batch that last touched it and so depends on batch boundaries."""
    con = await asyncpg.connect(url)
    try:
        return {
            "events": await con.fetchval("SELECT COUNT(*) FROM events"),
            "cases": [
                tuple(r)
                for r in await con.fetch(
                    "SELECT id, platform, community, suspect, status, opened_at, updated_at, alert_version, "
                    "dismissals, children, reasons FROM cases ORDER BY id"
                )
            ],
            "findings": sorted(
                tuple(r)
                for r in await con.fetch(
                    "SELECT case_id, detector, community, suspect, score, reason, evidence, child, at, event_key "
                    "FROM findings"
                )
            ),
            "actions": sorted(tuple(r) for r in await con.fetch("SELECT id, kind, case_id, subject FROM actions")),
            "notices": sorted(tuple(r) for r in await con.fetch("SELECT * FROM notices")),
            "contacts": await con.fetchval("SELECT COUNT(*) FROM contacts"),
            "views": sorted(tuple(r) for r in await con.fetch("SELECT * FROM views")),
            "memory": sorted(
                tuple(r) for r in await con.fetch("SELECT detector, community, key, value FROM detector_memory")
            ),
        }
    finally:
        await con.close()


async def progress(url: str) -> dict[str, Any]:
    """Per partition: owner, watermark, processed, and the newest stored seq; plus events stored."""
    con = await asyncpg.connect(url)
    try:
        rows = await con.fetch(
            "SELECT p.part, p.owner, p.watermark, p.processed, p.expires_at > now() AS live, "
            "(SELECT MAX(seq) FROM events e WHERE e.part = p.part) AS top FROM partitions p ORDER BY p.part"
        )
        stored = await con.fetchval("SELECT COUNT(*) FROM events")
        pending = await con.fetchval("SELECT COUNT(*) FROM actions WHERE delivered_at IS NULL")
    finally:
        await con.close()
    parts = [dict(r) for r in rows]
    return {
        "parts": parts,
        "stored": stored,
        "processed": sum(p["processed"] for p in parts),
        "behind": sum(1 for p in parts if p["top"] is not None and p["watermark"] < p["top"]),
        "pending_actions": pending,
        "owners": {p["owner"] for p in parts if p["live"]},
    }


async def wait_settled(url: str, stored: int, seconds: float = 120) -> dict[str, Any]:
    """Until `stored` events are in and every partition's watermark is at its newest event, actions delivered."""
    state: dict[str, Any] = {}
    for _ in range(int(seconds / 0.05)):
        state = await progress(url)
        if state["stored"] >= stored and state["behind"] == 0 and state["pending_actions"] == 0:
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"partitions did not catch up: {state}")


class HandoffLog:
    """A sink with no dedupe of its own: one line (the action id) per handoff, one O_APPEND write each, so
    what the engine hands over twice shows as two lines (`handoffs`)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def deliver(self, action: Any) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{action.action_id}\n".encode())
        finally:
            os.close(fd)


def handoffs(paths: list[Path]) -> list[str]:
    """Every action id handed to a `HandoffLog` in these files, repeats kept (a torn last line is left out)."""
    out = []
    for path in paths:
        if path.exists():
            text = path.read_text(encoding="utf-8")
            out.extend(line for line in text.split("\n")[:-1] if line)
    return out


def posted(path: Path) -> list[str]:
    """The action ids a JSON Lines sink file holds, repeats kept: a repeat was posted twice."""
    if not path.exists():
        return []
    return [json.loads(line)["action_id"] for line in path.read_text(encoding="utf-8").splitlines() if line]


async def _worker(url: str, sink: Path, partitions: int, lease: float, handoff: Path | None = None) -> None:
    from groomguard.app.runtime import build_engine
    from groomguard.app.sinks import JsonlSink
    from groomguard.follower import LogFollower
    from groomguard.testing import make_settings

    settings = make_settings(Path(tempfile.gettempdir()) / "unused.db")
    settings.store.database_url = url
    settings.store.partitions = partitions
    settings.store.partition_lease_seconds = lease
    sinks: list[Any] = [JsonlSink(sink)]
    if handoff is not None:
        sinks.insert(0, HandoffLog(handoff))  # first: a kill between the two sinks counts as a handoff
    engine = build_engine(settings, sinks)
    await engine.start()
    follower = LogFollower(engine, interval_s=0.05)
    await follower.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    try:
        await stop.wait()
    finally:
        await follower.stop()
        await engine.stop()
    s = engine.stats
    print(json.dumps({"processed": s.processed, "alerts": s.alerts, "rebalances": follower.changes}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="one engine process on a shared PostgreSQL database")
    parser.add_argument("url")
    parser.add_argument("--sink", type=Path, required=True)
    parser.add_argument("--handoffs", type=Path)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--lease", type=float, default=8.0)
    args = parser.parse_args()
    asyncio.run(_worker(args.url, args.sink, args.partitions, args.lease, args.handoffs))


if __name__ == "__main__":
    sys.exit(main())
