"""The GroomGuard Synapse module: unit tests with a fake module API, then inside a real Synapse."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from groomguard.adapters.matrix.synapse_module import (
    GroomGuardModule,
    MembershipChange,
    ModuleConfig,
    membership_change,
    request_id,
    sign,
    to_event,
)
from nio import AsyncClient, JoinResponse, RoomCreateResponse, RoomInviteResponse, RoomLeaveResponse

from tests.synapse.homeserver import Homeserver, missing_reason, start_homeserver

PAYLOADS = Path(__file__).parent / "payloads"
SECRET = "test-secret"
COMMUNITY = "test-hs"


# --- unit tests: no Synapse needed ------------------------------------------------------


class FakeApi:
    """Records what the module registers; runs 'threaded' work inline."""

    def __init__(self) -> None:
        self.on_new_event: Any = None
        self.loop: Any = None
        self.posted: list[list[dict[str, Any]]] = []
        self.fail = False
        self.db: dict[str, tuple[str, str]] = {}

    def register_third_party_rules_callbacks(self, *, on_new_event: Any = None) -> None:
        self.on_new_event = on_new_event

    def looping_background_call(self, f: Any, msec: float, *args: object, **kwargs: object) -> None:
        self.loop = f

    async def defer_to_thread(self, f: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(f, "__name__", "") != "_post":
            return f(*args, **kwargs)  # spool file work runs for real, inline
        if isinstance(self.fail, BaseException):
            raise self.fail
        if self.fail:
            raise ConnectionRefusedError("webhook down")
        self.posted.append(args[0])

    async def run_db_interaction(self, desc: str, func: Any, *args: Any) -> Any:
        return self.db.get(args[0])


def make_module(spool: Path | None = None, **overrides: Any) -> tuple[GroomGuardModule, FakeApi]:
    api = FakeApi()
    raw = {"webhook_url": "http://127.0.0.1:9/x", "secret": SECRET, "community": COMMUNITY}
    if spool is not None:
        raw["spool_path"] = str(spool)
    config = GroomGuardModule.parse_config({**raw, **overrides})
    return GroomGuardModule(config, api), api


def event_from(raw: dict[str, Any], room_id: str) -> SimpleNamespace:
    """A stand-in for Synapse's EventBase built from a recorded client event."""
    return SimpleNamespace(
        room_id=room_id,
        **{
            k: raw.get(k)
            for k in ("type", "state_key", "content", "unsigned", "sender", "event_id", "origin_server_ts")
        },
    )


def recorded_timeline() -> tuple[str, list[dict[str, Any]]]:
    data = json.loads((PAYLOADS / "sync_invite_reject_accept_message_reaction_receipt.json").read_text())
    room_id, room = next(iter(data["rooms"]["join"].items()))
    return room_id, room["timeline"]["events"]


def test_parse_config_rejects_bad_values() -> None:
    good = {"webhook_url": "http://x/", "secret": "s", "community": "c"}
    assert ModuleConfig.from_dict(good).queue_size == 10_000
    for bad in (
        {**good, "secret": ""},
        {**good, "webhook_url": "ftp://x"},
        {**good, "queue_size": 0},
        {**good, "queue_size": True},
        {**good, "timeout_s": "3"},
        {**good, "surprise": 1},
        {"secret": "s", "community": "c"},
    ):
        with pytest.raises(ValueError):
            ModuleConfig.from_dict(bad)


def test_recorded_membership_events_become_invites_and_answers() -> None:
    room_id, timeline = recorded_timeline()
    changes = [membership_change(event_from(e, room_id)) for e in timeline]
    kept = [(c.membership, c.prev_membership) for c in changes if c is not None]
    # The bot's own join and the room creator's membership are not invites or answers.
    assert ("invite", None) in kept and ("leave", "invite") in kept and ("join", "invite") in kept
    answers = [
        to_event(c, COMMUNITY, inviter=c.prev_sender) for c in changes if c is not None and c.membership != "invite"
    ]
    assert [a["answer"] for a in answers if a] == ["rejected", "accepted"]


async def test_callback_only_enqueues_and_drops_when_full(tmp_path: Path) -> None:
    module, api = make_module(tmp_path / "spool.jsonl", queue_size=2)
    invite = SimpleNamespace(
        type="m.room.member",
        state_key="@b:x",
        content={"membership": "invite"},
        unsigned={},
        sender="@a:x",
        event_id="$1",
        room_id="!r:x",
        origin_server_ts=1_700_000_000_000,
    )
    for _ in range(5):
        await api.on_new_event(invite, {})
    assert (module.pending, module.dropped, api.posted) == (2, 3, [])
    await api.on_new_event(SimpleNamespace(type="m.room.member", content=None), {})  # malformed
    await api.on_new_event(SimpleNamespace(type="m.room.message"), {})
    assert module.pending == 2


