"""Engine throughput: replay N synthetic events through the engine into SQLite vs a raw batched insert.

Run: python bench/engine.py [--events 1000000] [--language-ab]. The last line is one JSON object.
`--language-ab` also replays the same events with the grooming-language detector switched off (its
group-room addressing included), in the same run: what language scoring costs the engine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from groomguard.adapters.replay import replay
from groomguard.app.runtime import build_engine
from groomguard.testing import make_settings

START = datetime(2026, 2, 2, tzinfo=UTC)


def synthetic_lines(n: int, accounts: int, seed: int = 1) -> Iterator[str]:
    """A realistic mix in time order: ages first, then messages, views, reactions and contact requests."""
    rng = random.Random(seed)
    minors = int(accounts * 0.2)
    at = START
    base = '"platform":"bench","community":"c1","at":"{at}"'
    i = 0
    for a in range(accounts):
        band = "minor" if a < minors else "adult"
        yield f'{{"type":"age_declared","event_id":"e{i}",{base.format(at=at.isoformat())},"account":"u{a}","band":"{band}","source":"role"}}'
        i += 1
    step = timedelta(seconds=30 * 24 * 3600 / n)
    while i < n:
        at += step
        ts = at.isoformat()
        roll = rng.random()
        a, b = rng.randrange(accounts), rng.randrange(accounts)
        if roll < 0.55:
            text = rng.choice(
                ("anyone up for a game", "gg well played", "what time is practice", "lol same", "that drawing is great")
            )
            yield f'{{"type":"message_sent","event_id":"e{i}",{base.format(at=ts)},"message_id":"m{i}","author":"u{a}","conversation":"ch{a % 50}","text":"{text}"}}'
        elif roll < 0.80:
            yield f'{{"type":"content_viewed","event_id":"e{i}",{base.format(at=ts)},"viewer":"u{a}","author":"u{b}","content_id":"p{b}"}}'
        elif roll < 0.90:
            yield f'{{"type":"reaction_added","event_id":"e{i}",{base.format(at=ts)},"account":"u{a}","author":"u{b}","message_id":"m{b}","emoji":"+1"}}'
        elif roll < 0.97:
            yield f'{{"type":"contact_requested","event_id":"e{i}",{base.format(at=ts)},"source":"u{a}","target":"u{b}","kind":"follow","request_id":"r{i}"}}'
        else:
            yield f'{{"type":"contact_answered","event_id":"e{i}",{base.format(at=ts)},"source":"u{b}","target":"u{a}","answer":"accepted"}}'
        i += 1


def raw_insert(path: Path, data: Path, batch: int = 500) -> tuple[int, float]:
    """The physical reference: the same rows into the same events table with executemany, no engine."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, type TEXT, community TEXT, at TEXT, stored_at TEXT, body TEXT)"
    )
    rows, count = [], 0
    start = time.perf_counter()
    with data.open() as handle:
        for seq, line in enumerate(handle, 1):
            obj = json.loads(line)
            rows.append(
                (seq, f"{obj['platform']}:{obj['event_id']}", obj["type"], obj["community"], obj["at"], obj["at"], line)
            )
            if len(rows) >= batch:
                con.execute("BEGIN")
                con.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?)", rows)
                con.execute("COMMIT")
                count += len(rows)
                rows = []
    if rows:
        con.execute("BEGIN")
        con.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?)", rows)
        con.execute("COMMIT")
        count += len(rows)
    elapsed = time.perf_counter() - start
    con.close()
    return count, elapsed


async def run_engine(db: Path, data: Path, language: bool = True) -> tuple[int, float, int]:
    settings = make_settings(db)
    settings.detector("grooming_language").enabled = language
    settings.engine.batch_size = 1000
    settings.engine.batch_wait_ms = 5
    engine = build_engine(settings, [])
    await engine.start()
    start = time.perf_counter()
    report = await replay(engine, data)
    elapsed = time.perf_counter() - start
    await engine.stop()
    return engine.stats.processed, elapsed, report.bad


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--language-ab", action="store_true", help="also run without language scoring")
    args = parser.parse_args()
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} cpu, Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "events.jsonl"
        with data.open("w") as handle:
            for line in synthetic_lines(args.events, args.accounts):
                handle.write(line + "\n")
        print(
            f"generated {args.events:,} events for {args.accounts:,} accounts ({data.stat().st_size / 1e6:.0f} MB JSONL)"
        )
        processed, engine_s, bad = asyncio.run(run_engine(Path(tmp) / "engine.db", data))
        assert bad == 0 and processed == args.events, (processed, bad)
        engine_rss = peak_rss_mb()
        inserted, raw_s = raw_insert(Path(tmp) / "raw.db", data)
        plain_eps = None
        if args.language_ab:
            # Alternated (off, on, off) after the first run, best of each: neither side gets only the cold
            # or only the warm runs.
            rates = {True: [processed / engine_s], False: []}
            for i, language in enumerate((False, True, False)):
                n, seconds, _ = asyncio.run(run_engine(Path(tmp) / f"ab{i}.db", data, language=language))
                rates[language].append(n / seconds)
            engine_s = processed / max(rates[True])
            plain_eps = max(rates[False])
    eps, raw = processed / engine_s, inserted / raw_s
    print(f"engine: {processed:,} events in {engine_s:.1f} s = {eps:,.0f} events/s (parse, store, detect, commit)")
    print(f"raw batched executemany: {inserted:,} rows in {raw_s:.1f} s = {raw:,.0f} rows/s")
    print(f"ratio engine/raw: {eps / raw:.2f}; peak RSS {engine_rss:.0f} MB")
    figures = {
        "events_per_s": round(eps),
        "raw_insert_per_s": round(raw),
        "ratio": round(eps / raw, 3),
        "peak_rss_mb": round(engine_rss, 1),
    }
    if plain_eps is not None:
        cost = 1 - eps / plain_eps
        print(f"without language scoring: {plain_eps:,.0f} events/s; language scoring costs {cost:.1%} of throughput")
        figures |= {"without_language_per_s": round(plain_eps), "language_cost": round(cost, 3)}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
