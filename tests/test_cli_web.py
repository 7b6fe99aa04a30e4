"""`groomguard web-token` and `web-link`: a token whose hash the config accepts, and a link the view takes once."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path

from groomguard.app.cli import app
from groomguard.app.web import auth
from groomguard.config import load_settings
from groomguard.store import open_store
from typer.testing import CliRunner

runner = CliRunner()


def test_web_token_prints_a_token_and_the_config_that_accepts_it(tmp_path: Path) -> None:
    result = runner.invoke(app, ["web-token", "alice"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    digest = re.search(r'token_sha256 = "([0-9a-f]{64})"', result.output)
    assert digest is not None and digest.group(1) == auth.digest(token) and len(token) >= 40
    cfg = tmp_path / "g.toml"
    cfg.write_text(f'[web.moderators.alice]\ntoken_sha256 = "{digest.group(1)}"\n', encoding="utf-8")
    assert auth.moderator_for_token(load_settings(cfg).web, token) == "alice"
    assert runner.invoke(app, ["web-token", "no spaces"]).exit_code == 2


def test_web_link_for_a_configured_moderator_only(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    cfg = tmp_path / "g.toml"
    cfg.write_text(
        f'[store]\npath = "{db}"\n[web]\npublic_url = "https://mod.example.org"\n'
        f'[web.moderators.alice]\ntoken_sha256 = "{"0" * 64}"\n',
        encoding="utf-8",
    )
    refused = runner.invoke(app, ["web-link", "mallory", "--config", str(cfg)])
    assert refused.exit_code == 1 and "not a web moderator" in refused.output
    result = runner.invoke(app, ["web-link", "alice", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    link = result.stdout.strip()
    assert link.startswith("https://mod.example.org/signin/link?token=")
    token = link.split("token=", 1)[1]

    async def take() -> tuple[str | None, str | None]:
        store = open_store(load_settings(cfg).store)
        await store.open()
        try:
            now = datetime.now(UTC)
            return await store.take_web_link(auth.digest(token), now), await store.take_web_link(
                auth.digest(token), now
            )
        finally:
            await store.close()

    assert asyncio.run(take()) == ("alice", None)


def test_web_refuses_to_start_without_moderators(tmp_path: Path) -> None:
    cfg = tmp_path / "g.toml"
    cfg.write_text(f'[store]\npath = "{tmp_path / "g.db"}"\n', encoding="utf-8")
    result = runner.invoke(app, ["web", "--config", str(cfg)])
    assert result.exit_code == 1 and "no moderators" in result.output


def test_web_serves_until_sigterm(tmp_path: Path) -> None:
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cfg = tmp_path / "g.toml"
    cfg.write_text(
        f'[store]\npath = "{tmp_path / "g.db"}"\n[web]\nport = {port}\n'
        f'[web.moderators.alice]\ntoken_sha256 = "{"0" * 64}"\n',
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "groomguard", "web", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 60
        page = ""
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/signin", timeout=2) as response:
                    page = response.read().decode()
                    break
            except OSError:
                time.sleep(0.2)
        assert "Moderator token" in page, proc.stderr.read().decode() if proc.poll() is not None else "no page"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0, stderr.decode()
        assert f"web case view: http://127.0.0.1:{port}" in stderr.decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
