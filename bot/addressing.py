"""Who a message in a group room or channel is addressed to: a reply's target, mentions, or turn-taking.

Grooming often starts in the open: an adult replying to a child in `general`, mentioning them, or
trading messages with them while the rest of the room is quiet. This module says, for one
`MessageSent` that is not private, which accounts its author is talking to, so a detector can treat
those messages as an adult→child conversation for that pair (weighted below a private one).

API (pure apart from the state reads; nothing to write, nothing to start)::

    from groomguard.addressing import AddressingSettings, addressees

    found = await addressees(event, state)                 # inside Detector.inspect
    found = await addressees(event, state, AddressingSettings(turns_window_minutes=5))
    for a in found:
        a.account   # who is addressed (never the author)
        a.how       # "reply" | "mention" | "turns"
        a.weight    # 0..1, how sure we are it is addressed to them (settings: reply/mention/turns_weight)

It returns ``[]`` for private messages (their `recipients` already say who reads them), for a
broadcast (one message naming `broadcast_children` or more minors, or `broadcast_accounts` or more
accounts of any age: a coach posting practice times), and for chatter addressed to no one in
particular. It does not look at text.

In order: the author of the replied-to message (`reply`), then mentioned accounts (`mention`); only if
there are neither, the one other account the author has been alternating with in the last
`turns_window_minutes`, with at least `min_switches` changes of speaker and nobody else speaking
(`turns`).

State it reads, through the `DetectorState` the engine passes to every detector (`CommunityState`
implements it, over the store):

- ``state.account(community, account)`` — to count the children a message names;
- ``state.message_author(community, message_id)`` — who wrote a message, for replies the adapter
  could not resolve itself;
- ``state.turns_newest_first(community, conversation, since)`` — the latest group messages of a room.

That memory is written by the engine, not by callers: every non-private `MessageSent` is recorded
(`CommunityState.apply`) before any detector sees it, in the store table `message_turns`
(migration 004: message id, room, author, time — no text), committed with the batch, so it
survives a restart or kill -9. It is purged after `store.message_retention_days` and erased by
`forget` (the author's rows; `MessageDeleted` drops the message's row).

What the adapters put into `MessageSent` for it: `reply_to` (the replied-to message id),
`reply_to_author` (its author, when the adapter knows: Discord's resolved reference, Matrix's
remembered event senders), `mentions` (Discord user mentions; Matrix `m.mentions.user_ids`, else
user pills in the formatted body), `private` and `conversation` (the channel, thread or room id).
Webhook platforms send the same fields (docs/webhook.md).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Literal, Protocol

from groomguard.events import BaseEvent, MessageSent
from groomguard.records import Account, Turn
from pydantic import BaseModel, ConfigDict, Field

How = Literal["reply", "mention", "turns"]


class AddressingSettings(BaseModel):
    """How sure each way of addressing someone is, and what counts as a broadcast or a turn."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reply_weight: float = Field(0.8, ge=0, le=1, description="weight of a reply to someone's message")
    mention_weight: float = Field(0.7, ge=0, le=1, description="weight of a mention")
    turns_weight: float = Field(0.5, ge=0, le=1, description="weight of alternating turns with one other account")
    turns_window_minutes: float = Field(
        10, gt=0, le=24 * 60, description="how far back turn-taking is read; longer links replies hours apart"
    )
    min_switches: int = Field(
        2,
        ge=1,
        le=20,
        description="changes of speaker between the two, this message included, before turns count; "
        "2 = A, B, A; lower links any answer to the last speaker",
    )
    max_turns: int = Field(12, ge=2, le=32, description="recent messages of the room read for turn-taking")
    broadcast_children: int = Field(
        3, ge=2, le=100, description="a message naming this many minors at once addresses none of them"
    )
    broadcast_accounts: int = Field(
        6, ge=2, le=500, description="a message naming this many accounts of any age addresses none of them"
    )


DEFAULT_SETTINGS = AddressingSettings()


@dataclass(frozen=True, slots=True)
class Addressee:
    """One account a group message is addressed to, how we know, and how sure we are (0..1)."""

    account: str
    how: How
    weight: float


class AddressingState(Protocol):
    """The reads `addressees` makes; `DetectorState` (and so `CommunityState`) provides them."""

    async def account(self, community: str, account: str) -> Account: ...

    async def message_author(self, community: str, message_id: str) -> str | None: ...

    async def turns_newest_first(self, community: str, conversation: str, since: datetime) -> Iterator[Turn]: ...


async def addressees(
    event: BaseEvent, state: AddressingState, settings: AddressingSettings = DEFAULT_SETTINGS
) -> list[Addressee]:
    """Who the author of a group message is talking to (see the module docstring); [] when no one."""
    if not isinstance(event, MessageSent) or event.private:
        return []
    c, author, s = event.community, event.author, settings
    named: dict[str, Addressee] = {}
    target = event.reply_to_author
    if target is None and event.reply_to is not None:
        target = await state.message_author(c, event.reply_to)
    if target is not None and target != author:
        named[target] = Addressee(target, "reply", s.reply_weight)
    for account in event.mentions:
        if account != author and account not in named:
            named[account] = Addressee(account, "mention", s.mention_weight)
    if named:
        if await is_broadcast(c, list(named), state, s):
            return []
        return list(named.values())
    partner = await turn_partner(event, state, s)
    return [Addressee(partner, "turns", s.turns_weight)] if partner is not None else []


async def is_broadcast(
    community: str, accounts: Sequence[str], state: AddressingState, settings: AddressingSettings = DEFAULT_SETTINGS
) -> bool:
    """One message to many: `broadcast_accounts` accounts, or `broadcast_children` of them minors."""
    if len(accounts) >= settings.broadcast_accounts:
        return True
    minors = 0
    for account in accounts:
        minors += (await state.account(community, account)).is_minor
    return minors >= settings.broadcast_children


@functools.lru_cache(maxsize=16)
def _minutes(minutes: float) -> timedelta:
    return timedelta(minutes=minutes)


async def turn_partner(
    event: MessageSent, state: AddressingState, settings: AddressingSettings = DEFAULT_SETTINGS
) -> str | None:
    """The one other account the author alternates with in the window, or None.

    The room's recent messages (this one excluded) must come from the author and exactly one other
    account, and the speaker must change at least `min_switches` times, counting this message.
    """
    since = event.at - _minutes(settings.turns_window_minutes)
    # Newest first, so a busy room (a third speaker among the last `max_turns`) is settled early.
    sequence: list[str] = []
    others: set[str] = set()
    for turn in await state.turns_newest_first(event.community, event.conversation, since):
        if turn.message_id == event.message_id or turn.at > event.at:
            continue
        if turn.author != event.author:
            others.add(turn.author)
            if len(others) > 1:
                return None
        sequence.append(turn.author)
        if len(sequence) >= settings.max_turns:
            break
    if len(others) != 1:
        return None
    sequence.reverse()
    sequence.append(event.author)
    switches = sum(1 for a, b in pairwise(sequence) if a != b)
    return others.pop() if switches >= settings.min_switches else None
