"""Security properties the core can enforce (docs/SECURITY.md maps each one to its test)."""

from __future__ import annotations

import io
import json
import logging
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from groomguard.actions import ChildNotice, Enforcement, ModAlert
from groomguard.app.runtime import build_engine
from groomguard.config import ConfigError, load_settings, read_secret
from groomguard.testing import EventFactory, MemorySink, running_engine
from groomguard.testing.simulate import CommunitySpec, generate

SECRETS = {
    "GROOMGUARD_WEBHOOK__SECRET": "whsec-7f3a9c1e5b2d",
    "GROOMGUARD_DISCORD__TOKEN": "discord-token-MTIzNDU2Nzg5",
    "GROOMGUARD_MATRIX__ACCESS_TOKEN": "syt_matrix_token_c2VjcmV0",
    "GROOMGUARD_MATRIX__PASSWORD": "matrix-password-hunter2",
}


def _all_rows(db: Path) -> Iterator[tuple[str, tuple[Any, ...]]]:
    con = sqlite3.connect(db)
    try:
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            for row in con.execute(f"SELECT * FROM {table}"):
                yield table, row
    finally:
        con.close()


def _traces(db: Path, needle: str) -> list[tuple[str, tuple[Any, ...]]]:
    """Every row in every table whose text (ids, JSON bodies, payloads, reasons) mentions `needle`."""
    return [(t, row) for t, row in _all_rows(db) if any(isinstance(v, str) and needle in v for v in row)]


# -- secrets ------------------------------------------------------------------------------------


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    return SECRETS


