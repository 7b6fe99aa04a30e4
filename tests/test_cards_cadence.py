"""Alert cadence and card content: edits at most once per interval unless the band or action moves,
each edit says what changed, and every child a card counts is listed and openable."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from groomguard.actions import ChildNotice, ModAlert
from groomguard.adapters.discord.cards import render_embed
from groomguard.adapters.matrix.cards import alert_card
from groomguard.cases import CaseBook, recommended_action, risk_band
from groomguard.config import CaseSettings
from groomguard.events import ContactKind
from groomguard.findings import Finding
from groomguard.testing import T0, EventFactory, MemorySink, running_engine


def finding(detector: str, score: float, minutes: float, reason: str = "", child: str | None = None) -> Finding:
    return Finding(
        detector=detector,
        platform="test",
        community="test-community",
        suspect="adult",
        score=score,
        reason=reason or f"{detector} at {score}",
        at=T0 + timedelta(minutes=minutes),
        event_key=f"test:{detector}:{minutes}",
        child=child,
    )


def test_edits_wait_for_the_interval_unless_the_band_moves() -> None:
    book = CaseBook(CaseSettings())
    _, first = book.add_finding(finding("fan_out", 0.6, 0, "contacted 6"))
    assert first is not None and first.version == 1 and first.band == "moderate" and not first.changes
    assert first.recommended == "review the evidence"
    # Two minutes later the count grows: same band, so the card waits.
    _, held = book.add_finding(finding("fan_out", 0.64, 2, "contacted 7"))
    assert held is None and book.held_back == 1
    # Eleven minutes after the card: the held-back change goes out, cumulative, and says what changed.
    _, edit = book.add_finding(finding("fan_out", 0.66, 11, "contacted 8"))
    assert edit is not None and edit.version == 2
    assert edit.changes == ("risk 0.60 → 0.66", "Contacting many children: contacted 8")
    # One minute later a second signal lifts the case to "high": that edits at once.
    _, urgent = book.add_finding(finding("rejections", 0.4, 12, "5 of 6 refused"))
    assert urgent is not None and urgent.version == 3 and urgent.band == "high"
    assert urgent.changes[0] == "risk 0.66 → 0.80 (moderate → high)"
    assert "new signal · Many refused requests from children: 5 of 6 refused" in urgent.changes
    assert urgent.changes[-1] == "recommended: review now and check on the children involved"
    # Nothing new: no edit, however long it waits.
    _, none = book.add_finding(finding("rejections", 0.4, 60, "5 of 6 refused"))
    assert none is None


def test_a_moderator_decision_edits_at_once_and_says_who_acted(ev: EventFactory) -> None:
    book = CaseBook(CaseSettings())
    case, _ = book.add_finding(finding("fan_out", 0.7, 0))
    [card] = book.decide(ev.decision("mod", case.id, "confirm", at=T0 + timedelta(minutes=1)))
    assert isinstance(card, ModAlert) and card.status == "confirmed"
    assert card.changes == ("confirm by a moderator (status open → confirmed)",)


def test_bands_and_actions_cover_the_scale() -> None:
    assert [risk_band(r) for r in (0.1, 0.5, 0.7, 0.85, 1.0)] == ["low", "moderate", "high", "very high", "very high"]
    assert recommended_action(0.9, "dismissed") == "none (dismissed)"
    assert recommended_action(0.9, "escalated").endswith("(escalated)")
    assert recommended_action(0.9, "open", ["fan_out", "grooming_language"]).endswith("; read the conversation")


def test_the_first_grooming_language_finding_on_a_carded_case_edits_at_once() -> None:
    book = CaseBook(CaseSettings())
    book.add_finding(finding("fan_out", 0.9, 0))
    # Already "very high": the band cannot move, but the action does (read the conversation).
    _, edit = book.add_finding(finding("grooming_language", 0.5, 1, "asked for secrecy"))
    assert edit is not None and edit.version == 2
    assert (
        edit.changes[-1]
        == "recommended: act now: restrict the account and check on the children involved; read the conversation"
    )


async def test_every_child_counted_is_listed_and_openable(db: Path, ev: EventFactory) -> None:
    kids = [f"{700000000000000000 + i}" for i in range(9)]
    events = [ev.joined("adult"), ev.adult("adult")]
    for i, kid in enumerate(kids):
        events += [ev.joined(kid), ev.minor(kid), ev.region(kid, f"town{i}")]
    events += [ev.contact("adult", kid, ContactKind.FRIEND, at=ev.tick(minutes=30)) for kid in kids]
    sink = MemorySink()
    async with running_engine(db, sink) as (engine, _):
        await engine.ingest(events)
        await engine.drain()
    cards = sink.of(ModAlert)
    last = cards[-1]
    fan_out = next(r for r in last.reasons if r.detector == "fan_out")
    assert fan_out.text.startswith("contacted 9 under-18 accounts")
    # Before issue 13 the card listed only the children whose contact triggered a finding (4 of 7 there).
    assert set(last.children) == set(kids) and len(last.children) == 9
    # Discord: every child a mention (a click opens the profile).
    fields = render_embed(last).to_dict()["fields"]
    listed = next(f for f in fields if f["name"].startswith("Children involved"))
    assert listed["name"] == "Children involved (9)" and all(f"<@{k}>" in listed["value"] for k in kids)
    # Matrix: every child a pill.
    html = alert_card(last)["formatted_body"]
    assert all(f'href="https://matrix.to/#/{k}"' in html for k in kids)
    # Contacts 30 minutes apart: each later card is an edit that says what changed.
    assert all(c.changes for c in cards[1:]) and all(c.version == n + 1 for n, c in enumerate(cards))
    assert not sink.of(ChildNotice) or all(n.child in kids for n in sink.of(ChildNotice))


def test_a_discord_card_with_two_hundred_children_stays_within_discords_limits() -> None:
    book = CaseBook(CaseSettings())
    kids = tuple(f"{800000000000000000 + i}" for i in range(200))
    _, alert = book.add_finding(finding("fan_out", 0.9, 0).model_copy(update={"children": kids}))
    assert alert is not None and len(alert.children) == 200
    embed = render_embed(alert)
    assert len(embed) <= 6000 and len(embed.fields) <= 25
    listed = " ".join(f.value or "" for f in embed.fields if "Children" in (f.name or "") or f.name == "\u200b")
    assert sum(f"<@{k}>" in listed for k in kids) >= 150
