"""Partitioned scale-out on PostgreSQL: 1 and 2 engine processes, and a kill -9 taken over in-process.

Run: python bench/scale.py [--events 60000] [--communities 32]. Starts its own PostgreSQL server from
Debian's packages (tests/postgres/pgserver.py, default durability: fsync on). The engines are separate
processes (tests/postgres/partition_kit.py) that only process; one producer stores the events (at full
speed for the throughput runs, paced for the failover run). Throughput is events stored and processed
from the producer's first append until every partition's watermark is at its newest event.

The failover run kills one of two engines with SIGKILL while the producer is still storing.
`failover_s` is from the kill until the survivor holds every partition of the dead one and has processed
them up to where the log stood at the kill; `lost` counts stored events left unprocessed and reference
actions missing; `doubled` counts events processed more than once, actions no single engine made, and
actions posted twice (a repeated action id in the JSON Lines file both engines append to);
`redelivered` counts sink handoffs of an action id already handed over (by either engine), recorded by
a sink with no dedupe of its own. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
KIT_PATH = ROOT / "tests" / "postgres" / "partition_kit.py"


def _load(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def workload(n: int, communities: int) -> list[Any]:
    """`communities` synthetic communities (bench/engine.py's mix) interleaved in time, plus six simulated
    clubs with planted groomers so that cases open and alerts go out (doubles would show there)."""
    from groomguard.events import parse_event

    engine_bench = _load(ROOT / "bench" / "engine.py", "bench_engine")
    kit = _load(KIT_PATH, "partition_kit")
    clubs = kit.stream()
    per = max(1000, (n - len(clubs)) // communities)
    events = list(clubs)
    for c in range(communities):
        for line in engine_bench.synthetic_lines(per, accounts=max(100, per // 50), seed=100 + c):
            events.append(
                parse_event(
                    line.replace('"platform":"bench","community":"c1"', f'"platform":"s{c}","community":"site-{c}"')
                )
            )
    events.sort(key=lambda e: e.at)
    return events


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class Run:
    """One database, k engine processes and a producer."""

    def __init__(self, server: Any, name: str, folder: Path, partitions: int) -> None:
        self.server = server
        self.url = server.url(name)
        self.name = name
        self.folder = folder
        self.partitions = partitions
        self.procs: list[asyncio.subprocess.Process] = []
        #: The JSON Lines file every engine of the run appends to, and each engine's handoff log.
        self.sink = folder / f"{name}.jsonl"
        self.handoff_logs: list[Path] = []

    async def create(self) -> None:
        import asyncpg

        con = await asyncpg.connect(self.server.url())
        await con.execute(f"CREATE DATABASE {self.name}")
        await con.close()

    async def start(self, k: int) -> None:
        # The schema first, so k engines do not race to create it (they would wait on its lock anyway).
        from groomguard.store.postgres import PostgresStore

        store = PostgresStore(self.url, self.partitions, process=False)
        await store.open()
        await store.close()
        for i in range(k):
            handoff_log = self.folder / f"{self.name}-{i}.handoffs"
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                str(KIT_PATH),
                self.url,
                "--sink",
                str(self.sink),
                "--handoffs",
                str(handoff_log),
                "--partitions",
                str(self.partitions),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 300)
            if line.strip() != b"ready":
                _, err = await proc.communicate()
                raise SystemExit(f"engine process did not start: {err.decode()[-3000:]}")
            self.procs.append(proc)
            self.handoff_logs.append(handoff_log)
        kit = sys.modules["partition_kit"]
        deadline = time.monotonic() + 120
        while True:  # every engine holds its fair share before the clock starts
            parts = (await kit.progress(self.url))["parts"]
            owners = [p["owner"] for p in parts if p["live"]]
            share = -(-self.partitions // k)
            if len(owners) == self.partitions and len(set(owners)) == k and max(map(owners.count, owners)) <= share:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"engines did not split the partitions: {parts}")
            await asyncio.sleep(0.1)

    async def produce(self, events: list[Any], rate: float | None = None, on_progress: Any = None) -> None:
        """Store the events in chunks of 500; at `rate` events/s when given, else as fast as they go."""
        from groomguard.store.postgres import PostgresStore

        store = PostgresStore(self.url, self.partitions, process=False)
        await store.open()
        started = time.monotonic()
        try:
            for i in range(0, len(events), 500):
                await store.append_events(events[i : i + 500])
                if rate:
                    ahead = (i + 500) / rate - (time.monotonic() - started)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
                if on_progress is not None:
                    await on_progress(i + 500)
        finally:
            await store.close()

    async def stop(self) -> list[dict[str, Any]]:
        stats = []
        for proc in self.procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            out, err = await asyncio.wait_for(proc.communicate(), 120)
            if proc.returncode == 0:
                stats.append(json.loads(out.decode().strip().splitlines()[-1]))
            elif proc.returncode != -signal.SIGKILL:
                raise SystemExit(f"engine process failed ({proc.returncode}): {err.decode()[-3000:]}")
        return stats

    def delivered(self) -> tuple[list[str], list[str]]:
        """(action ids posted to the shared JSON Lines file, action ids handed to the sinks), repeats kept."""
        kit = sys.modules["partition_kit"]
        return kit.posted(self.sink), kit.handoffs(self.handoff_logs)


async def throughput(server: Any, folder: Path, events: list[Any], k: int, partitions: int) -> dict[str, Any]:
    kit = sys.modules["partition_kit"]
    run = Run(server, f"scale{k}", folder, partitions)
    await run.create()
    await run.start(k)
    before = load()
    started = time.perf_counter()
    await run.produce(events)
    state = await kit.wait_settled(run.url, len(events), seconds=3600)
    seconds = time.perf_counter() - started
    stats = await run.stop()
    return {
        "seconds": seconds,
        "events_per_s": round(len(events) / seconds),
        "load_before": before,
        "load_after": load(),
        "per_process": [s["processed"] for s in stats],
        "processed": state["processed"],
        "outcome": await kit.outcome(run.url),
    }


async def failover(
    server: Any, folder: Path, events: list[Any], partitions: int, rate: float, reference: dict[str, Any]
) -> dict[str, Any]:
    kit = sys.modules["partition_kit"]
    run = Run(server, "scalekill", folder, partitions)
    await run.create()
    await run.start(2)
    victim, survivor = run.procs
    parts = (await kit.progress(run.url))["parts"]
    victim_parts = {p["part"] for p in parts if p["owner"].split(":")[1] == str(victim.pid)}
    kill: dict[str, Any] = {}
    killed = asyncio.Event()

    async def maybe_kill(stored: int) -> None:
        if kill or stored < len(events) * 0.4:
            return
        state = await kit.progress(run.url)
        if not any(p["processed"] for p in state["parts"] if p["part"] in victim_parts):
            return  # kill only once the victim is processing
        victim.send_signal(signal.SIGKILL)
        kill["at"] = time.monotonic()
        kill["head"] = {p["part"]: p["top"] or 0 for p in state["parts"]}
        killed.set()

    async def watch() -> None:
        await killed.wait()
        while True:
            state = await kit.progress(run.url)
            mine = [p for p in state["parts"] if p["part"] in victim_parts]
            if all(
                p["owner"] and str(survivor.pid) in p["owner"] and p["watermark"] >= kill["head"][p["part"]]
                for p in mine
            ):
                kill["failover_s"] = time.monotonic() - kill["at"]
                return
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch())
    await run.produce(events, rate=rate, on_progress=maybe_kill)
    if "at" not in kill:
        watcher.cancel()
        raise SystemExit("the producer finished before the victim was killed: raise --events")
    await asyncio.wait_for(watcher, 120)
    state = await kit.wait_settled(run.url, len(events), seconds=3600)
    stats = await run.stop()
    got = await kit.outcome(run.url)
    ids = {row[0] for row in got["actions"]}
    ref_ids = {row[0] for row in reference["actions"]}
    posted, handed = run.delivered()
    behind = sum(
        (p["top"] or 0) > p["watermark"] for p in state["parts"]
    )  # partitions with unprocessed events (0 once settled)
    return {
        "failover_s": round(kill["failover_s"], 2),
        "lost": behind + len(ref_ids - ids) + max(0, len(events) - state["processed"]),
        "doubled": max(0, state["processed"] - len(events)) + len(ids - ref_ids) + len(posted) - len(set(posted)),
        "posted_twice": len(posted) - len(set(posted)),
        "same_outcome_as_one_process": got == reference,
        "actions": len(ref_ids),
        "redelivered": len(handed) - len(set(handed)),
        "delivered_all": set(posted) == ids,
        "survivor_processed": stats[0]["processed"] if stats else None,
        "rate": round(rate),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    pgserver = _load(ROOT / "tests" / "postgres" / "pgserver.py", "pgserver")
    bindir = pgserver.find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL server binaries are absent: run tests/postgres/setup.sh")
    events = workload(args.events, args.communities)
    results: dict[str, Any] = {
        "events": len(events),
        "communities": args.communities + 6,
        "partitions": args.partitions,
        "cpus": len(os.sched_getaffinity(0)),
        "load_at_start": load(),
    }
    print(f"{len(events):,} events, {results['communities']} communities, {args.partitions} partitions, "
          f"{results['cpus']} cpus, load {results['load_at_start']}", flush=True)  # fmt: skip
    server = pgserver.PgServer(bindir, fsync=True).start()
    try:
        with tempfile.TemporaryDirectory() as name:
            folder = Path(name)
            one = await throughput(server, folder, events, 1, args.partitions)
            print(f"1 engine process:  {one['events_per_s']:8,} events/s  (load {one['load_before']} -> {one['load_after']})", flush=True)  # fmt: skip
            two = await throughput(server, folder, events, 2, args.partitions)
            print(f"2 engine processes: {two['events_per_s']:8,} events/s  (load {two['load_before']} -> {two['load_after']}, "
                  f"per process {two['per_process']})", flush=True)  # fmt: skip
            same = two["outcome"] == one["outcome"]
            rate = 0.6 * two["events_per_s"]
            kill = await failover(server, folder, events, args.partitions, rate, one["outcome"])
            print(f"kill -9 of one of two at 40 % of a stream paced at {kill['rate']:,} events/s: failover "
                  f"{kill['failover_s']} s, lost {kill['lost']}, doubled {kill['doubled']} (posted twice "
                  f"{kill['posted_twice']}), redelivered {kill['redelivered']} of {kill['actions']} actions, "
                  f"same outcome as one process: {kill['same_outcome_as_one_process']}", flush=True)  # fmt: skip
    finally:
        server.stop()
    results.update(
        events_per_s={"1": one["events_per_s"], "2": two["events_per_s"]},
        speedup=round(two["events_per_s"] / one["events_per_s"], 2),
        two_processes_same_outcome=same,
        failover_s=kill["failover_s"],
        lost=kill["lost"],
        doubled=kill["doubled"],
        failover_same_outcome=kill["same_outcome_as_one_process"],
        actions=kill["actions"],
        redelivered=kill["redelivered"],
        posted_twice=kill["posted_twice"],
        delivered_all=kill["delivered_all"],
        load_at_end=load(),
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--communities", type=int, default=32)
    parser.add_argument("--partitions", type=int, default=16)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args))))


if __name__ == "__main__":
    main()
