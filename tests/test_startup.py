"""Start-up failures are one clear line and a non-zero exit, never a traceback or a hang; doctor checks live (issue 12)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from groomguard.app import doctor
from groomguard.app.cli import app
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("GROOMGUARD_")}


def _run(config: Path, env: dict[str, str] | None = None, limit: float = 60) -> tuple[int, str, float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "groomguard", "run", "--config", str(config)],
        cwd=ROOT,
        env={**_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=limit,
    )
    return done.returncode, done.stderr + done.stdout, time.monotonic() - started


def _failure_lines(output: str) -> list[str]:
    """The lines a failed start printed, without the log lines before it."""
    return [
        line for line in output.splitlines() if line and not line[:4].isdigit() and not line.startswith("database:")
    ]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_missing_discord_token_is_one_line_and_exit_1_not_a_hang(tmp_path: Path) -> None:
    config = tmp_path / "g.toml"
    config.write_text(
        f'[store]\npath = "{tmp_path / "g.db"}"\n[discord]\nenabled = true\nguild_ids = [1]\nmod_channel_id = 2\n'
    )
    rc, output, seconds = _run(config)
    assert rc == 1, output
    assert _failure_lines(output) == [
        "cannot start discord: discord.token: missing (fix: set GROOMGUARD_DISCORD__TOKEN or discord.token_file)"
    ]
    assert "Traceback" not in output and seconds < 30


def test_busy_webhook_port_is_one_line(tmp_path: Path, busy_port: int) -> None:
    config = tmp_path / "g.toml"
    config.write_text(
        f'[store]\npath = "{tmp_path / "g.db"}"\n[webhook]\nenabled = true\nsecret = "s"\nport = {busy_port}\n'
    )
    rc, output, _ = _run(config)
    assert rc == 1, output
    assert _failure_lines(output) == [
        f"cannot start webhook: 127.0.0.1:{busy_port} is already in use: stop the other process or set [webhook] "
        "port to a free one"
    ]
    assert "Traceback" not in output


def test_unreachable_discord_is_one_line(tmp_path: Path) -> None:
    """discord.com cannot be resolved from the test machine, or is pointed at a closed port: either way, one line."""
    config = tmp_path / "g.toml"
    config.write_text(
        f'[store]\npath = "{tmp_path / "g.db"}"\n[discord]\nenabled = true\nguild_ids = [1]\nmod_channel_id = 2\n'
    )
    env = {"GROOMGUARD_DISCORD__TOKEN": "not.a.token", "HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": ""}
    rc, output, seconds = _run(config, env=env, limit=90)
    assert rc == 1, output
    lines = _failure_lines(output)
    assert len(lines) == 1 and lines[0].startswith("cannot start discord: "), output
    assert "Traceback" not in output and seconds < 75


# -- doctor, live -----------------------------------------------------------------------------------


def test_doctor_finds_a_busy_port(tmp_path: Path, busy_port: int) -> None:
    config = tmp_path / "g.toml"
    config.write_text(f'[webhook]\nenabled = true\nsecret = "s"\nport = {busy_port}\n')
    result = runner.invoke(app, ["doctor", "-c", str(config), "--db", str(tmp_path / "x.db")])
    out = " ".join(result.output.split())
    assert result.exit_code == 1 and f"cannot listen on 127.0.0.1:{busy_port}" in out


@pytest.fixture
async def fake_discord(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """A local HTTP server answering GET /users/@me like Discord does, for one known token."""

    async def me(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bot good.token":
            return web.json_response({"message": "401: Unauthorized", "code": 0}, status=401)
        return web.json_response({"id": "42", "username": "groomguard-bot"})

    app_ = web.Application()
    app_.router.add_get("/api/v10/users/@me", me)
    server = web.AppRunner(app_)
    await server.setup()
    site = web.TCPSite(server, "127.0.0.1", 0)
    await site.start()
    port = server.addresses[0][1]
    monkeypatch.setattr(doctor, "DISCORD_API", f"http://127.0.0.1:{port}/api/v10")
    yield f"http://127.0.0.1:{port}"
    await server.cleanup()


async def test_doctor_checks_the_discord_token_live(tmp_path: Path, fake_discord: str) -> None:
    import asyncio

    from groomguard.config import load_settings

    settings = load_settings(None)
    settings.discord.enabled = True
    for token, expected in (("good.token", "token accepted live: logged in as groomguard-bot"), ("bad", "401")):
        settings.discord.token = token  # type: ignore[assignment]
        checks = await asyncio.to_thread(doctor.check_live, settings)
        assert len(checks) == 1 and expected in checks[0].detail, checks
        assert checks[0].failed == (token == "bad")
        assert token not in checks[0].detail


def test_unreachable_homeserver_is_one_line_not_an_endless_retry(tmp_path: Path) -> None:
    config = tmp_path / "g.toml"
    config.write_text(
        f'[store]\npath = "{tmp_path / "g.db"}"\n[matrix]\nenabled = true\nhomeserver = "http://127.0.0.1:9"\n'
        'user_id = "@bot:localhost"\naccess_token = "syt_x"\nmod_room = "!m:localhost"\n'
    )
    rc, output, seconds = _run(config, limit=90)
    assert rc == 1, output
    lines = _failure_lines(output)
    assert len(lines) == 1 and lines[0].startswith("cannot start matrix: cannot connect"), output
    assert "Traceback" not in output and seconds < 60


_FAILING_START = """
import asyncio, sys
from pathlib import Path
from groomguard.app.runtime import build_engine
from groomguard.store.sqlite import SqliteStore
from groomguard.testing import make_settings

async def broken(self, hours):
    raise RuntimeError("snapshot refused")

SqliteStore.snapshot = broken

async def main():
    engine = build_engine(make_settings(Path(sys.argv[1]), store__writer_process=sys.argv[2] == "process"), [])
    try:
        await engine.start()
    except RuntimeError as error:
        print("start failed:", error, flush=True)

asyncio.run(main())
"""


@pytest.mark.parametrize("writer", ["process", "thread"])
def test_a_failed_engine_start_closes_the_store_so_the_process_exits(tmp_path: Path, writer: str) -> None:
    """A start that fails after the store opened (its snapshot raised) must not leave the writer running:
    the process reports the error and exits instead of hanging."""
    done = subprocess.run(
        [sys.executable, "-c", _FAILING_START, str(tmp_path / "gg.db"), writer],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "start failed: snapshot refused" in done.stdout, done.stdout + done.stderr
