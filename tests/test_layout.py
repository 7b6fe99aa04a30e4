"""Real community layouts on replay: moderators, bots, room creators and hubs never make a contact warm."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from groomguard.actions import ModAlert
from groomguard.adapters.replay import replay
from groomguard.events import Answer, BaseEvent, ContactKind, dump_event
from groomguard.testing import EventFactory, MemorySink, running_engine

KIDS = [f"@kid{i}:hs" for i in range(8)]
ADULT = "@adult:hs"
MOD = "@mod:hs"


def hub_layout(f: EventFactory, declare: str | None = "moderator", parent: bool = False) -> list[BaseEvent]:
    """The layout from issue 13: a moderator invites the adult into `adults` and the children into `teens`.

    Then the adult DM-invites all eight children, who never answer. `declare` is the standing the
    moderator is declared with (None: not declared at all); `parent` adds a real mutual contact, a
    parent the adult knows who follows every child.
    """
    events: list[BaseEvent] = [f.joined(MOD), f.adult(MOD), f.joined(ADULT), f.adult(ADULT)]
    if declare:
        events.append(f.standing(MOD, declare))
    for i, kid in enumerate(KIDS):
        events += [f.joined(kid), f.minor(kid), f.region(kid, f"town{i}")]
    for member in [ADULT, *KIDS]:
        rid = f"!{'adults' if member == ADULT else 'teens'}:hs|{member}"
        events.append(f.contact(MOD, member, ContactKind.INVITE, request_id=rid))
        events.append(f.answer(MOD, member, Answer.ACCEPTED, request_id=rid))
    if parent:
        events += [f.joined("@parent:hs"), f.adult("@parent:hs")]
        events.append(f.contact(ADULT, "@parent:hs", ContactKind.FRIEND, request_id="p"))
        events.append(f.answer(ADULT, "@parent:hs", Answer.ACCEPTED, request_id="p"))
        for kid in KIDS:
            # The children follow the parent (a coach, a family friend): a tie both sides chose.
            events.append(f.contact(kid, "@parent:hs", ContactKind.FOLLOW, request_id=f"pf{kid}"))
            events.append(f.answer(kid, "@parent:hs", Answer.ACCEPTED, request_id=f"pf{kid}"))
    for kid in KIDS:
        events.append(f.contact(ADULT, kid, ContactKind.DM, request_id=f"!dm-{kid}|{kid}", at=f.tick(minutes=20)))
    return events


def jsonl(events: list[BaseEvent]) -> io.BytesIO:
    return io.BytesIO(b"".join(dump_event(e).encode() + b"\n" for e in events))


def fan_out_alerts(sink: MemorySink) -> set[str]:
    """Suspects of every card (first post or edit) that carries a fan_out reason."""
    return {a.suspect for a in sink.of(ModAlert) if any(r.detector == "fan_out" for r in a.reasons)}


@pytest.mark.parametrize("standing", ["moderator", "bot", "creator"])
async def test_a_declared_moderator_bot_or_creator_never_warms_a_contact(db: Path, standing: str) -> None:
    async with running_engine(db) as (engine, sink):
        report = await replay(engine, jsonl(hub_layout(EventFactory(), declare=standing)))
    assert report.bad == 0
    assert fan_out_alerts(sink) == {ADULT}
    fan_out = next(r for r in sink.of(ModAlert)[0].reasons if r.detector == "fan_out")
    assert "shared only a moderator, bot, room creator or hub account (not counted)" in fan_out.text


async def test_an_undeclared_inviter_becomes_a_hub_by_degree(db: Path) -> None:
    # Nine accepted contacts in a community of ten: 90 % of everyone, above the (lowered) degree floor.
    # As a hub its own room invitations are the layout too, so it is not flagged for them.
    async with running_engine(db, detectors__fan_out__hub_min_degree=5) as (engine, sink):
        await replay(engine, jsonl(hub_layout(EventFactory(), declare=None)))
    assert fan_out_alerts(sink) == {ADULT}


async def test_below_the_hub_degree_an_undeclared_inviter_still_vouches(db: Path) -> None:
    # The control: the old blind spot, which is why adapters declare moderators and creators. The
    # inviter's own eight invitations then read as a cold fan-out of its own.
    async with running_engine(db) as (engine, sink):
        await replay(engine, jsonl(hub_layout(EventFactory(), declare=None)))
    assert fan_out_alerts(sink) == {MOD}


async def test_a_personal_mutual_still_makes_contacts_warm(db: Path) -> None:
    async with running_engine(db) as (engine, sink):
        await replay(engine, jsonl(hub_layout(EventFactory(), declare="moderator", parent=True)))
    assert fan_out_alerts(sink) == set()


async def test_a_withdrawn_standing_vouches_again_and_standings_survive_a_restart(db: Path) -> None:
    f = EventFactory()
    events = hub_layout(f, declare="moderator")
    dms = [e for e in events if getattr(e, "kind", None) is ContactKind.DM]
    setup = [e for e in events if e not in dms]
    async with running_engine(db) as (engine, _sink):
        await replay(engine, jsonl(setup))
    # A restart: the standing must come back from the store, not from memory.
    async with running_engine(db) as (engine, sink):
        assert (await engine.state.account("test-community", MOD)).standings == frozenset({"moderator"})
        await replay(engine, jsonl(dms[:7]))
        await engine.ingest([f.standing(MOD, "moderator", held=False)])
        await replay(engine, jsonl(dms[7:]))
        assert (await engine.state.account("test-community", MOD)).standings == frozenset()
    fan_out = [a for a in sink.of(ModAlert) if any(r.detector == "fan_out" for r in a.reasons)]
    assert fan_out and all(a.suspect == ADULT for a in fan_out)


async def test_forget_erases_standings_and_message_turns(db: Path) -> None:
    f = EventFactory()
    async with running_engine(db) as (engine, _sink):
        await engine.ingest([f.joined(MOD), f.standing(MOD, "moderator"), f.message(MOD, "welcome all")])
        removed = await engine.forget(MOD)
    assert removed["standings"] == 1 and removed["message_turns"] == 1


async def test_a_platform_verified_age_is_trusted_like_a_role(db: Path) -> None:
    """Issue 13: a platform that had to send `self` for ages it verified made a social child a suspect.

    A child who friends many other children is no suspect when the platform vouches for the age
    (`source = "platform"`), but stays watched when the age is only self-declared (adults pose as
    children). A moderator still outranks the platform.
    """
    results = {}
    for source in ("self", "platform"):
        f = EventFactory(community=f"c-{source}")
        events: list[BaseEvent] = [f.joined("social-kid"), f.age("social-kid", "minor", source)]
        for i, kid in enumerate(KIDS):
            events += [f.joined(kid), f.minor(kid), f.region(kid, f"town{i}")]
        events += [f.contact("social-kid", kid, ContactKind.FRIEND, at=f.tick(minutes=30)) for kid in KIDS]
        async with running_engine(db.with_name(f"{source}.db")) as (engine, sink):
            await engine.ingest(events)
            await engine.ingest([f.age("social-kid", "adult", "self")])  # weaker than platform: ignored
            await engine.drain()
            account = await engine.state.account(f.community, "social-kid")
            results[source] = (fan_out_alerts(sink), account.band.value, account.band_source)
            await engine.ingest([f.age("social-kid", "adult", "moderator")])
            assert (await engine.state.account(f.community, "social-kid")).band.value == "adult"
    assert results["self"][0] == {"social-kid"}
    assert results["platform"] == (set(), "minor", "platform")