@pytest.fixture
def all_logs() -> Iterator[io.StringIO]:
    """Capture every log line at DEBUG, through the JSON formatter too when it exists."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    handlers = [handler]
    try:
        from groomguard.app.logs import JsonFormatter

        json_handler = logging.StreamHandler(buffer)
        json_handler.setFormatter(JsonFormatter())
        handlers.append(json_handler)
    except ImportError:
        pass
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.DEBUG)
    for h in handlers:
        root.addHandler(h)
    yield buffer
    for h in handlers:
        root.removeHandler(h)
    root.setLevel(old_level)


def test_secrets_come_from_env_and_files(secret_env: dict[str, str], tmp_path: Path) -> None:
    settings = load_settings(None)
    assert settings.webhook.secret is not None
    assert settings.webhook.secret.get_secret_value() == secret_env["GROOMGUARD_WEBHOOK__SECRET"]
    token_file = tmp_path / "token"
    token_file.write_text("from-a-file-4242\n")
    assert read_secret(None, token_file, "discord.token") == "from-a-file-4242"


def test_settings_repr_never_shows_secrets(secret_env: dict[str, str]) -> None:
    settings = load_settings(None)
    shown = repr(settings) + str(settings) + repr(settings.webhook) + repr(settings.discord) + repr(settings.matrix)
    leaked = [name for name, value in secret_env.items() if value in shown]
    assert leaked == [], f"settings repr shows {leaked}"


def test_config_errors_name_the_setting_never_the_secret(tmp_path: Path, secret_env: dict[str, str]) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError) as caught:
        read_secret(None, missing, "webhook.secret")
    assert "webhook.secret_file" in str(caught.value)
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[webhook]\nsecret = 5\nport = "{secret_env["GROOMGUARD_WEBHOOK__SECRET"]}x"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(bad)
    # The offending value is not echoed back (pydantic messages describe the type, not the input).
    assert secret_env["GROOMGUARD_WEBHOOK__SECRET"] not in str(caught.value)


async def test_secrets_never_reach_the_logs(
    secret_env: dict[str, str], all_logs: io.StringIO, tmp_path: Path, ev: EventFactory
) -> None:
    from groomguard.adapters.webhook import WebhookAdapter

    settings = load_settings(None)
    settings.store.path = tmp_path / "s.db"
    settings.logging.level = "DEBUG"
    engine = build_engine(settings, [MemorySink()])
    await engine.start()
    adapter = WebhookAdapter(settings.webhook.model_copy(update={"port": 0, "enabled": True}))
    await adapter.start(engine)
    try:
        await engine.ingest([ev.adult("g"), *(ev.minor(f"k{i}") for i in range(6))])
        await engine.ingest([ev.contact("g", f"k{i}") for i in range(6)])
        logging.getLogger("groomguard.config").debug("loaded settings for %s", settings.store.path)
    finally:
        await adapter.stop()
        await engine.stop()
    text = all_logs.getvalue()
    assert text, "nothing was logged; the check would prove nothing"
    assert [n for n, v in secret_env.items() if v in text] == []


def test_json_logs_carry_ids_never_message_bodies(all_logs: io.StringIO) -> None:
    pytest.importorskip("groomguard.app.logs")
    from groomguard.app.logs import JsonFormatter

    record = logging.LogRecord("groomguard.engine", logging.INFO, __file__, 1, "event %s processed", ("p:e1",), None)
    line = json.loads(JsonFormatter().format(record))
    assert (
        line["message"] == "event p:e1 processed" and line["level"] == "INFO" and line["logger"] == "groomguard.engine"
    )


# -- erasure ------------------------------------------------------------------------------------


def _community(seed: int) -> tuple[list[Any], Any]:
    spec = CommunitySpec(community="sec", platform="sec", adults=40, minors=30, days=5, chatter_per_day=60, seed=seed)
    return generate(spec)


async def test_forget_suspect_leaves_no_trace_in_any_table_or_memory(tmp_path: Path) -> None:
    db = tmp_path / "forget.db"
    events, truth = _community(5)
    suspect = next(a for a, pattern in truth.groomers.items() if pattern == "fan_out")
    async with running_engine(db) as (engine, sink):
        await engine.ingest(events)
        await engine.drain()
        assert _traces(db, suspect), "the scenario should have stored the suspect"
        assert any(getattr(a, "suspect", None) == suspect for a in sink.actions)
        await engine.forget(suspect)
        assert not any(suspect in str(key) for key in engine.state.accounts)
        assert not any(c.suspect == suspect for c in engine.cases.by_id.values())
    hits = _traces(db, suspect)
    assert hits == [], f"{len(hits)} rows still mention the erased account, e.g. {hits[:3]}"
    # A restart rebuilds memory from the store: the account must not come back.
    async with running_engine(db) as (engine, _):
        assert not any(suspect in str(key) for key in engine.state.accounts)


async def test_forget_child_removes_their_messages_notices_and_case_links(tmp_path: Path) -> None:
    db = tmp_path / "forget-child.db"
    ev = EventFactory(community="sec", platform="sec")
    events = [ev.adult("g"), ev.minor("kid-a"), ev.minor("kid-b")]
    events += [
        ev.message("g", line, conversation="dm-1", private=True, recipients=("kid-a",))
        for line in (
            "hey you seem really mature for your age",
            "this is just between us ok, don't tell anyone",
            "add me on snap, it's easier to talk there",
            "send me a pic of you, i won't show anyone",
        )
    ]
    events += [ev.message("kid-a", "ok", conversation="dm-1", private=True, recipients=("g",))]
    async with running_engine(db) as (engine, _sink):
        await engine.ingest(events)
        await engine.forget("kid-a")
    assert _traces(db, "kid-a") == []


# -- retention ----------------------------------------------------------------------------------


def test_retention_defaults() -> None:
    store = load_settings(None).store
    assert store.message_retention_days == 30


async def test_message_text_is_gone_everywhere_after_retention(tmp_path: Path) -> None:
    db = tmp_path / "retention.db"
    ev = EventFactory(community="sec", platform="sec")
    old = ev.message("a", "old-words-zq81", conversation="c")
    ev.tick(days=31)
    new = ev.message("a", "new words", conversation="c")
    retention = {"store__message_retention_days": 30, "store__event_retention_days": 90}
    async with running_engine(db, clock=lambda: new.at, **retention) as (engine, _):
        await engine.ingest([old, new])
        await engine.purge()
    assert _traces(db, "old-words-zq81") == []


# -- the suspect is never told ------------------------------------------------------------------


@pytest.mark.parametrize("seed", [3, 8, 21])
async def test_no_action_is_ever_addressed_to_a_suspect(tmp_path: Path, seed: int) -> None:
    events, _ = _community(seed)
    ev = EventFactory(community="sec", platform="sec", start=events[-1].at + timedelta(minutes=1))
    async with running_engine(tmp_path / f"s{seed}.db") as (engine, sink):
        await engine.ingest(events)
        # A minor who is also a suspect must still get no notice about their own case.
        await engine.ingest([ev.minor("teen-suspect"), *(ev.minor(f"t{i}") for i in range(8))])
        await engine.ingest([ev.contact("teen-suspect", f"t{i}") for i in range(8)])
        await engine.drain()
        cases = await engine.store.list_cases(limit=10_000)
    suspects = {(c["community"], c["suspect"]) for c in cases}
    assert suspects, "the planted groomers should open cases"
    notices = sink.of(ChildNotice)
    alerts = sink.of(ModAlert)
    assert alerts
    for notice in notices:
        assert (notice.community, notice.child) not in suspects, f"notice {notice.action_id} went to a suspect"
        for _community_id, suspect in suspects:
            assert suspect not in notice.text, "a notice must not name the account it warns about"
        assert "score" not in notice.text.lower() and "detector" not in notice.text.lower()
    # Nothing else in the outbox addresses anyone but moderators: alerts go to the mod channel/room only,
    # and enforcement exists only after a moderator's decision (none here).
    assert sink.of(Enforcement) == []
    assert {type(a) for a in sink.actions} <= {ModAlert, ChildNotice}
