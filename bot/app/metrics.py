"""Prometheus metrics: engine counters, queue depth and detector latency as text at GET /metrics."""

from __future__ import annotations

import bisect
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from groomguard.config import MetricsSettings
    from groomguard.engine import Engine

log = logging.getLogger(__name__)

#: Detector latency buckets in seconds: most detectors answer in well under a millisecond.
BUCKETS: tuple[float, ...] = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: (metric name, help, EngineStats attribute) for the counters read straight from engine.stats.
COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("groomguard_events_received_total", "Events handed to the engine (events in).", "received"),
    ("groomguard_events_stored_total", "New events stored durably.", "stored"),
    ("groomguard_events_duplicate_total", "Events skipped because their id was already stored.", "duplicates"),
    ("groomguard_events_processed_total", "Stored events run through the detectors.", "processed"),
    (
        "groomguard_events_dropped_total",
        "Queued events dropped unstored when the store failed (not acknowledged).",
        "dropped",
    ),
    ("groomguard_findings_total", "Detector findings.", "findings"),
    ("groomguard_cases_opened_total", "Cases opened.", "cases_opened"),
    ("groomguard_alerts_sent_total", "New alert cards for moderators.", "alerts"),
    ("groomguard_alert_updates_total", "Edits of alert cards already posted.", "alert_updates"),
    ("groomguard_child_notices_sent_total", "Notices sent to young users.", "notices"),
    (
        "groomguard_child_notices_suppressed_total",
        "Notices held back by the per-child rate limit.",
        "notices_suppressed",
    ),
    ("groomguard_enforcements_total", "Moderator-approved enforcement actions.", "enforcements"),
    ("groomguard_detector_errors_total", "Detector exceptions (isolated to one event).", "detector_errors"),
    ("groomguard_delivery_errors_total", "Sink failures; the action stays in the outbox.", "delivery_errors"),
)


class Histogram:
    """A cumulative Prometheus histogram per label value; observe() is O(log buckets) and allocation-free."""

    def __init__(self, buckets: Sequence[float] = BUCKETS) -> None:
        self.buckets = tuple(buckets)
        self.counts: dict[str, list[int]] = defaultdict(lambda: [0] * (len(self.buckets) + 1))
        self.sums: dict[str, float] = defaultdict(float)

    def observe(self, label: str, value: float) -> None:
        self.counts[label][bisect.bisect_left(self.buckets, value)] += 1
        self.sums[label] += value

    def lines(self, name: str, label_name: str) -> list[str]:
        out = []
        for label in sorted(self.counts):
            running = 0
            for bound, count in zip((*self.buckets, float("inf")), self.counts[label], strict=True):
                running += count
                le = "+Inf" if bound == float("inf") else repr(bound)
                out.append(f'{name}_bucket{{{label_name}="{_escape(label)}",le="{le}"}} {running}')
            out.append(f'{name}_sum{{{label_name}="{_escape(label)}"}} {self.sums[label]!r}')
            out.append(f'{name}_count{{{label_name}="{_escape(label)}"}} {running}')
        return out


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Everything /metrics reports; reads engine.stats at scrape time so counting costs the engine nothing."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.detector_seconds = Histogram()
        engine.detector_timer = self.detector_seconds.observe

    @property
    def rejected(self) -> dict[str, int]:
        """Refused inputs by source, as counted by the adapters through Engine.reject."""
        return self.engine.stats.rejected

    def reject(self, source: str, count: int = 1) -> None:
        """Count inputs refused before they became events (kept for callers holding only a Metrics)."""
        self.engine.reject(source, count)

    def render(self) -> str:
        """The Prometheus text exposition of every metric."""
        stats = self.engine.stats
        lines: list[str] = []
        for name, help_text, attr in COUNTERS:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter", f"{name} {getattr(stats, attr, 0)}"]
        lines += [
            "# HELP groomguard_events_rejected_total Inputs refused as invalid before they became events.",
            "# TYPE groomguard_events_rejected_total counter",
        ]
        lines += [
            f'groomguard_events_rejected_total{{source="{_escape(s)}"}} {n}' for s, n in sorted(self.rejected.items())
        ]
        if not self.rejected:
            lines.append('groomguard_events_rejected_total{source="all"} 0')
        # Messages in languages no model covers: reported as "not scored", never given a number.
        unscored: dict[str, int] = {}
        for detector in self.engine.detectors:
            for language, n in getattr(detector, "unscored_messages", {}).items():
                unscored[language] = unscored.get(language, 0) + n
        lines += [
            "# HELP groomguard_language_not_scored_total Messages to minors in a language no model covers.",
            "# TYPE groomguard_language_not_scored_total counter",
        ]
        lines += [
            f'groomguard_language_not_scored_total{{language="{_escape(lang)}"}} {n}'
            for lang, n in sorted(unscored.items())
        ]
        lines += [
            "# HELP groomguard_queue_depth Events waiting in the engine queue.",
            "# TYPE groomguard_queue_depth gauge",
            f"groomguard_queue_depth {self.engine.queue_depth}",
            "# HELP groomguard_detector_seconds Time one detector spent on one event.",
            "# TYPE groomguard_detector_seconds histogram",
            *self.detector_seconds.lines("groomguard_detector_seconds", "detector"),
        ]
        return "\n".join(lines) + "\n"


class MetricsServer:
    """Serves Metrics.render() on GET /metrics with aiohttp; start/stop are its lifecycle."""

    def __init__(self, settings: MetricsSettings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._serve)
        return app

    async def _serve(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render().encode(), headers={"Content-Type": CONTENT_TYPE})

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        addresses = self._runner.addresses
        self.port = addresses[0][1] if addresses else self.settings.port
        log.info("metrics at http://%s:%s/metrics", self.settings.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def start_metrics(settings: MetricsSettings, engine: Engine) -> tuple[Metrics, MetricsServer | None]:
    """Attach metrics to the engine and, when enabled, serve them; returns both for the caller to stop."""
    metrics = Metrics(engine)
    if not settings.enabled:
        return metrics, None
    server = MetricsServer(settings, metrics)
    await server.start()
    return metrics, server


__all__: Sequence[str] = ["BUCKETS", "Histogram", "Metrics", "MetricsServer", "start_metrics"]