async def test_failed_post_is_retried_after_backoff_and_answers_use_the_database(tmp_path: Path) -> None:
    module, api = make_module(tmp_path / "spool.jsonl", max_backoff_s=0.1)
    module.enqueue(MembershipChange("$i", "!r:x", "@a:x", "@b:x", "invite", 1_000))
    # An answer to an invite from before start-up: the inviter comes from the database.
    api.db["$old"] = ("@old:x", "invite")
    module.enqueue(MembershipChange("$l", "!q:x", "@b:x", "@b:x", "leave", 2_000, replaces_state="$old"))
    api.fail = True
    await module.flush()
    assert module.pending == 2 and api.posted == []
    api.fail = False
    await module.flush()  # still backing off
    assert api.posted == []
    await asyncio.sleep(0.6)
    await module.flush()
    [batch] = api.posted
    assert [(e["type"], e["source"], e["target"]) for e in batch] == [
        ("contact_requested", "@a:x", "@b:x"),
        ("contact_answered", "@old:x", "@b:x"),
    ]
    assert batch[1]["answer"] == "rejected" and batch[1]["request_id"] == request_id("!q:x", "@b:x")
    assert module.pending == 0 and module.sent == 2


async def test_401_5xx_and_timeouts_spool_to_disk_and_survive_a_restart(tmp_path: Path) -> None:
    spool = tmp_path / "spool.jsonl"
    module, api = make_module(spool, max_backoff_s=0.1, batch_size=2)
    for i in range(3):
        module.enqueue(MembershipChange(f"$i{i}", "!r:x", "@a:x", f"@k{i}:x", "invite", 1_000 + i))
    api.fail = urllib.error.HTTPError("http://x/events", 401, "Unauthorized", {}, None)  # type: ignore[arg-type]
    await module.flush()
    assert module.pending == 3 and module.spooled == 2 and api.posted == []
    await module.flush()  # backing off: the rest of the queue goes to disk too, nothing is posted
    assert module.pending == 3 and module.spooled == 3 and api.posted == []
    assert len(spool.read_text().splitlines()) == 3  # on disk, not only in memory
    # Synapse restarts while GroomGuard still fails (5xx, then a timeout): nothing is lost.
    module, api = make_module(spool, max_backoff_s=0.1, batch_size=2)
    assert module.spooled == 3
    module.enqueue(MembershipChange("$i3", "!r:x", "@a:x", "@k3:x", "invite", 2_000))
    for failure in (
        urllib.error.HTTPError("http://x/events", 503, "Unavailable", {}, None),  # type: ignore[arg-type]
        TimeoutError("timed out"),
    ):
        api.fail = failure
        await asyncio.sleep(0.15)
        await module.flush()
    assert module.spooled == 4 and api.posted == []
    api.fail = False
    for _ in range(4):
        await asyncio.sleep(0.15)
        await module.flush()
    # Oldest first, each exactly once, in batches of two.
    assert [[e["target"] for e in b] for b in api.posted] == [["@k0:x", "@k1:x"], ["@k2:x", "@k3:x"]]
    assert module.spooled == 0 and module.sent == 4 and spool.read_text() == ""


async def test_an_invalid_batch_is_kept_aside_not_retried(tmp_path: Path) -> None:
    spool = tmp_path / "spool.jsonl"
    module, api = make_module(spool)
    module.enqueue(MembershipChange("$i", "!r:x", "@a:x", "@b:x", "invite", 1_000))
    api.fail = urllib.error.HTTPError("http://x/events", 422, "Unprocessable", {}, None)  # type: ignore[arg-type]
    await module.flush()
    assert module.refused == 1 and module.pending == 0
    [kept] = (tmp_path / "spool.jsonl.rejected").read_text().splitlines()
    assert json.loads(kept)["target"] == "@b:x"


def test_signature_matches_the_contract() -> None:
    body = b'[{"type":"x"}]'
    expected = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("k", "1700000000", body) == f"sha256={expected}"


# --- inside a real Synapse ------------------------------------------------------------


@dataclass
class Webhook:
    """A recording HTTP server on 127.0.0.1 that can also hang (GroomGuard wedged)."""

    server: ThreadingHTTPServer
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    hang: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    #: The status to answer with; anything but 202 is a failure the module must survive.
    status: int = 202

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/events"

    def events(self) -> list[dict[str, Any]]:
        return [event for _, body in self.requests for event in json.loads(body)]


