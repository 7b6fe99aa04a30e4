"""A deterministic, seeded simulation of a community (benign adults, minors, planted groomers) for demos and tuning."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bot.events import (
    AgeBand,
    AgeDeclared,
    AgeSource,
    Answer,
    BaseEvent,
    ContactAnswered,
    ContactKind,
    ContactRequested,
    ContentViewed,
    MemberJoined,
    MessageSent,
    RegionDeclared,
)

START = datetime(2026, 1, 5, tzinfo=UTC)
REGIONS = ("north", "south", "east", "west", "coast", "city")

#: Synthetic, hand-written lines (not from any corpus) for demo conversations.
BENIGN_LINES = (
    "did anyone finish the maths homework",
    "great match on saturday everyone",
    "reminder: practice moved to 5pm",
    "lol that level was so hard",
    "who wants to team up later",
    "nice drawing, the colours are really good",
    "the club trip form is due friday",
)
GROOMING_LINES = (
    "hey you seem really mature for your age",
    "how old are you btw? what school do you go to",
    "are your parents home right now",
    "this is just between us ok, don't tell anyone",
    "delete these messages after you read them",
    "add me on snap, it's easier to talk there",
    "send me a pic of you, i won't show anyone",
    "i could get you a gift card if you want",
)


@dataclass
class Truth:
    """What was planted, so demos and benchmarks can score the detectors."""

    groomers: dict[str, str] = field(default_factory=dict)  # account -> pattern
    hard_negatives: dict[str, str] = field(default_factory=dict)  # account -> kind
    minors: set[str] = field(default_factory=set)
    adults: set[str] = field(default_factory=set)
    first_contact: dict[str, datetime] = field(default_factory=dict)


@dataclass
class CommunitySpec:
    """Size and mix of the simulated community."""

    community: str = "demo-community"
    platform: str = "demo"
    adults: int = 60
    minors: int = 40
    days: int = 7
    fan_out_groomers: int = 2
    language_groomers: int = 1
    teachers: int = 2
    popular_adults: int = 1
    chatter_per_day: int = 40
    seed: int = 7


class Simulator:
    """Builds the event stream; every run with the same spec yields the same events."""

    def __init__(self, spec: CommunitySpec) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.truth = Truth()
        self._n = 0

    def _id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}-{self._n:07d}"

    def _base(self, at: datetime) -> dict[str, object]:
        return {"event_id": self._id("ev"), "platform": self.spec.platform, "community": self.spec.community, "at": at}

    def events(self) -> list[BaseEvent]:
        """All events, sorted by time."""
        out = list(self._people()) + list(self._behaviour())
        out.sort(key=lambda e: (e.at, e.event_id))
        return out

    def _people(self) -> Iterator[BaseEvent]:
        s, rng = self.spec, self.rng
        for i in range(s.adults):
            self.truth.adults.add(f"adult{i:04d}")
        for i in range(s.minors):
            self.truth.minors.add(f"minor{i:04d}")
        roles = [
            ("groomer", s.fan_out_groomers),
            ("talker", s.language_groomers),
            ("teacher", s.teachers),
            ("popular", s.popular_adults),
        ]
        adults = sorted(self.truth.adults)
        cursor = 0
        self.roles: dict[str, list[str]] = {}
        for role, count in roles:
            self.roles[role] = adults[cursor : cursor + count]
            cursor += count
        for name in self.roles["groomer"]:
            self.truth.groomers[name] = "fan_out"
        for name in self.roles["talker"]:
            self.truth.groomers[name] = "grooming_language"
        for name in self.roles["teacher"]:
            self.truth.hard_negatives[name] = "teacher"
        for name in self.roles["popular"]:
            self.truth.hard_negatives[name] = "popular"
        self.region = {acc: rng.choice(REGIONS) for acc in sorted(self.truth.adults | self.truth.minors)}
        for acc in sorted(self.truth.adults | self.truth.minors):
            at = START + timedelta(minutes=rng.randint(0, 600))
            created = at - timedelta(days=rng.randint(30, 2000))
            if acc in self.truth.groomers:
                created = at - timedelta(days=rng.randint(1, 20))
            yield MemberJoined(**self._base(at), account=acc, account_created_at=created)  # type: ignore[arg-type]
            band = AgeBand.MINOR if acc in self.truth.minors else AgeBand.ADULT
            if acc in self.truth.groomers and rng.random() < 0.5:
                band = AgeBand.UNKNOWN  # groomers often leave age unset
            if band is not AgeBand.UNKNOWN:
                yield AgeDeclared(
                    **self._base(at + timedelta(seconds=1)), account=acc, band=band, source=AgeSource.ROLE
                )  # type: ignore[arg-type]
            if acc not in self.truth.groomers:
                yield RegionDeclared(**self._base(at + timedelta(seconds=2)), account=acc, region=self.region[acc])  # type: ignore[arg-type]

    def _behaviour(self) -> Iterator[BaseEvent]:
        s, rng = self.spec, self.rng
        minors = sorted(self.truth.minors)
        everyone = sorted(self.truth.adults | self.truth.minors)
        day0 = START + timedelta(hours=12)
        # Ordinary chatter in public channels, with some replies between friends.
        for day in range(s.days):
            for _ in range(s.chatter_per_day):
                at = day0 + timedelta(days=day, seconds=rng.randint(0, 86_000))
                author = rng.choice(everyone)
                yield MessageSent(
                    **self._base(at),
                    message_id=self._id("m"),
                    author=author,
                    conversation="general",
                    text=rng.choice(BENIGN_LINES),
                )  # type: ignore[arg-type]
                if rng.random() < 0.3:
                    other = rng.choice(everyone)
                    if other != author:
                        yield ContentViewed(
                            **self._base(at + timedelta(minutes=3)),
                            viewer=other,
                            author=author,
                            content_id=self._id("post"),
                        )  # type: ignore[arg-type]
        # Teachers contact many minors, but in their own region and with accepted contact.
        for teacher in self.roles["teacher"]:
            pupils = rng.sample(minors, min(10, len(minors)))
            for k, pupil in enumerate(pupils):
                at = day0 + timedelta(days=1, minutes=10 * k)
                yield RegionDeclared(
                    **self._base(at - timedelta(minutes=1)), account=pupil, region=self.region[teacher]
                )  # type: ignore[arg-type]
                req = self._id("req")
                yield ContactRequested(
                    **self._base(at), source=teacher, target=pupil, kind=ContactKind.FOLLOW, request_id=req
                )  # type: ignore[arg-type]
                yield ContactAnswered(
                    **self._base(at + timedelta(minutes=5)),
                    source=teacher,
                    target=pupil,
                    answer=Answer.ACCEPTED,
                    request_id=req,
                )  # type: ignore[arg-type]
        # Popular adults are followed by many minors: inbound contact, never a signal.
        for popular in self.roles["popular"]:
            for k, fan in enumerate(rng.sample(minors, min(15, len(minors)))):
                at = day0 + timedelta(days=2, minutes=7 * k)
                yield ContactRequested(**self._base(at), source=fan, target=popular, kind=ContactKind.FOLLOW)  # type: ignore[arg-type]
        # Fan-out groomers send friend requests to many minors they share nothing with; many are rejected.
        for g, groomer in enumerate(self.roles["groomer"]):
            targets = rng.sample(minors, min(12, len(minors)))
            for k, target in enumerate(targets):
                at = day0 + timedelta(days=2 + g, hours=3 * k)
                self.truth.first_contact.setdefault(groomer, at)
                req = self._id("req")
                yield ContactRequested(
                    **self._base(at), source=groomer, target=target, kind=ContactKind.FRIEND, request_id=req
                )  # type: ignore[arg-type]
                answer = Answer.REJECTED if rng.random() < 0.6 else Answer.ACCEPTED
                yield ContactAnswered(
                    **self._base(at + timedelta(hours=1)), source=groomer, target=target, answer=answer, request_id=req
                )  # type: ignore[arg-type]
        # Language groomers DM one minor through the stages of grooming.
        for talker in self.roles["talker"]:
            child = rng.choice(minors)
            at = day0 + timedelta(days=3)
            self.truth.first_contact.setdefault(talker, at)
            yield ContactRequested(**self._base(at), source=talker, target=child, kind=ContactKind.DM)  # type: ignore[arg-type]
            conv = f"dm-{talker}-{child}"
            for k, line in enumerate(GROOMING_LINES):
                sent = at + timedelta(minutes=5 + 7 * k)
                yield MessageSent(
                    **self._base(sent),
                    message_id=self._id("m"),
                    author=talker,
                    conversation=conv,
                    private=True,
                    recipients=(child,),
                    text=line,
                )  # type: ignore[arg-type]
                yield MessageSent(
                    **self._base(sent + timedelta(minutes=2)),
                    message_id=self._id("m"),
                    author=child,
                    conversation=conv,
                    private=True,
                    recipients=(talker,),
                    text="ok",
                )  # type: ignore[arg-type]


def generate(spec: CommunitySpec | None = None) -> tuple[list[BaseEvent], Truth]:
    """Events and ground truth for one simulated community."""
    sim = Simulator(spec or CommunitySpec())
    return sim.events(), sim.truth
