"""Start a throwaway local Synapse (from `.synapse-venv`) for tests, and register users on it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
SYNAPSE_VENV = Path(os.environ.get("SYNAPSE_VENV", REPO_ROOT / ".synapse-venv"))
SYNAPSE_PYTHON = SYNAPSE_VENV / "bin" / "python"
SETUP_COMMAND = "bash tests/synapse/setup.sh"

#: Every rate limit Synapse applies to clients, raised so that tests are never throttled.
_RATE_LIMITED = (
    "rc_message",
    "rc_registration",
    "rc_joins_per_room",
    "rc_room_creation",
    "rc_third_party_invite",
    "rc_admin_redaction",
    "rc_key_requests",
    "rc_reports",
    "rc_profile",
    "rc_delayed_event_mgmt",
    "rc_media_create",
    "rc_user_directory",
    "rc_registration_token_validity",
)
_RATE_LIMITED_GROUPS = {
    "rc_login": ("address", "account", "failed_attempts"),
    "rc_joins": ("local", "remote"),
    "rc_invites": ("per_room", "per_user", "per_issuer"),
    "rc_presence": ("per_user",),
}
_UNLIMITED = {"per_second": 10_000, "burst_count": 10_000}


def missing_reason() -> str | None:
    """Why Synapse cannot be started here, or None when `.synapse-venv` is usable."""
    if not SYNAPSE_PYTHON.exists():
        return f"Synapse is not installed ({SYNAPSE_VENV} is missing); run: {SETUP_COMMAND}"
    if not any(SYNAPSE_VENV.glob("lib/python*/site-packages/synapse/app/homeserver.py")):
        return f"{SYNAPSE_VENV} has no matrix-synapse in it; run: {SETUP_COMMAND}"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_config(
    data_dir: Path, port: int, shared_secret: str, modules: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The homeserver config for tests: localhost only, sqlite, open registration, no limits."""
    config: dict[str, Any] = {
        "server_name": "localhost",
        "public_baseurl": f"http://127.0.0.1:{port}/",
        "pid_file": str(data_dir / "homeserver.pid"),
        "report_stats": False,
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": {"name": "sqlite3", "args": {"database": str(data_dir / "homeserver.db")}},
        "media_store_path": str(data_dir / "media_store"),
        "signing_key_path": str(data_dir / "localhost.signing.key"),
        "macaroon_secret_key": secrets.token_hex(16),
        "form_secret": secrets.token_hex(16),
        "registration_shared_secret": shared_secret,
        "enable_registration": True,
        "enable_registration_without_verification": True,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "presence": {"enabled": False},
        "url_preview_enabled": False,
        "enable_metrics": False,
        "modules": modules or [],
    }
    for name in _RATE_LIMITED:
        config[name] = dict(_UNLIMITED)
    for name, parts in _RATE_LIMITED_GROUPS.items():
        config[name] = {part: dict(_UNLIMITED) for part in parts}
    return config


def _write_signing_key(path: Path) -> None:
    # An ed25519 signing key is just a 32-byte seed; writing it here saves a
    # `--generate-keys` run of Synapse (about a second) on every start.
    seed = base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    path.write_text(f"ed25519 a_test {seed}\n")


@dataclass
class Homeserver:
    """A Synapse child process on 127.0.0.1; `url` is its client API base URL."""

    url: str
    shared_secret: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    _owns_dir: bool = field(default=True, repr=False)

    @property
    def pid(self) -> int:
        """The child's process id (the pid_file is not written in the foreground)."""
        return self.process.pid

    def register(self, username: str, admin: bool = False) -> tuple[str, str]:
        """Register `username` with the shared secret; returns (user_id, access_token)."""
        nonce = self._request("GET", "/_synapse/admin/v1/register")["nonce"]
        password = secrets.token_urlsafe(12)
        # The MAC Synapse's admin API expects: HMAC-SHA1 over NUL-separated fields.
        message = "\x00".join((nonce, username, password, "admin" if admin else "notadmin"))
        mac = hmac.new(self.shared_secret.encode(), message.encode(), hashlib.sha1)
        body = {
            "nonce": nonce,
            "username": username,
            "password": password,
            "admin": admin,
            "mac": mac.hexdigest(),
        }
        reply = self._request("POST", "/_synapse/admin/v1/register", body)
        return str(reply["user_id"]), str(reply["access_token"])

    def log_tail(self, chars: int = 4000) -> str:
        """The end of Synapse's own log, for failure messages."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """Stop Synapse (SIGTERM, then SIGKILL) and remove its data unless kept."""
        self._terminate(timeout)
        if self._owns_dir and not os.environ.get("GG_KEEP_SYNAPSE"):
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def restart(self, startup_timeout: float = 30.0) -> None:
        """Stop and start the same homeserver (same data, port and config)."""
        self._terminate()
        self.process = _launch(self.data_dir, self.log_path)
        _wait_healthy(self, startup_timeout)

    def _terminate(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return json.load(reply)
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"{method} {path}: {err.code} {err.read()[:300]!r}") from err


def start_homeserver(
    modules: list[dict[str, Any]] | None = None,
    data_dir: Path | None = None,
    startup_timeout: float = 30.0,
) -> Homeserver:
    """Generate a config, start Synapse in the foreground and wait until /health answers."""
    reason = missing_reason()
    if reason:
        raise RuntimeError(reason)
    owns_dir = data_dir is None
    data_dir = Path(data_dir or tempfile.mkdtemp(prefix="gg-synapse-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    shared_secret = secrets.token_hex(16)
    config = build_config(data_dir, port, shared_secret, modules)
    (data_dir / "homeserver.yaml").write_text(json.dumps(config, indent=2))  # JSON is YAML
    if not Path(config["signing_key_path"]).exists():
        _write_signing_key(Path(config["signing_key_path"]))

    log_path = data_dir / "synapse.log"
    process = _launch(data_dir, log_path)
    server = Homeserver(
        url=f"http://127.0.0.1:{port}",
        shared_secret=shared_secret,
        data_dir=data_dir,
        process=process,
        log_path=log_path,
        _owns_dir=owns_dir,
    )
    try:
        _wait_healthy(server, startup_timeout)
    except BaseException:
        server.stop()
        raise
    return server


def _launch(data_dir: Path, log_path: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    # tests/synapse/setup.sh installs this checkout into Synapse's venv (groomguard.adapters.matrix.synapse_module).
    env.pop("VIRTUAL_ENV", None)
    command = [str(SYNAPSE_PYTHON), "-m", "synapse.app.homeserver"]
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [*command, "-c", str(data_dir / "homeserver.yaml")],
            cwd=data_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def _wait_healthy(server: Homeserver, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"Synapse exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.url + "/health", timeout=1) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"Synapse did not become healthy in {timeout:.0f}s:\n{server.log_tail()}")