def start_webhook() -> Webhook:
    holder: dict[str, Webhook] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            hook = holder["hook"]
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if hook.hang.is_set():
                hook.release.wait(30)
                return
            if hook.status != 202:
                self.send_response(hook.status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            hook.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    holder["hook"] = hook = Webhook(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return hook


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    hook = start_webhook()
    yield hook
    hook.release.set()
    hook.server.shutdown()
    hook.server.server_close()


@pytest.fixture(scope="module")
def spool_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("module-spool") / "spool.jsonl"


@pytest.fixture(scope="module")
def synapse_with_module(webhook: Webhook, spool_file: Path) -> Iterator[Homeserver]:
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    module = {
        "module": "groomguard.adapters.matrix.synapse_module.GroomGuardModule",
        "config": {
            "webhook_url": webhook.url,
            "secret": SECRET,
            "community": COMMUNITY,
            "queue_size": 1000,
            "timeout_s": 1.0,
            "flush_interval_ms": 50,
            "max_backoff_s": 1.0,
            "spool_path": str(spool_file),
        },
    }
    server = start_homeserver(modules=[module])
    try:
        yield server
    finally:
        server.stop()


def client(server: Homeserver, username: str) -> AsyncClient:
    user_id, token = server.register(username)
    nio_client = AsyncClient(server.url, user_id)
    nio_client.access_token = token
    nio_client.user_id = user_id
    return nio_client


async def wait_for(predicate: Any, limit_s: float = 10.0) -> None:
    """Poll `predicate` until true; a plain loop so a failure says what it waited for."""
    deadline = time.monotonic() + limit_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


def check_signature(headers: dict[str, str], body: bytes) -> None:
    timestamp = headers["x-groomguard-timestamp"]
    assert abs(int(timestamp) - time.time()) < 60
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    assert hmac.compare_digest(headers["x-groomguard-signature"], "sha256=" + expected.hexdigest())
    assert headers["content-type"] == "application/json"


@pytest.mark.synapse
async def test_module_reports_invites_and_answers_between_users_no_bot_sees(
    synapse_with_module: Homeserver, webhook: Webhook
) -> None:
    adult, teen, kid = (client(synapse_with_module, n) for n in ("mod_adult", "mod_teen", "mod_kid"))
    try:
        room = await adult.room_create(name="hangout")
        assert isinstance(room, RoomCreateResponse)
        assert isinstance(await adult.room_invite(room.room_id, teen.user_id), RoomInviteResponse)
        assert isinstance(await teen.room_leave(room.room_id), RoomLeaveResponse)  # rejected
        dm = await adult.room_create(is_direct=True, invite=[kid.user_id])
        assert isinstance(dm, RoomCreateResponse)
        assert isinstance(await kid.join(dm.room_id), JoinResponse)  # accepted

        await wait_for(lambda: len(webhook.events()) >= 4)
        await asyncio.sleep(0.3)  # anything extra would show up now
    finally:
        for c in (adult, teen, kid):
            await c.close()

    for headers, body in webhook.requests:
        check_signature(headers, body)
    events = webhook.events()
    summary = [(e["type"], e["source"], e["target"], e.get("kind") or e.get("answer"), e["request_id"]) for e in events]
    assert summary == [
        ("contact_requested", adult.user_id, teen.user_id, "invite", f"{room.room_id}|{teen.user_id}"),
        ("contact_answered", adult.user_id, teen.user_id, "rejected", f"{room.room_id}|{teen.user_id}"),
        ("contact_requested", adult.user_id, kid.user_id, "dm", f"{dm.room_id}|{kid.user_id}"),
        ("contact_answered", adult.user_id, kid.user_id, "accepted", f"{dm.room_id}|{kid.user_id}"),
    ]
    for event in events:
        assert event["platform"] == "matrix" and event["community"] == COMMUNITY
        assert event["event_id"].startswith("$") and event["at"].endswith("Z")
    assert len({e["event_id"] for e in events}) == 4

    try:  # the same contract, checked by the core's own event models when they exist
        from groomguard.events import parse_event
    except ImportError:
        return
    for event in events:
        parse_event(event)


@pytest.mark.synapse
async def test_invites_stay_fast_while_webhook_hangs_and_are_delivered_later(
    synapse_with_module: Homeserver, webhook: Webhook
) -> None:
    adult = client(synapse_with_module, "hang_adult")
    minors = [client(synapse_with_module, f"hang_minor{i}") for i in range(5)]
    webhook.requests.clear()
    webhook.hang.set()
    try:
        room = await adult.room_create(name="lure")
        assert isinstance(room, RoomCreateResponse)
        slowest = 0.0
        for i, minor in enumerate(minors):
            if i == 2:
                await asyncio.sleep(1.5)  # let the module's 1 s webhook timeout fire
            started = time.monotonic()
            assert isinstance(await adult.room_invite(room.room_id, minor.user_id), RoomInviteResponse)
            assert isinstance(await minor.room_leave(room.room_id), RoomLeaveResponse)
            slowest = max(slowest, time.monotonic() - started)
        # GroomGuard hangs for up to 30 s: an invite that waited on it at all would take
        # at least the module's 1 s timeout.
        assert slowest < 0.5, f"an invite round trip took {slowest:.2f}s"
        assert webhook.requests == []
        assert "GroomGuard webhook unavailable (timed out)" in synapse_with_module.log_tail(20_000)

        webhook.hang.clear()
        webhook.release.set()
        await wait_for(lambda: len(webhook.events()) >= 10, limit_s=15)
    finally:
        for c in (adult, *minors):
            await c.close()
    answers = [e for e in webhook.events() if e["type"] == "contact_answered"]
    assert sorted(e["target"] for e in answers) == sorted(m.user_id for m in minors)
    assert {e["answer"] for e in answers} == {"rejected"}
    for headers, body in webhook.requests:
        check_signature(headers, body)


@pytest.mark.synapse
async def test_answer_after_a_homeserver_restart_is_still_reported(
    synapse_with_module: Homeserver, webhook: Webhook
) -> None:
    adult = client(synapse_with_module, "restart_adult")
    teen = client(synapse_with_module, "restart_teen")
    try:
        room = await adult.room_create(name="before-restart")
        assert isinstance(room, RoomCreateResponse)
        assert isinstance(await adult.room_invite(room.room_id, teen.user_id), RoomInviteResponse)
        await wait_for(lambda: any(e["target"] == teen.user_id for e in webhook.events()))
        # The module's memory of the invite is lost; its answer must come from the database.
        synapse_with_module.restart()
        assert isinstance(await teen.room_leave(room.room_id), RoomLeaveResponse)
        await wait_for(
            lambda: any(e["type"] == "contact_answered" and e["target"] == teen.user_id for e in webhook.events())
        )
    finally:
        await adult.close()
        await teen.close()
    [answer] = [e for e in webhook.events() if e["type"] == "contact_answered" and e["target"] == teen.user_id]
    assert (answer["source"], answer["answer"]) == (adult.user_id, "rejected")


@pytest.mark.synapse
async def test_no_invite_is_lost_on_401_or_5xx_even_across_a_synapse_restart(
    synapse_with_module: Homeserver, webhook: Webhook, spool_file: Path
) -> None:
    adult = client(synapse_with_module, "spool_adult")
    kids = [client(synapse_with_module, f"spool_kid{i}") for i in range(4)]
    webhook.requests.clear()
    webhook.status = 401  # the module's secret does not match GroomGuard's
    try:
        room = await adult.room_create(name="spooled")
        assert isinstance(room, RoomCreateResponse)
        for kid in kids[:2]:
            assert isinstance(await adult.room_invite(room.room_id, kid.user_id), RoomInviteResponse)
        await wait_for(lambda: spool_file.exists() and len(spool_file.read_text().splitlines()) >= 2)
        # The module logs just after it spools: wait for the line rather than racing it.
        await wait_for(
            lambda: (
                "GroomGuard webhook unavailable (HTTP Error 401" in (log := synapse_with_module.log_tail(50_000))
                and "refused the signature" in log
            )
        )
        # Synapse restarts while GroomGuard now fails with 503: the spool is read back, nothing is lost.
        webhook.status = 503
        synapse_with_module.restart()
        for kid in kids[2:]:
            assert isinstance(await adult.room_invite(room.room_id, kid.user_id), RoomInviteResponse)
        await wait_for(lambda: len(spool_file.read_text().splitlines()) >= 4)
        await wait_for(lambda: "undelivered invite events" in synapse_with_module.log_tail(50_000))
        assert webhook.requests == []
        webhook.status = 202
        await wait_for(lambda: {e["target"] for e in webhook.events()} >= {k.user_id for k in kids}, limit_s=15)
        await wait_for(lambda: spool_file.read_text() == "", limit_s=5)
    finally:
        webhook.status = 202
        for c in (adult, *kids):
            await c.close()
    invites = [e for e in webhook.events() if e["type"] == "contact_requested"]
    assert sorted(e["target"] for e in invites) == sorted(k.user_id for k in kids)  # each once, none lost
    for headers, body in webhook.requests:
        check_signature(headers, body)
