"""Prove, against a real Synapse, what a Matrix bot in a room sees through sync.

Invite → leave (rejection) and invite → join membership with `prev_content`, messages,
`m.reaction` and `m.read` receipts. Set GG_RECORD_PAYLOADS=1 to rewrite the recorded raw
sync payloads in tests/matrix/payloads/ from this run.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, TypeVar

import pytest
from nio import (
    JoinResponse,
    ReactionEvent,
    ReceiptEvent,
    RoomCreateResponse,
    RoomInviteResponse,
    RoomLeaveResponse,
    RoomMemberEvent,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
    UpdateReceiptMarkerResponse,
)

from tests.matrix.conftest import ClientFactory
from tests.synapse.homeserver import Homeserver

pytestmark = pytest.mark.synapse

T = TypeVar("T")

PAYLOADS = Path(__file__).parent / "payloads"
SYNC_FILTER = {"room": {"timeline": {"limit": 100}}, "presence": {"not_types": ["*"]}}


def expect(response: Any, kind: type[T]) -> T:
    """nio returns errors as values; fail the test loudly at the call site instead."""
    assert isinstance(response, kind), f"expected {kind.__name__}, got {response!r}"
    return response


def raw_sync(server: Homeserver, token: str, since: str | None) -> dict[str, Any]:
    """A raw /sync as the homeserver sends it, for the recorded payloads."""
    query = {"timeout": "0", "filter": json.dumps(SYNC_FILTER)}
    if since:
        query["since"] = since
    request = urllib.request.Request(
        f"{server.url}/_matrix/client/v3/sync?{urllib.parse.urlencode(query)}",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.load(reply)


def record(name: str, payload: dict[str, Any]) -> None:
    """Write a payload when asked to (or when it is missing), so runs do not churn git."""
    path = PAYLOADS / name
    if os.environ.get("GG_RECORD_PAYLOADS") or not path.exists():
        PAYLOADS.mkdir(exist_ok=True)
        path.write_text(json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=True) + "\n")


async def test_bot_sees_rejection_message_reaction_and_receipt(
    synapse: Homeserver, matrix_client: ClientFactory
) -> None:
    alice = matrix_client(synapse, "smoke_alice")
    bob = matrix_client(synapse, "smoke_bob")
    bot = matrix_client(synapse, "smoke_bot")

    created = expect(await alice.room_create(name="smoke", invite=[bot.user_id]), RoomCreateResponse)
    room = created.room_id
    expect(await bot.join(room), JoinResponse)
    first = expect(await bot.sync(timeout=0, sync_filter=SYNC_FILTER), SyncResponse)
    since = first.next_batch

    started = time.monotonic()
    # bob rejects the first invite, then accepts a second one.
    expect(await alice.room_invite(room, bob.user_id), RoomInviteResponse)
    expect(await bob.room_leave(room), RoomLeaveResponse)
    expect(await alice.room_invite(room, bob.user_id), RoomInviteResponse)
    expect(await bob.join(room), JoinResponse)
    sent = expect(
        await bob.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "hi all"}),
        RoomSendResponse,
    )
    expect(await alice.update_receipt_marker(room, sent.event_id), UpdateReceiptMarkerResponse)
    reaction = {"m.relates_to": {"rel_type": "m.annotation", "event_id": sent.event_id, "key": "👍"}}
    expect(await alice.room_send(room, "m.reaction", reaction), RoomSendResponse)

    members: list[RoomMemberEvent] = []
    messages: list[RoomMessageText] = []
    reactions: list[ReactionEvent] = []
    receipts: list[tuple[str, str, str]] = []
    deadline = time.monotonic() + 15
    token = since
    while time.monotonic() < deadline and not (reactions and receipts):
        reply = expect(await bot.sync(timeout=1000, since=token, sync_filter=SYNC_FILTER), SyncResponse)
        token = reply.next_batch
        joined = reply.rooms.join.get(room)
        if joined is None:
            continue
        for event in joined.timeline.events:
            if isinstance(event, RoomMemberEvent) and event.state_key == bob.user_id:
                members.append(event)
            elif isinstance(event, RoomMessageText):
                messages.append(event)
            elif isinstance(event, ReactionEvent):
                reactions.append(event)
        for ephemeral in joined.ephemeral:
            if isinstance(ephemeral, ReceiptEvent):
                receipts += [(r.user_id, r.event_id, r.receipt_type) for r in ephemeral.receipts]
    elapsed = time.monotonic() - started

    transitions = [(m.prev_membership, m.membership, m.sender) for m in members]
    assert transitions == [
        (None, "invite", alice.user_id),
        ("invite", "leave", bob.user_id),  # rejection: invite → leave by the invitee
        ("leave", "invite", alice.user_id),
        ("invite", "join", bob.user_id),  # acceptance
    ], transitions
    assert [(m.sender, m.body) for m in messages] == [(bob.user_id, "hi all")]
    assert [(r.sender, r.reacts_to, r.key) for r in reactions] == [(alice.user_id, sent.event_id, "👍")]
    assert (alice.user_id, sent.event_id, "m.read") in receipts
    assert elapsed < 10

    # The same stream, raw, for adapter unit tests (synthetic users only).
    record("sync_invite_reject_accept_message_reaction_receipt.json", raw_sync(synapse, bot.access_token, since))
    record("sync_initial_bot.json", raw_sync(synapse, bot.access_token, None))


async def test_bot_sees_nothing_of_a_dm_between_others(synapse: Homeserver, matrix_client: ClientFactory) -> None:
    adult = matrix_client(synapse, "smoke_dm_adult")
    child = matrix_client(synapse, "smoke_dm_child")
    bot = matrix_client(synapse, "smoke_dm_bot")
    since = expect(await bot.sync(timeout=0), SyncResponse).next_batch

    dm = expect(await adult.room_create(is_direct=True, invite=[child.user_id]), RoomCreateResponse)
    invited = expect(await child.sync(timeout=0), SyncResponse)
    invite_state = invited.rooms.invite[dm.room_id].invite_state
    own = [e for e in invite_state if getattr(e, "state_key", None) == child.user_id]
    assert own and own[-1].content.get("is_direct") is True  # a DM invite is marked is_direct
    expect(await child.room_leave(dm.room_id), RoomLeaveResponse)
    await asyncio.sleep(0.2)

    seen = expect(await bot.sync(timeout=0, since=since), SyncResponse)
    assert dm.room_id not in seen.rooms.join
    assert dm.room_id not in seen.rooms.invite
    assert dm.room_id not in seen.rooms.leave
