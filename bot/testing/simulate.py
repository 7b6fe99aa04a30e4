"""A deterministic, seeded simulation of a community (benign adults, minors, planted groomers) for demos and tuning."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from groomguard.events import (
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
    "hey ur really good at this game",
    "u seem so mature for ur age",
    "how old r u btw? what school do u go to",
    "are ur parents home rn",
    "u can tell me anything, i get u better than they do",
    "dont tell anyone about us ok, its our secret",
    "delete this after u read it",
    "do u have snap? add me there its more private",
    "send me a pic of u, just for me",
    "we could meet up sometime, i can pick u up",
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
    #: Grow into the benchmark community (see `CommunitySpec.benchmark`); the small demo leaves it off.
    large: bool = False
    regions: int = 40
    groomers: dict[str, int] = field(default_factory=dict)
    hard_negatives: dict[str, int] = field(default_factory=dict)

    @classmethod
    def benchmark(cls, seed: int = 11, adults: int = 10_060, minors: int = 2_515, days: int = 28) -> CommunitySpec:
        """About 12,500 accounts, 20 % minors, four weeks: groomers of every intensity among hard negatives."""
        return cls(
            community="bench-community",
            platform="bench",
            adults=adults,
            minors=minors,
            days=days,
            seed=seed,
            large=True,
            groomers={"blitz": 12, "steady": 12, "slow": 12, "viewer": 8, "new_account": 8, "poser": 8},
            hard_negatives={
                "teacher": 60,
                "coach": 60,
                "relative": 600,
                "popular": 25,
                "adult_sibling": 150,
                "busy_viewer": 250,
                "youth_worker": 40,
                "parent_viewer": 300,
                "chatty": 80,
                "new_parent": 200,
                "networker": 60,
            },
        )


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
        if self.spec.large:
            out = list(LargeCommunity(self).events())
            out.sort(key=lambda e: (e.at, e.event_id))
            return out
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


class LargeCommunity:
    """The benchmark community: schools by region, friendships, views, and every hard negative named in issue 4.

    Minors befriend classmates (same region); adults befriend adults; parents are accepted contacts of
    their children, which gives coaches and relatives real mutual contacts. Groomers share nothing
    with the children they reach and vary from a two-day blitz to a few requests a week.
    """

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.spec = sim.spec
        self.rng = random.Random(sim.spec.seed)
        self.truth = sim.truth
        self.day0 = START + timedelta(hours=12)
        self.end = START + timedelta(days=sim.spec.days)

    # -- helpers --------------------------------------------------------------------------

    def _b(self, at: datetime) -> dict[str, object]:
        return self.sim._base(at)

    def _at(self, day_from: float = 0, day_to: float | None = None) -> datetime:
        day_to = self.spec.days - 0.1 if day_to is None else day_to
        return self.day0 + timedelta(days=self.rng.uniform(day_from, day_to))

    def _request(
        self, source: str, target: str, at: datetime, accept_p: float, kind: ContactKind = ContactKind.FRIEND
    ) -> Iterator[BaseEvent]:
        """A request and (usually) its answer; unanswered ones are left for the expiry rule."""
        req = self.sim._id("req")
        yield ContactRequested(**self._b(at), source=source, target=target, kind=kind, request_id=req)  # type: ignore[arg-type]
        roll = self.rng.random()
        if roll < accept_p:
            answer = Answer.ACCEPTED
        elif roll < accept_p + (1 - accept_p) * 0.6:
            answer = Answer.REJECTED
        else:
            return  # never answered
        later = at + timedelta(hours=self.rng.uniform(0.2, 30))
        if later < self.end:
            yield ContactAnswered(**self._b(later), source=source, target=target, answer=answer, request_id=req)  # type: ignore[arg-type]

    def _contact(self, source: str, target: str, at: datetime, kind: ContactKind) -> BaseEvent:
        return ContactRequested(**self._b(at), source=source, target=target, kind=kind)  # type: ignore[arg-type]

    def _view(self, viewer: str, author: str, at: datetime, count: int = 1) -> BaseEvent:
        return ContentViewed(**self._b(at), viewer=viewer, author=author, content_id=self.sim._id("post"), count=count)  # type: ignore[arg-type]

    # -- the community --------------------------------------------------------------------

    def events(self) -> Iterator[BaseEvent]:
        s, rng, truth = self.spec, self.rng, self.truth
        adults = [f"adult{i:05d}" for i in range(s.adults)]
        minors = [f"minor{i:05d}" for i in range(s.minors)]
        truth.adults.update(adults)
        truth.minors.update(minors)
        regions = [f"region{i:02d}" for i in range(s.regions)]
        self.region = {a: rng.choice(regions) for a in adults + minors}
        self.by_region: dict[str, list[str]] = {r: [] for r in regions}
        for m in minors:
            self.by_region[self.region[m]].append(m)
        pool = adults[:]
        rng.shuffle(pool)
        self.roles: dict[str, list[str]] = {}
        for role, count in [*s.groomers.items(), *s.hard_negatives.items()]:
            self.roles[role], pool = pool[:count], pool[count:]
        for role in s.groomers:
            for a in self.roles[role]:
                truth.groomers[a] = role
        for role in s.hard_negatives:
            for a in self.roles[role]:
                truth.hard_negatives[a] = role
        self.ordinary = pool
        yield from self._people(adults, minors)
        yield from self._friendships(adults, minors)
        yield from self._views(adults, minors)
        yield from self._chatter(adults, minors)
        yield from self._hard_negatives(adults, minors)
        yield from self._groomers(minors)

    def _people(self, adults: list[str], minors: list[str]) -> Iterator[BaseEvent]:
        rng, truth = self.rng, self.truth
        self.text_minors: set[str] = set()
        self.joined: dict[str, datetime] = {}
        for acc in adults + minors:
            role = truth.groomers.get(acc) or truth.hard_negatives.get(acc)
            joined = START + timedelta(hours=rng.uniform(0, 10))
            created = joined - timedelta(days=rng.uniform(30, 3000))
            if role in ("new_account", "new_parent"):
                joined = self._at(0, self.spec.days - 5)
                created = joined - timedelta(hours=rng.uniform(1, 48))
            self.joined[acc] = joined
            yield MemberJoined(**self._b(joined), account=acc, account_created_at=created)  # type: ignore[arg-type]
            if acc in truth.minors:
                # Most children have an age role; some only ever say their age in chat.
                if rng.random() < 0.8:
                    yield AgeDeclared(
                        **self._b(joined + timedelta(seconds=1)), account=acc, band=AgeBand.MINOR, source=AgeSource.ROLE
                    )  # type: ignore[arg-type]
                elif rng.random() < 0.7:
                    self.text_minors.add(acc)
                    age = rng.randint(11, 16)
                    line = rng.choice([f"hi im {age}", f"{age} y/o here", f"im in year {age - 4}", f"{age}f lol"])
                    yield MessageSent(
                        **self._b(joined + timedelta(minutes=rng.uniform(1, 600))),
                        message_id=self.sim._id("m"),
                        author=acc,
                        conversation="introductions",
                        text=line,
                    )  # type: ignore[arg-type]
            elif (
                role not in ("poser",)
                and (role in truth.hard_negatives or rng.random() < 0.85)
                and acc not in truth.groomers
            ) or (acc in truth.groomers and rng.random() < 0.5 and role != "poser"):
                yield AgeDeclared(
                    **self._b(joined + timedelta(seconds=1)), account=acc, band=AgeBand.ADULT, source=AgeSource.ROLE
                )  # type: ignore[arg-type]
            if acc in truth.groomers:
                if rng.random() < 0.3:  # some groomers declare a region, never the children's
                    yield RegionDeclared(**self._b(joined + timedelta(seconds=2)), account=acc, region="elsewhere")  # type: ignore[arg-type]
            elif rng.random() < 0.75 or acc in truth.minors or acc in truth.hard_negatives:
                yield RegionDeclared(**self._b(joined + timedelta(seconds=2)), account=acc, region=self.region[acc])  # type: ignore[arg-type]

    def _friendships(self, adults: list[str], minors: list[str]) -> Iterator[BaseEvent]:
        """Classmates befriend classmates; adults befriend adults; each child has one or two parents."""
        rng = self.rng
        for m in minors:
            mates = self.by_region[self.region[m]]
            for mate in rng.sample(mates, min(len(mates), rng.randint(2, 6))):
                if mate != m:
                    yield from self._request(m, mate, self._at(0, 20), accept_p=0.85)
        self.parents: dict[str, list[str]] = {}
        parents_pool = [a for a in self.ordinary + self.roles.get("relative", []) + self.roles.get("parent_viewer", [])]
        for m in minors:
            parents = rng.sample(parents_pool, rng.choice((1, 2)))
            self.parents[m] = parents
            for p in parents:
                # The parent shares the child's region: same household.
                yield RegionDeclared(**self._b(START + timedelta(hours=11)), account=p, region=self.region[m])  # type: ignore[arg-type]
                yield from self._request(p, m, self._at(0, 3), accept_p=1.0, kind=ContactKind.FOLLOW)
        for a in self.ordinary:
            for other in rng.sample(adults, rng.randint(1, 4)):
                if other != a:
                    yield from self._request(a, other, self._at(), accept_p=0.7)
            # Background noise: now and then an adult replies to or mentions a child in a public channel.
            if rng.random() < 0.08:
                for _ in range(rng.randint(1, 3)):
                    yield self._contact(
                        a, rng.choice(minors), self._at(), rng.choice((ContactKind.REPLY, ContactKind.MENTION))
                    )

    def _views(self, adults: list[str], minors: list[str]) -> Iterator[BaseEvent]:
        """Ordinary browsing: a few aggregated view events a day, about a fifth of them of minors' posts."""
        rng = self.rng
        everyone = adults + minors
        for viewer in rng.sample(everyone, len(everyone) // 3):
            for _ in range(rng.randint(3, 12)):
                yield self._view(viewer, rng.choice(everyone), self._at(), count=rng.randint(1, 4))

    def _chatter(self, adults: list[str], minors: list[str]) -> Iterator[BaseEvent]:
        rng = self.rng
        everyone = adults + minors
        for _ in range(self.spec.days * 150):
            yield MessageSent(
                **self._b(self._at()),
                message_id=self.sim._id("m"),
                author=rng.choice(everyone),
                conversation="general",
                text=rng.choice(BENIGN_LINES),
            )  # type: ignore[arg-type]

    def _hard_negatives(self, adults: list[str], minors: list[str]) -> Iterator[BaseEvent]:
        rng, roles = self.rng, self.roles
        everyone = adults + minors
        for teacher in roles.get("teacher", []):
            pupils = self.by_region[self.region[teacher]]
            start = rng.uniform(0, 10)
            for pupil in rng.sample(pupils, min(len(pupils), rng.randint(15, 40))):
                yield from self._request(
                    teacher, pupil, self._at(start, start + 3), accept_p=0.9, kind=ContactKind.FOLLOW
                )
        for coach in roles.get("coach", []):
            # A travel team: children from several regions, reached through their parents first.
            squad = rng.sample(minors, rng.randint(12, 25))
            start = rng.uniform(0, 14)
            for kid in squad:
                parent = self.parents[kid][0]
                yield from self._request(coach, parent, self._at(start, start + 1), accept_p=1.0)
                yield from self._request(coach, kid, self._at(start + 1.5, start + 5), accept_p=0.8)
        for relative in roles.get("relative", []):
            kin = [m for m, ps in self.parents.items() if relative in ps]
            for kid in kin:
                cousins = self.by_region[self.region[kid]]
                for c in rng.sample(cousins, min(len(cousins), rng.randint(1, 5))):
                    yield from self._request(relative, c, self._at(), accept_p=0.7)
        for popular in roles.get("popular", []):
            fans = rng.sample(minors, rng.randint(50, 200))
            for fan in fans:
                yield self._contact(fan, popular, self._at(), ContactKind.FOLLOW)
            for fan in rng.sample(fans, rng.randint(5, 30)):
                yield self._contact(popular, fan, self._at(self.spec.days - 2), ContactKind.REPLY)
        for sib in roles.get("adult_sibling", []):
            school = self.by_region[self.region[sib]]
            for kid in rng.sample(school, min(len(school), rng.randint(4, 12))):
                yield from self._request(sib, kid, self._at(), accept_p=0.75)
        for busy in roles.get("busy_viewer", []):
            for day in range(self.spec.days):
                for _ in range(rng.randint(4, 12)):
                    at = self.day0 + timedelta(days=day, hours=rng.uniform(0, 23))
                    yield self._view(busy, rng.choice(everyone), at, count=rng.randint(5, 40))
        for worker in roles.get("youth_worker", []):
            kids = self.by_region[self.region[worker]]
            for day in range(self.spec.days):
                for hour in rng.sample(range(9, 18), 6):
                    at = self.day0 + timedelta(days=day, hours=hour - 12, minutes=rng.uniform(0, 50))
                    for kid in rng.sample(kids, min(len(kids), 6)):
                        yield self._view(worker, kid, at, count=rng.randint(2, 6))
        for parent in roles.get("parent_viewer", []):
            kids = [m for m, ps in self.parents.items() if parent in ps]
            for kid in kids:
                for _ in range(rng.randint(3, 10)):
                    yield self._view(parent, kid, self._at(), count=rng.randint(10, 60))
        for chatty in roles.get("chatty", []):
            # Replies to whoever posts, children included, all month long.
            for _ in range(rng.randint(30, 80)):
                yield self._contact(
                    chatty, rng.choice(everyone), self._at(), rng.choice((ContactKind.REPLY, ContactKind.MENTION))
                )
        for parent in roles.get("new_parent", []):
            joined = self.joined[parent]
            region_kids = self.by_region[self.region[parent]]
            for kid in rng.sample(region_kids, min(len(region_kids), rng.randint(2, 6))):
                yield from self._request(
                    parent, kid, joined + timedelta(hours=rng.uniform(1, 72)), accept_p=0.7, kind=ContactKind.FOLLOW
                )
        for networker in roles.get("networker", []):
            # Sends friend requests to everyone; many ignored, a few to children.
            for target in rng.sample(everyone, rng.randint(40, 90)):
                yield from self._request(networker, target, self._at(), accept_p=0.4)

    def _groomers(self, minors: list[str]) -> Iterator[BaseEvent]:
        rng, roles, truth = self.rng, self.roles, self.truth
        spec = self.spec

        def campaign(groomer: str, count: int, start: float, span_days: float, accept_p: float) -> Iterator[BaseEvent]:
            targets = rng.sample(minors, count)
            times = sorted(start + rng.uniform(0, span_days) for _ in targets)
            for kid, day in zip(targets, times, strict=True):
                at = self.day0 + timedelta(days=min(day, spec.days - 0.05))
                truth.first_contact[groomer] = min(truth.first_contact.get(groomer, at), at)
                kind = rng.choice((ContactKind.FRIEND, ContactKind.FRIEND, ContactKind.DM, ContactKind.FOLLOW))
                yield from self._request(groomer, kid, at, accept_p=accept_p, kind=kind)

        for g in roles.get("blitz", []):
            yield from campaign(g, rng.randint(10, 25), rng.uniform(0, 20), rng.uniform(1, 4), 0.35)
        for g in roles.get("steady", []):
            yield from campaign(g, rng.randint(10, 20), rng.uniform(0, 8), 18, 0.4)
        for g in roles.get("slow", []):
            # Two or three a week, for the whole four weeks.
            yield from campaign(g, rng.randint(7, 11), rng.uniform(0, 2), spec.days - 3, 0.4)
        for g in roles.get("new_account", []):
            start = (self.joined[g] - self.day0).total_seconds() / 86400 + 0.05
            yield from campaign(g, rng.randint(4, 8), start, 3, 0.35)
        for g in roles.get("poser", []):
            at = self._at(0, 10)
            yield MessageSent(
                **self._b(at),
                message_id=self.sim._id("m"),
                author=g,
                conversation="general",
                text=rng.choice(("im 15 lol", "hey im 14 too", "15 y/o here")),
            )  # type: ignore[arg-type]
            yield from campaign(g, rng.randint(8, 14), (at - self.day0).total_seconds() / 86400 + 0.5, 5, 0.45)
        for g in roles.get("viewer", []):
            # Binges on children's posts in a few bursts, and reaches out to a handful.
            for _ in range(rng.randint(2, 4)):
                at = self._at(2, spec.days - 1)
                truth.first_contact[g] = min(truth.first_contact.get(g, at), at)
                for kid in rng.sample(minors, rng.randint(10, 20)):
                    yield self._view(g, kid, at + timedelta(minutes=rng.uniform(0, 55)), count=rng.randint(2, 6))
            yield from campaign(g, rng.randint(2, 4), rng.uniform(5, 15), 5, 0.4)


def generate(spec: CommunitySpec | None = None) -> tuple[list[BaseEvent], Truth]:
    """Events and ground truth for one simulated community."""
    sim = Simulator(spec or CommunitySpec())
    return sim.events(), sim.truth
