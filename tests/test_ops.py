"""Operations: Prometheus metrics endpoint, JSON logs and `groomguard doctor`."""

from __future__ import annotations

import io
import json
import logging
import re
import sqlite3
from pathlib import Path

import aiohttp
from groomguard.app.cli import app
from groomguard.app.logs import JsonFormatter, configure_logging
from groomguard.app.metrics import Histogram, start_metrics
from groomguard.config import MetricsSettings
from groomguard.testing import EventFactory, running_engine
from typer.testing import CliRunner

runner = CliRunner()


def _value(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert match, f"{name} missing from metrics"
    return float(match.group(1))


async def test_metrics_endpoint_reports_engine_counts_and_detector_latency(db: Path, ev: EventFactory) -> None:
    async with running_engine(db) as (engine, _):
        metrics, server = await start_metrics(MetricsSettings(enabled=True).model_copy(update={"port": 0}), engine)
        assert server is not None
        try:
            events = [
                ev.adult("g"),
                *(ev.minor(f"k{i}") for i in range(8)),
                *(ev.contact("g", f"k{i}") for i in range(8)),
            ]
            await engine.ingest(events)
            await engine.ingest(events[:3])  # duplicates
            metrics.reject("replay", 2)
            await engine.drain()
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{server.port}/metrics") as response,
            ):
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                text = await response.text()
        finally:
            await server.stop()
    assert _value(text, "groomguard_events_received_total") == len(events) + 3
    assert _value(text, "groomguard_events_stored_total") == len(events)
    assert _value(text, "groomguard_events_duplicate_total") == 3
    assert _value(text, 'groomguard_events_rejected_total{source="replay"}') == 2
    assert _value(text, "groomguard_queue_depth") == 0
    assert _value(text, "groomguard_cases_opened_total") == 1
    assert _value(text, "groomguard_alerts_sent_total") == 1
    assert _value(text, "groomguard_findings_total") >= 1
    assert "groomguard_child_notices_suppressed_total" in text
    count = _value(text, 'groomguard_detector_seconds_count{detector="fan_out"}')
    # fan_out reads only contact requests (its `handles`), so it is timed once per request.
    assert count == sum(e.type == "contact_requested" for e in events)
    assert _value(text, 'groomguard_detector_seconds_bucket{detector="fan_out",le="+Inf"}') == count


def test_histogram_is_cumulative() -> None:
    h = Histogram((0.001, 0.01))
    for v in (0.0005, 0.005, 0.005, 1.0):
        h.observe("d", v)
    lines = h.lines("x", "detector")
    assert lines[:3] == [
        'x_bucket{detector="d",le="0.001"} 1',
        'x_bucket{detector="d",le="0.01"} 3',
        'x_bucket{detector="d",le="+Inf"} 4',
    ]
    assert lines[-1] == 'x_count{detector="d"} 4'


def test_json_logs_one_object_per_line_with_ids() -> None:
    buffer = io.StringIO()
    configure_logging("INFO", json_logs=True, stream=buffer)
    try:
        logging.getLogger("groomguard.engine").info("case %d opened", 7, extra={"case_id": 7, "community": "c1"})
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("groomguard.engine").exception("detector failed on %s", "p:e1")
    finally:
        configure_logging("WARNING")
    first, second = (json.loads(line) for line in buffer.getvalue().splitlines())
    assert first["message"] == "case 7 opened" and first["case_id"] == 7 and first["community"] == "c1"
    assert first["level"] == "INFO" and first["logger"] == "groomguard.engine" and first["time"].endswith("+00:00")
    assert second["level"] == "ERROR" and "ValueError: boom" in second["exception"]
    assert isinstance(JsonFormatter().format(logging.makeLogRecord({"msg": "x"})), str)


def test_doctor_passes_on_a_good_setup(tmp_path: Path) -> None:
    result = runner.invoke(app, ["doctor", "--db", str(tmp_path / "new.db")])
    assert result.exit_code == 0, result.output
    assert "database" in result.output and "model" in result.output


