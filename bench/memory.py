"""Memory benchmark: GroomGuard's RSS with 100,000 accounts and 10 million contact edges already stored.

`python bench/memory.py` builds the database in a child process (so its memory does not count), then
starts the engine on it in this process, replays a stream of new contacts, answers and views against
those accounts, and reports peak RSS. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from groomguard.events import (
    Answer,
    BaseEvent,
    ContactAnswered,
    ContactKind,
    ContactRequested,
    ContentViewed,
)

COMMUNITY = "memory-bench"
NOW = datetime(2026, 4, 1, tzinfo=UTC)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(db: Path, accounts: int, edges: int, seed: int) -> None:
    """Write accounts, regions, contact edges (and some accepted pairs) straight into a migrated store."""
    from groomguard.store.sqlite import migrations

    rng = random.Random(seed)
    db.unlink(missing_ok=True)
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
    for version, sql in migrations():
        for statement in (s.strip() for s in sql.split(";")):
            if statement and not all(line.startswith("--") for line in statement.splitlines()):
                con.execute(statement)
        con.execute("INSERT INTO schema_version VALUES (?, ?)", (version, NOW.isoformat()))
    names = [f"user{i:06d}" for i in range(accounts)]
    start = NOW - timedelta(days=60)
    con.executemany(
        "INSERT INTO accounts VALUES (?,?,?,?,?,?,?,?)",
        (
            (
                COMMUNITY,
                n,
                "minor" if i % 5 == 0 else "adult",
                None,
                "role",
                start.isoformat(),
                start.isoformat(),
                start.isoformat(),
            )
            for i, n in enumerate(names)
        ),
    )
    con.executemany("INSERT INTO regions VALUES (?,?,?)", ((COMMUNITY, n, f"r{rng.randrange(200)}") for n in names))
    per_source = edges // accounts
    span = int((NOW - start).total_seconds())

    def rows() -> Any:
        k = 0
        for i, source in enumerate(names):
            for target_index in rng.sample(range(accounts), per_source):
                k += 1
                at = start + timedelta(seconds=rng.randrange(span))
                yield (COMMUNITY, source, names[target_index], "friend", at.isoformat(), f"bench:e{k}")
            if i % 10_000 == 0:
                print(f"  {i * per_source:,} edges", file=sys.stderr, flush=True)

    con.execute("BEGIN")
    con.executemany("INSERT OR IGNORE INTO contacts VALUES (?,?,?,?,?,?)", rows())
    con.execute("COMMIT")
    con.execute("BEGIN")
    for _ in range(accounts * 5):
        a, b = rng.sample(names, 2)
        con.execute("INSERT OR IGNORE INTO accepted VALUES (?,?,?,?)", (COMMUNITY, a, b, start.isoformat()))
        con.execute("INSERT OR IGNORE INTO accepted VALUES (?,?,?,?)", (COMMUNITY, b, a, start.isoformat()))
    con.execute("INSERT INTO meta VALUES ('watermark', '0'), ('watermark_at', ?)", (NOW.isoformat(),))
    con.execute("COMMIT")
    count = con.execute("SELECT COUNT(*) FROM contacts").fetchone()[0]
    con.close()
    print(f"built {db}: {accounts:,} accounts, {count:,} contact edges", file=sys.stderr)


def stream(accounts: int, n: int, seed: int) -> list[BaseEvent]:
    """New activity against the stored accounts: contacts (to minors too), answers and views."""
    rng = random.Random(seed + 1)
    out: list[BaseEvent] = []
    for k in range(n):
        at = NOW + timedelta(seconds=k * 2)
        base: dict[str, Any] = {"event_id": f"new{k}", "platform": "bench", "community": COMMUNITY, "at": at}
        a, b = f"user{rng.randrange(accounts):06d}", f"user{rng.randrange(accounts):06d}"
        roll = rng.random()
        if roll < 0.5:
            out.append(ContactRequested(**base, source=a, target=b, kind=ContactKind.FRIEND, request_id=f"q{k}"))
        elif roll < 0.7:
            out.append(
                ContactAnswered(**base, source=b, target=a, answer=rng.choice(list(Answer)), request_id=f"q{k - 1}")
            )
        else:
            out.append(ContentViewed(**base, viewer=a, author=b, content_id=f"p{k}", count=rng.randint(1, 5)))
    return out


async def measure(db: Path, accounts: int, n: int, seed: int) -> dict[str, Any]:
    from groomguard.app.runtime import build_engine
    from groomguard.config import load_settings

    settings = load_settings(None)
    settings.store.path = db
    settings.engine.batch_wait_ms = 5
    before = rss_mb()
    engine = build_engine(settings, [])
    started = time.perf_counter()
    await engine.start()
    start_s = time.perf_counter() - started
    after_start = rss_mb()
    events = stream(accounts, n, seed)
    t0 = time.perf_counter()
    for event in events:
        await engine.submit(event)
    await engine.drain()
    seconds = time.perf_counter() - t0
    await engine.stop()
    con = sqlite3.connect(db)
    edges = con.execute("SELECT COUNT(*) FROM contacts").fetchone()[0]
    con.close()
    return {
        "accounts": accounts,
        "contact_edges": edges,
        "start_s": round(start_s, 1),
        "rss_before_engine_mb": round(before, 1),
        "rss_after_start_mb": round(after_start, 1),
        "events": n,
        "events_per_s": round(n / seconds),
        "peak_rss_mb": round(rss_mb(), 1),
        "limit_mb": 300,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=Path("/tmp/groomguard-memory-bench.db"))
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--edges", type=int, default=10_000_000)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--reuse", action="store_true", help="measure an already built --db")
    args = parser.parse_args()
    if args.build_only:
        build(args.db, args.accounts, args.edges, args.seed)
        return
    if not args.reuse:
        cmd = [sys.executable, __file__, "--build-only", "--db", str(args.db), "--accounts", str(args.accounts)]
        subprocess.run([*cmd, "--edges", str(args.edges), "--seed", str(args.seed)], check=True)
    result = asyncio.run(measure(args.db, args.accounts, args.events, args.seed))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
