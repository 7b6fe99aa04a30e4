"""Community benchmark: replay the seeded ~12,500-account simulation and score every detector against the truth.

Prints, per detector and overall: recall on planted groomers, false alerts per 10,000 benign adults,
median hours from a groomer's first contact to the alert, and events/s; then the trade-off curve of
the main thresholds. The last line is one JSON object (recall, false_alerts_per_10k_benign,
median_hours_to_alert, events_per_s, peak_rss_mb).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import resource
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from unittest import mock

import groomguard.events
from groomguard.actions import ModAlert
from groomguard.app.runtime import build_engine
from groomguard.cases import decayed
from groomguard.config import Settings, load_settings
from groomguard.detectors.base import Detector, DetectorState
from groomguard.engine import build_detectors
from groomguard.events import BaseEvent, dump_event, parse_event
from groomguard.findings import Finding
from groomguard.testing.simulate import CommunitySpec, Truth, generate

#: Detectors scored in the per-detector table (others still run and count towards "overall").
ACCOUNT_PATTERNS = ("fan_out", "rejections", "view_spike", "new_account_contact")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Recorder:
    """Keeps (suspect, score, at) of every finding a detector returns; the finding itself passes through."""

    def __init__(self, inner: Detector) -> None:
        self.inner = inner
        self.name = inner.name
        self.handles = inner.handles
        self.seen: list[tuple[str, float, datetime]] = []

    @property
    def enabled(self) -> bool:
        return self.inner.enabled

    def forget(self, account: str, community: str | None = None) -> None:
        self.inner.forget(account, community)

    async def inspect(self, event: BaseEvent, state: DetectorState) -> Sequence[Finding]:
        out = await self.inner.inspect(event, state)
        for f in out:
            self.seen.append((f.suspect, f.score, f.at))
        return out


class AlertCollector:
    """A sink that remembers when each suspect was first alerted on, and how often each card changed."""

    def __init__(self) -> None:
        self.first: dict[str, datetime] = {}
        #: case id -> highest card version seen (edits = version - 1).
        self.versions: dict[int, int] = {}

    async def deliver(self, action: object) -> None:
        if isinstance(action, ModAlert):
            self.versions[action.case_id] = max(self.versions.get(action.case_id, 0), action.version)
            if not action.is_update:
                self.first.setdefault(action.suspect, action.at)


@dataclass
class Score:
    """Recall, false alerts and latency for one detector (or overall)."""

    name: str
    caught: dict[str, float] = field(default_factory=dict)  # groomer -> hours to first alert/finding
    false: set[str] = field(default_factory=set)

    def row(self, truth: Truth, benign: int) -> dict[str, Any]:
        hours = sorted(self.caught.values())
        return {
            "detector": self.name,
            "recall": round(len(self.caught) / max(1, len(truth.groomers)), 3),
            "false_alerts_per_10k_benign": round(len(self.false) * 10_000 / max(1, benign), 2),
            "median_hours_to_alert": round(statistics.median(hours), 1) if hours else None,
        }


def score(name: str, first: dict[str, datetime], truth: Truth) -> Score:
    out = Score(name)
    for suspect, at in first.items():
        if suspect in truth.groomers:
            start = truth.first_contact.get(suspect, at)
            out.caught[suspect] = max(0.0, (at - start).total_seconds() / 3600)
        else:
            out.false.add(suspect)
    return out


def alerts_at(
    findings: list[tuple[str, str, float, datetime]], threshold: float, half_life: float
) -> dict[str, datetime]:
    """Replay recorded findings through noisy-OR case risk (as groomguard.cases does) for another alert threshold."""
    reasons: dict[str, dict[str, tuple[float, datetime]]] = defaultdict(dict)
    first: dict[str, datetime] = {}
    for detector, suspect, value, at in findings:
        if suspect in first:
            continue
        prev = reasons[suspect].get(detector)
        if prev is None or value >= decayed(prev[0], prev[1], at, half_life):
            reasons[suspect][detector] = (value, at)
        keep = 1.0
        for s, when in reasons[suspect].values():
            keep *= 1 - decayed(s, when, at, half_life)
        if 1 - keep >= threshold:
            first[suspect] = at
    return first


@dataclass
class Run:
    """One replay of the community: alerts, per-detector findings, throughput."""

    alerts: dict[str, datetime]
    findings: dict[str, list[tuple[str, float, datetime]]]
    events: int
    seconds: float
    card_versions: dict[int, int] = field(default_factory=dict)

    def merged(self) -> list[tuple[str, str, float, datetime]]:
        rows = [(d, s, v, at) for d, seen in self.findings.items() for s, v, at in seen]
        rows.sort(key=lambda r: r[3])
        return rows


async def replay(events: list[BaseEvent], settings: Settings) -> Run:
    recorders = [Recorder(d) for d in build_detectors(settings)]
    sink = AlertCollector()
    engine = build_engine(settings, [sink], detectors=recorders)
    await engine.start()
    started = time.perf_counter()
    for event in events:
        await engine.submit(event)
    await engine.drain()
    seconds = time.perf_counter() - started
    await engine.stop()
    return Run(sink.first, {r.name: r.seen for r in recorders}, len(events), seconds, sink.versions)


def settings_for(db: Path, overrides: dict[str, Any] | None = None) -> Settings:
    settings = load_settings(None)
    settings.store.path = db
    settings.engine.batch_wait_ms = 5
    for dotted, value in (overrides or {}).items():
        section, name, key = dotted.split(".")
        setattr(getattr(getattr(settings, section), name), key, value)
    return settings


def report(run: Run, truth: Truth, settings: Settings, out: list[str]) -> dict[str, Any]:
    benign = len(truth.adults) - len(truth.groomers)
    rows = []
    for name, seen in run.findings.items():
        if name not in ACCOUNT_PATTERNS and not seen:
            continue
        first: dict[str, datetime] = {}
        for suspect, _value, at in seen:
            first.setdefault(suspect, at)
        rows.append(score(name, first, truth).row(truth, benign) | {"flagged_by_findings": True})
    overall = score("overall (alerts)", run.alerts, truth)
    rows.append(overall.row(truth, benign))
    out.append(f"{'detector':<22} {'recall':>7} {'false/10k':>10} {'median h':>9}")
    for r in rows:
        med = "-" if r["median_hours_to_alert"] is None else f"{r['median_hours_to_alert']:.1f}"
        out.append(f"{r['detector']:<22} {r['recall']:>7.3f} {r['false_alerts_per_10k_benign']:>10.2f} {med:>9}")
    out.append("(per-detector rows count any finding from that detector; overall counts alerts to moderators)")
    by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for g, kind in truth.groomers.items():
        by_kind[kind][1] += 1
        by_kind[kind][0] += g in overall.caught
    out.append("recall by groomer kind: " + ", ".join(f"{k} {c}/{n}" for k, (c, n) in sorted(by_kind.items())))
    false_kinds: dict[str, int] = defaultdict(int)
    for s in overall.false:
        false_kinds[truth.hard_negatives.get(s, "minor" if s in truth.minors else "ordinary")] += 1
    out.append(f"false alerts by kind: {dict(false_kinds) or 'none'}")
    edits = sorted(v - 1 for v in run.card_versions.values())
    mean_edits = round(statistics.mean(edits), 2) if edits else 0.0
    out.append(
        f"card edits per case: mean {mean_edits}, median {statistics.median(edits) if edits else 0}, "
        f"max {edits[-1] if edits else 0} over {len(edits)} cards"
    )
    return {
        "recall": rows[-1]["recall"],
        "false_alerts_per_10k_benign": rows[-1]["false_alerts_per_10k_benign"],
        "median_hours_to_alert": rows[-1]["median_hours_to_alert"],
        "false_alerts": len(overall.false),
        "benign_adults": benign,
        "groomers": len(truth.groomers),
        "card_edits_mean": mean_edits,
        "card_edits_max": edits[-1] if edits else 0,
    }


SWEEPS: dict[str, list[Any]] = {
    "detectors.fan_out.min_minors": [4, 8],
    "detectors.fan_out.window_hours": [24 * 7, 24 * 14],
    "detectors.rejections.min_refused": [3, 6],
    "detectors.view_spike.min_views": [15, 40],
}


async def through_lines(events: list[BaseEvent], run: Run, tmp: Path) -> str:
    """The community written as JSON lines and read back by `parse_event` (its msgspec fast path) and by
    pydantic alone: both replays must raise the same alerts and findings as the events themselves."""
    bodies = [dump_event(e) for e in events]
    fast = sum(groomguard.events._decode_fast(b) is not None for b in bodies)
    parsed = [parse_event(b) for b in bodies]
    with mock.patch.object(groomguard.events, "_decode_fast", lambda data: None):
        slow = [parse_event(b) for b in bodies]
    out = [f"through JSON lines: {fast / len(bodies):.1%} of {len(bodies):,} lines on the fast path"]
    for name, feed in (("fast path", parsed), ("pydantic only", slow)):
        again = await replay(feed, settings_for(tmp / f"lines-{len(out)}.db"))
        same = again.alerts == run.alerts and again.merged() == run.merged()
        out.append(f"  {name}: {len(again.alerts)} alerts, {len(again.merged())} findings, identical: {same}")
        if not same:
            raise SystemExit("alerts or findings differ when read back from JSON lines: " + name)
    return "\n".join(out)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    spec = CommunitySpec.benchmark(seed=args.seed, adults=args.adults, minors=args.minors, days=args.days)
    t0 = time.perf_counter()
    events, truth = generate(spec)
    print(
        f"community: {len(truth.adults)} adults, {len(truth.minors)} minors, {spec.days} days, "
        f"{len(truth.groomers)} groomers, {len(events):,} events (built in {time.perf_counter() - t0:.1f} s)"
    )
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = settings_for(Path(tmp) / "bench.db")
        run = await replay(events, base)
        summary = report(run, truth, base, lines)
        eps = run.events / run.seconds
        lines.append(f"throughput: {run.events:,} events in {run.seconds:.1f} s = {eps:,.0f} events/s")
        print("\n".join(lines))
        print("\ntrade-off: cases.alert_threshold (replayed from the recorded findings)")
        print(f"{'threshold':>9} {'recall':>7} {'false/10k':>10} {'median h':>9}")
        half_life = base.cases.half_life_hours
        benign = len(truth.adults) - len(truth.groomers)
        for threshold in (0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8):
            r = score("t", alerts_at(run.merged(), threshold, half_life), truth).row(truth, benign)
            med = "-" if r["median_hours_to_alert"] is None else f"{r['median_hours_to_alert']:.1f}"
            print(f"{threshold:>9.2f} {r['recall']:>7.3f} {r['false_alerts_per_10k_benign']:>10.2f} {med:>9}")
        if args.lines:
            print("\n" + await through_lines(events, run, Path(tmp)))
        if args.sweep:
            print("\ntrade-off: main detector thresholds (full replays, alert threshold 0.6)")
            print(f"{'setting':<36} {'value':>6} {'recall':>7} {'false/10k':>10} {'median h':>9}")
            for n, (key, values) in enumerate(SWEEPS.items()):
                for m, value in enumerate(values):
                    swept = settings_for(Path(tmp) / f"sweep-{n}-{m}.db", {key: value})
                    srun = await replay(events, swept)
                    r = score("s", srun.alerts, truth).row(truth, benign)
                    med = "-" if r["median_hours_to_alert"] is None else f"{r['median_hours_to_alert']:.1f}"
                    print(
                        f"{key:<36} {value!s:>6} {r['recall']:>7.3f} {r['false_alerts_per_10k_benign']:>10.2f} {med:>9}"
                    )
                    sys.stdout.flush()
    summary["events_per_s"] = round(eps)
    summary["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--adults", type=int, default=10_060)
    parser.add_argument("--minors", type=int, default=2_515)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument(
        "--lines",
        action="store_true",
        help="also replay the community written as JSON lines and read back, fast path and pydantic alone",
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="also replay with each main threshold varied away from its default (one full replay each, slow)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    summary = asyncio.run(main_async(args))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