def test_doctor_lists_what_to_fix(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for var in ("GROOMGUARD_DISCORD__TOKEN", "GROOMGUARD_WEBHOOK__SECRET"):
        monkeypatch.delenv(var, raising=False)
    config = tmp_path / "g.toml"
    config.write_text("[discord]\nenabled = true\n[webhook]\nenabled = true\n")
    result = runner.invoke(app, ["doctor", "-c", str(config), "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 1
    out = " ".join(result.output.split())
    assert "discord.token: missing" in out and "GROOMGUARD_DISCORD__TOKEN" in out
    assert "webhook.secret: missing" in out and "mod_channel_id" in out


def test_doctor_reports_a_database_from_the_future(tmp_path: Path) -> None:
    db = tmp_path / "future.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
    con.execute("INSERT INTO schema_version VALUES (999, 'x')")
    con.commit()
    con.close()
    result = runner.invoke(app, ["doctor", "--db", str(db)])
    assert result.exit_code == 1 and "upgrade GroomGuard" in " ".join(result.output.split())


def test_doctor_refuses_a_broken_config(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[store]\nmessage_retention_days = 0\n")
    result = runner.invoke(app, ["doctor", "-c", str(config)])
    assert result.exit_code == 1 and "message_retention_days" in result.output


async def test_doctor_checks_the_webhook_url_and_secret_live(tmp_path: Path) -> None:
    """Against a real running webhook: right secret passes, wrong secret and wrong path fail, a dead
    port fails when named and only warns when it comes from the config (GroomGuard not started yet)."""
    import asyncio

    from groomguard.adapters.webhook import WebhookAdapter
    from groomguard.app.doctor import FAIL, OK, WARN, check_webhook_live, diagnose
    from groomguard.config import WebhookSettings
    from groomguard.testing import make_settings, running_engine

    from tests.synapse.homeserver import free_port

    adapter = WebhookAdapter(WebhookSettings(enabled=True, secret="right", port=1).model_copy(update={"port": 0}))
    async with running_engine(tmp_path / "db") as (engine, _):
        await adapter.start(engine)
        url = f"http://127.0.0.1:{adapter.port}/events"
        try:
            good = await asyncio.to_thread(check_webhook_live, url, "right")
            bad = await asyncio.to_thread(check_webhook_live, url, "wrong")
            lost = await asyncio.to_thread(check_webhook_live, url.replace("/events", "/event"), "right")
            assert engine.stats.stored == 0  # the probe stores nothing
        finally:
            await adapter.stop()
    assert [c.status for c in good] == [OK]
    assert bad[0].status == FAIL and "refused the signature" in bad[0].detail and "secret" in bad[0].fix
    assert lost[0].status == FAIL and "404" in lost[0].detail
    dead = f"http://127.0.0.1:{free_port()}/events"
    assert check_webhook_live(dead, "right")[0].status == FAIL
    settings = make_settings(
        tmp_path / "x.db", webhook__enabled=True, webhook__secret="right", webhook__port=free_port()
    )
    [live] = [c for c in diagnose(settings) if c.area == "webhook (live)"]
    assert live.status == WARN and "cannot reach" in live.detail


def test_doctor_webhook_url_option_fails_on_an_unreachable_sender_url(tmp_path: Path) -> None:
    from tests.synapse.homeserver import free_port

    secret = tmp_path / "module.secret"
    secret.write_text("module-secret\n")
    url = f"http://127.0.0.1:{free_port()}/events"
    args = ["doctor", "--db", str(tmp_path / "d.db"), "--webhook-url", url, "--webhook-secret-file", str(secret)]
    result = runner.invoke(app, args)
    out = " ".join(result.output.split())
    assert result.exit_code == 1 and f"cannot reach {url}" in out and "webhook_url" in out
    missing = runner.invoke(app, [*args[:-1], str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "cannot read" in " ".join(missing.output.split())
