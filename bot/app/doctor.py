"""`groomguard doctor`: check config, database, model file and platform settings, and say what to fix."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import socket
import sqlite3
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from groomguard.config import ConfigError, Settings, read_secret

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Check:
    """One finding of the doctor: which area, how bad, what we saw and what to do about it."""

    area: str
    status: str
    detail: str
    fix: str = ""

    @property
    def failed(self) -> bool:
        return self.status == FAIL


def check_database(settings: Settings) -> list[Check]:
    """The store opens, its migrations are current (or will apply at start) and it is writable."""
    if settings.store.database_url:
        return _check_postgres(settings.store.database_url)
    from groomguard.store.sqlite import migrations

    path = Path(settings.store.path)
    latest = max((v for v, _ in migrations()), default=0)
    if not path.exists():
        parent = path.parent if str(path.parent) else Path(".")
        if parent.exists() and os.access(parent, os.W_OK):
            return [
                Check("database", OK, f"{path} does not exist yet; it is created with {latest} migrations at start")
            ]
        return [
            Check("database", FAIL, f"cannot create {path}", f"create {parent} or make it writable, or set store.path")
        ]
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            verdict = con.execute("PRAGMA quick_check").fetchone()[0]
            has_versions = con.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
            ).fetchone()
            current = (
                con.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0] if has_versions else 0
            )
        finally:
            con.close()
    except sqlite3.Error as error:
        return [
            Check("database", FAIL, f"cannot read {path}: {error}", "restore a backup or point store.path elsewhere")
        ]
    out = []
    if verdict != "ok":
        out.append(Check("database", FAIL, f"{path} integrity check: {verdict}", "restore from a backup"))
    if current > latest:
        out.append(
            Check(
                "database",
                FAIL,
                f"{path} is at migration {current}, newer than this version knows ({latest})",
                "upgrade GroomGuard",
            )
        )
    elif current < latest:
        out.append(
            Check(
                "database",
                WARN,
                f"{path} is at migration {current} of {latest}",
                "they apply automatically at the next start",
            )
        )
    else:
        out.append(Check("database", OK, f"{path} opens, migrations current ({current})"))
    writable = os.access(path, os.W_OK) and os.access(path.parent if str(path.parent) else Path("."), os.W_OK)
    if not writable:
        out.append(
            Check(
                "database",
                FAIL,
                f"{path} or its folder is not writable",
                "fix the file owner/permissions (WAL needs the folder too)",
            )
        )
    return out


def _check_postgres(url: str) -> list[Check]:
    import asyncio

    try:
        from groomguard.store.postgres import PostgresStore
    except ImportError as error:
        return [
            Check(
                "database", FAIL, f"PostgreSQL support is not installed ({error})", "pip install 'groomguard[postgres]'"
            )
        ]

    async def probe() -> tuple[int, int]:
        store = PostgresStore(url)
        return await store.check()

    try:
        current, latest = asyncio.run(probe())
    except Exception as error:  # any connection problem is reported, never raised
        return [
            Check(
                "database",
                FAIL,
                f"cannot use PostgreSQL: {type(error).__name__}: {_no_secrets(str(error), url)}",
                "check store.database_url, the server and the role's rights",
            )
        ]
    if current < latest:
        return [
            Check(
                "database",
                WARN,
                f"PostgreSQL at migration {current} of {latest}",
                "they apply automatically at the next start",
            )
        ]
    return [Check("database", OK, f"PostgreSQL opens, writable, migrations current ({current})")]


def _no_secrets(text: str, url: str) -> str:
    from urllib.parse import urlsplit

    password = urlsplit(url).password
    return text.replace(password, "***") if password else text


def check_model(settings: Settings) -> list[Check]:
    """The grooming-language model loads with onnxruntime when the detector is enabled."""
    from groomguard.classifier import DEFAULT_MODEL_PATH

    enabled = settings.detector("grooming_language").enabled
    if not DEFAULT_MODEL_PATH.exists():
        status = FAIL if enabled else OK
        return [
            Check(
                "model",
                status,
                f"{DEFAULT_MODEL_PATH.name} is missing",
                "reinstall GroomGuard or run `python -m groomguard.models.train`",
            )
        ]
    try:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(str(DEFAULT_MODEL_PATH), options, providers=["CPUExecutionProvider"])
        inputs = ", ".join(i.name for i in session.get_inputs())
    except Exception as error:  # onnxruntime raises many unrelated types
        return [
            Check(
                "model",
                FAIL,
                f"{DEFAULT_MODEL_PATH.name} does not load: {error}",
                "reinstall GroomGuard or retrain the model",
            )
        ]
    return [Check("model", OK, f"{DEFAULT_MODEL_PATH.name} loads (inputs: {inputs})")]


def _secret(value: str | None, file: Path | None, name: str, area: str) -> Check | None:
    try:
        read_secret(value, file, name)
    except ConfigError as error:
        problem = error.problems[0]
        return Check(area, FAIL, f"{problem.key}: {problem.problem}", problem.hint)
    return None


def check_platforms(settings: Settings) -> list[Check]:
    """Settings each enabled platform needs; live permission checks happen when the adapter starts."""
    out: list[Check] = []
    s = settings
    if s.webhook.enabled:
        missing = _secret(s.webhook.secret, s.webhook.secret_file, "webhook.secret", "webhook")
        out.append(missing or Check("webhook", OK, f"secret present; will listen on {s.webhook.host}:{s.webhook.port}"))
        if s.webhook.host not in ("127.0.0.1", "::1", "localhost"):
            out.append(Check("webhook", WARN, f"listens on {s.webhook.host}", "keep it on loopback behind a TLS proxy"))
    if s.discord.enabled:
        missing = _secret(s.discord.token, s.discord.token_file, "discord.token", "discord")
        if missing:
            out.append(missing)
        if s.discord.mod_channel_id is None and not s.discord.mod_channels:
            out.append(
                Check(
                    "discord",
                    FAIL,
                    "no mod_channel_id",
                    "set [discord] mod_channel_id to a private moderators' channel",
                )
            )
        unassigned = [g for g in s.discord.guild_ids if s.discord.mod_channel_for(g) is None]
        if s.discord.mod_channels and unassigned:
            out.append(
                Check(
                    "discord",
                    FAIL,
                    f"no mod channel for server(s) {', '.join(map(str, unassigned))}",
                    "add each to [discord.mod_channels], or set mod_channel_id as the default",
                )
            )
        if not s.discord.guild_ids:
            out.append(Check("discord", FAIL, "no guild_ids", "list the servers to protect in [discord] guild_ids"))
        if not s.discord.moderator_role_ids:
            out.append(
                Check("discord", WARN, "no moderator_role_ids", "only members with Manage Server can act on cases")
            )
        if not missing:
            out.append(
                Check(
                    "discord", OK, "token present; intents, channel privacy and permissions are checked live at start"
                )
            )
    if s.matrix.enabled:
        if not (s.matrix.access_token or s.matrix.access_token_file or s.matrix.password):
            out.append(
                Check(
                    "matrix",
                    FAIL,
                    "no access token or password",
                    "set GROOMGUARD_MATRIX__ACCESS_TOKEN or matrix.access_token_file",
                )
            )
        elif s.matrix.access_token_file and not s.matrix.access_token:
            missing = _secret(None, s.matrix.access_token_file, "matrix.access_token", "matrix")
            if missing:
                out.append(missing)
        if not s.matrix.user_id:
            out.append(Check("matrix", FAIL, "no user_id", "set [matrix] user_id, e.g. @groomguard:example.org"))
        if not s.matrix.mod_room:
            out.append(Check("matrix", FAIL, "no mod_room", "set [matrix] mod_room to the private moderators' room id"))
        if not any(c.area == "matrix" and c.failed for c in out):
            out.append(
                Check("matrix", OK, "credentials present; mod room privacy and power levels are checked live at start")
            )
    if not (s.webhook.enabled or s.discord.enabled or s.matrix.enabled or s.replay.path):
        out.append(
            Check(
                "platforms",
                WARN,
                "no platform enabled",
                "enable [webhook], [discord] or [matrix], or set [replay] path",
            )
        )
    return out


#: Discord's REST API; a module constant so tests can point the live check at a local server.
DISCORD_API = "https://discord.com/api/v10"
#: Longest wait for one live check (a platform that does not answer is reported, not waited for).
LIVE_TIMEOUT_S = 8.0


def check_ports(settings: Settings) -> list[Check]:
    """The webhook and metrics ports can be bound now (nothing else listens there)."""
    out = []
    for part, section in (("webhook", settings.webhook), ("metrics", settings.metrics)):
        if not section.enabled:
            continue
        where = f"{section.host}:{section.port}"
        try:
            infos = socket.getaddrinfo(section.host, section.port, type=socket.SOCK_STREAM)
            with socket.socket(infos[0][0], socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(infos[0][4])
        except OSError as error:
            reason = error.strerror or str(error)
            out.append(
                Check(part, FAIL, f"cannot listen on {where}: {reason}", f"stop what uses it or set [{part}] port/host")
            )
            continue
        out.append(Check(part, OK, f"{where} is free to listen on"))
    return out


async def _get(url: str, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=LIVE_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url, headers=headers) as reply:
        try:
            body = await reply.json(content_type=None)
        except ValueError:
            body = {}
        return reply.status, body if isinstance(body, dict) else {}


async def _live_discord(token: str) -> Check:
    try:
        status, body = await _get(f"{DISCORD_API}/users/@me", {"Authorization": f"Bot {token}"})
    except Exception as error:  # network trouble is a finding, never a crash
        return Check("discord", FAIL, f"cannot reach Discord: {type(error).__name__}: {error}", "check the network")
    if status == 200:
        return Check("discord", OK, f"token accepted live: logged in as {body.get('username', '?')} ({body.get('id')})")
    if status == 401:
        return Check(
            "discord", FAIL, "Discord rejected the token (401)", "reset it in the Developer Portal and set it again"
        )
    return Check("discord", WARN, f"Discord answered {status} to the token check", "retry; see Discord's status page")


async def _live_matrix(homeserver: str, token: str, user_id: str) -> Check:
    url = f"{homeserver.rstrip('/')}/_matrix/client/v3/account/whoami"
    try:
        status, body = await _get(url, {"Authorization": f"Bearer {token}"})
    except Exception as error:
        return Check(
            "matrix",
            FAIL,
            f"cannot reach {homeserver}: {type(error).__name__}: {error}",
            "check [matrix] homeserver and that the server is up",
        )
    if status == 200 and (not user_id or body.get("user_id") == user_id):
        return Check("matrix", OK, f"access token accepted live for {body.get('user_id')}")
    if status == 200:
        return Check(
            "matrix",
            FAIL,
            f"the access token belongs to {body.get('user_id')}, not {user_id}",
            "set [matrix] user_id to the token's account or use that account's token",
        )
    if status == 401:
        return Check("matrix", FAIL, "the homeserver rejected the access token (401)", "log in again for a new token")
    return Check("matrix", WARN, f"the homeserver answered {status} to whoami", "retry later")


def check_live(settings: Settings) -> list[Check]:
    """Credentials against the real platforms, now: a token that is present but wrong is found here."""
    import asyncio

    jobs = []
    s = settings
    # A missing secret is already reported by check_platforms; there is nothing to try live then.
    if s.discord.enabled:
        with contextlib.suppress(ConfigError):
            jobs.append(_live_discord(read_secret(s.discord.token, s.discord.token_file, "discord.token")))
    if s.matrix.enabled and (s.matrix.access_token or s.matrix.access_token_file):
        with contextlib.suppress(ConfigError):
            token = read_secret(s.matrix.access_token, s.matrix.access_token_file, "matrix.access_token")
            jobs.append(_live_matrix(s.matrix.homeserver, token, s.matrix.user_id))
    if not jobs:
        return []

    async def run_all() -> list[Check]:
        return list(await asyncio.gather(*jobs))

    return asyncio.run(run_all())


def webhook_url(settings: Settings) -> str:
    """Where this config's webhook listens (what a sender's `webhook_url` should be on this host)."""
    host = settings.webhook.host
    host = "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in host and host != "::1" else host
    host = "[::1]" if host == "::1" else host
    return f"http://{host}:{settings.webhook.port}/events"


def check_webhook_live(url: str, secret: str, explicit: bool = True) -> list[Check]:
    """POST a signed empty batch to `url`: GroomGuard checks the signature first, then refuses the
    empty batch (400), so nothing is stored and the answer says whether URL and secret are right.

    `explicit` is False when the URL only comes from the config (GroomGuard may simply not be
    running yet): then an unreachable URL is a warning, not a failure.
    """
    body = b"[]"
    timestamp = str(int(time.time()))
    signature = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-GroomGuard-Timestamp": timestamp,
            "X-GroomGuard-Signature": signature,
        },
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=LIVE_TIMEOUT_S) as reply:
            status, text = reply.status, reply.read(2048).decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read(2048).decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return [
            Check(
                "webhook (live)",
                FAIL if explicit else WARN,
                f"cannot reach {url}: {reason}",
                "start `groomguard run` with [webhook] enabled, or fix the sender's webhook_url (host, port, /events)",
            )
        ]
    try:
        detail = str(json.loads(text).get("error", ""))
    except (ValueError, AttributeError):
        detail = text[:200]
    if status == 400 and "empty batch" in detail:
        return [Check("webhook (live)", OK, f"{url} answers and accepts the secret's signature")]
    if status == 401:
        return [
            Check(
                "webhook (live)",
                FAIL,
                f"{url} refused the signature: {detail}",
                "the sender's secret (the Synapse module's `secret`) must equal the running GroomGuard's "
                "webhook secret, and both clocks must agree within webhook.max_skew_seconds",
            )
        ]
    if status == 404:
        return [Check("webhook (live)", FAIL, f"nothing at {url} (404)", "the webhook path is /events")]
    if status == 429:
        return [Check("webhook (live)", WARN, f"{url} is rate-limiting this host", "try again in a second")]
    return [Check("webhook (live)", FAIL, f"{url} answered HTTP {status}: {detail}", "is that GroomGuard's webhook?")]


def diagnose(
    settings: Settings, live: bool = True, live_url: str | None = None, live_secret: str | None = None
) -> list[Check]:
    """Every check, in the order an operator should fix them.

    `live` also tries ports and credentials now. With the webhook enabled (or `live_url` given) the
    webhook is checked live too: a signed request to `live_url` (default: this config's own address)
    with `live_secret` (default: this config's secret; pass the sender's to check that one).
    """
    checks = [
        Check("config", OK, "valid"),
        *check_database(settings),
        *check_model(settings),
        *check_platforms(settings),
        *(check_ports(settings) + check_live(settings) if live else []),
    ]
    if live and (settings.webhook.enabled or live_url):
        secret = live_secret
        if secret is None:
            try:
                secret = read_secret(settings.webhook.secret, settings.webhook.secret_file, "webhook.secret")
            except ConfigError:
                secret = None  # already reported by check_platforms
        if secret:
            checks += check_webhook_live(live_url or webhook_url(settings), secret, explicit=live_url is not None)
    return checks
