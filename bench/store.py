"""Store throughput: events/s through the engine on SQLite vs PostgreSQL, with 1 and 2 engine processes.

Run: python bench/store.py [--events 100000]. Starts its own PostgreSQL server (Debian's packages, default
durability: fsync and synchronous_commit on). Two shards = two processes each replaying one community into
the same database; each processes the partitions it leases (bench/scale.py measures that scale-out
properly, with many communities). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _load(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_shards(n: int, folder: Path) -> tuple[Path, Path, Path]:
    """Two communities of n/2 events each, and both in one file for the single-process runs."""
    engine_bench = _load(ROOT / "bench" / "engine.py", "bench_engine")
    files = []
    for shard, seed in (("a", 1), ("b", 2)):
        path = folder / f"shard-{shard}.jsonl"
        with path.open("w", encoding="utf-8") as out:
            for line in engine_bench.synthetic_lines(n // 2, accounts=max(200, n // 100), seed=seed):
                out.write(
                    line.replace(
                        '"platform":"bench","community":"c1"', f'"platform":"bench-{shard}","community":"c-{shard}"'
                    )
                    + "\n"
                )
        files.append(path)
    both = folder / "both.jsonl"
    both.write_bytes(files[0].read_bytes() + files[1].read_bytes())
    return files[0], files[1], both


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"python": platform.python_version(), "os": platform.platform(), "cpus": os.cpu_count(), "cpu": model}


async def _worker(url: str, source: str, expected: int) -> None:
    """One engine process: replay `source`, then wait until every shard's events are processed."""
    import asyncpg
    from groomguard.adapters.replay import replay
    from groomguard.app.runtime import build_engine
    from groomguard.follower import LogFollower
    from groomguard.testing import make_settings

    settings = make_settings(Path(tempfile.gettempdir()) / "unused.db")
    settings.store.database_url = url
    engine = build_engine(settings, [])
    await engine.start()
    follower = LogFollower(engine, interval_s=0.02)
    await follower.start()
    try:
        await replay(engine, Path(source))
        con = await asyncpg.connect(url)
        try:
            # Every partition (whoever leases it) processed up to its newest stored event.
            while True:
                stored = await con.fetchval("SELECT COUNT(*) FROM events")
                behind = await con.fetchval(
                    "SELECT COUNT(*) FROM partitions p WHERE p.watermark < "
                    "(SELECT COALESCE(MAX(seq), 0) FROM events e WHERE e.part = p.part)"
                )
                if stored >= expected and behind == 0:
                    break
                await asyncio.sleep(0.02)
        finally:
            await con.close()
    finally:
        await follower.stop()
        await engine.stop()


def run(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def timed(procs: list[subprocess.Popen[bytes]], started: float) -> float:
    for proc in procs:
        _, err = proc.communicate(timeout=3600)
        if proc.returncode != 0:
            raise SystemExit(f"engine process failed ({proc.returncode}): {err.decode()[-2000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--worker", nargs=3, metavar=("URL", "FILE", "EXPECTED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(_worker(args.worker[0], args.worker[1], int(args.worker[2])))
        return

    pgserver = _load(ROOT / "tests" / "postgres" / "pgserver.py", "pgserver")
    bindir = pgserver.find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL server binaries are absent: run tests/postgres/setup.sh")
    info = machine()
    print(f"machine: {info['cpu'] or 'unknown cpu'}, {info['cpus']} cpus, Python {info['python']}, {info['os']}")
    results: dict[str, Any] = {"events": 0, "machine": info}
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        a, b, both = write_shards(args.events, folder)
        total = sum(1 for _ in both.open("rb"))
        results["events"] = total
        py = sys.executable

        started = time.perf_counter()
        seconds = timed(
            [run([py, "-m", "groomguard", "replay", str(both), "--db", str(folder / "bench.db"), "--quiet"])], started
        )
        results["sqlite_1_process"] = round(total / seconds)
        print(f"SQLite, 1 engine process:      {total:,} events in {seconds:6.1f} s = {total / seconds:8,.0f} events/s")

        server = pgserver.PgServer(bindir, fsync=True).start()
        try:
            import asyncpg

            async def create(db: str) -> None:
                con = await asyncpg.connect(server.url())
                await con.execute(f"CREATE DATABASE {db}")
                version = await con.fetchval("SHOW server_version")
                results["postgres_version"] = version
                await con.close()

            asyncio.run(create("bench1"))
            asyncio.run(create("bench2"))
            started = time.perf_counter()
            seconds = timed([run([py, __file__, "--worker", server.url("bench1"), str(both), str(total)])], started)
            results["postgres_1_process"] = round(total / seconds)
            print(
                f"PostgreSQL, 1 engine process:  {total:,} events in {seconds:6.1f} s = {total / seconds:8,.0f} events/s"
            )

            started = time.perf_counter()
            procs = [run([py, __file__, "--worker", server.url("bench2"), str(f), str(total)]) for f in (a, b)]
            seconds = timed(procs, started)
            results["postgres_2_processes"] = round(total / seconds)
            print(
                f"PostgreSQL, 2 engine processes: {total:,} events in {seconds:6.1f} s = {total / seconds:8,.0f} events/s"
            )
        finally:
            server.stop()
    print(
        "(wall time per run includes process start-up; 2 processes = 2 shards storing, each processing its partitions)"
    )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
