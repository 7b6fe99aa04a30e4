"""Delivery while disconnected and on reconnect: the engine's outbox re-sends, the adapter dedupes on action_id."""

from __future__ import annotations

import asyncio
from typing import Any

from dpy_harness import KIDS, MOD_CHANNEL, Harness


def _dms(h: Harness) -> list[Any]:
    opened = {c.response["id"] for c in h.rest.find("POST", "/users/@me/channels")}
    return [c for c in h.rest.calls if c.method == "POST" and c.path.split("/")[2] in opened]


async def _held(make_harness: Any) -> Harness:
    """A child notice and a card produced while the gateway is down, so both wait in the outbox."""
    h: Harness = await make_harness()
    h.bot._ready.clear()  # the gateway dropped: discord.py reports not ready
    await h.push("thread_create.json", "thread_members_update.json", "message_create_thread.json")
    await h.settle()
    assert h.rest.calls == [], "nothing is sent while disconnected"
    held = await h.engine.store.pending_actions()
    assert {type(a).__name__ for a in held} >= {"ChildNotice", "ModAlert"}
    return h


async def test_actions_held_while_disconnected_are_sent_on_reconnect(make_harness: Any) -> None:
    h = await _held(make_harness)
    await h.connect()  # READY + GUILD_CREATE again: the cog nudges the engine's redelivery
    await h.settle()
    assert await h.engine.store.pending_actions() == []
    assert len(_dms(h)) == 1
    assert [c.json["recipient_id"] for c in h.rest.find("POST", "/users/@me/channels")] == [KIDS[0]]
    assert len(h.rest.find("POST", f"/channels/{MOD_CHANNEL}/messages")) == 1


async def test_overlapping_redeliveries_send_each_action_once(make_harness: Any) -> None:
    h = await _held(make_harness)
    h.bot._ready.set()
    h.rest.latency = 0.01  # slow REST, so the redeliveries really overlap
    # The engine's idle redelivery, `groomguard run`'s start-up one and the cog's connect nudge at once.
    await asyncio.gather(h.engine.redeliver(), h.engine.redeliver(), h.adapter.cog._redeliver())  # type: ignore[union-attr]
    await h.settle()
    assert len(_dms(h)) == 1
    assert len(h.rest.find("POST", f"/channels/{MOD_CHANNEL}/messages")) == 1
    assert await h.engine.store.pending_actions() == []
