"""grooming_language with a deterministic fake classifier: who is scored, thresholds, progression, bounds."""

from __future__ import annotations

import itertools
from datetime import datetime
from pathlib import Path

import pytest
from detector_harness import engine_with, feed
from groomguard.actions import ChildNotice, ModAlert
from groomguard.classifier import FakeClassifier, ModelError
from groomguard.detectors import REGISTRY
from groomguard.detectors.grooming_language import GroomingLanguageDetector, GroomingLanguageSettings
from groomguard.events import AgeBand
from groomguard.findings import Finding
from groomguard.memory import DetectorMemoryView, MemoryBook
from groomguard.records import Account, ContactEdge
from groomguard.testing import EventFactory

# Synthetic lines written for these tests.
GROOMING = [
    "hey how r u",
    "how old are u? are ur parents home",
    "ur so mature for ur age",
    "dont tell anyone we talk, its our secret",
    "add me on snap",
    "send me a pic, just for me",
]
BENIGN = [
    "great game today",
    "practice is on thursday at 5",
    "remember your water bottle",
    "your passing was brilliant",
    "see you at the match",
    "well done everyone",
]


class FakeState:
    """The narrow DetectorState with fixed age bands."""

    def __init__(self, bands: dict[str, AgeBand]) -> None:
        self.bands = bands

    async def account(self, community: str, account: str) -> Account:
        return Account(account=account, band=self.bands.get(account, AgeBand.UNKNOWN))

    async def contacts_started(self, community: str, source: str, since: datetime) -> list[ContactEdge]:
        return []

    async def accepted_contacts(self, community: str, account: str) -> frozenset[str]:
        return frozenset()


def keyword_fake() -> FakeClassifier:
    # Each keyword hit adds 0.3 to a 0.05 base: grooming windows saturate, benign stay low.
    return FakeClassifier(keywords=("secret", "snap", "pic", "old are u", "parents home", "mature"))


def detector(**kw: object) -> GroomingLanguageDetector:
    return GroomingLanguageDetector(GroomingLanguageSettings(**kw), classifier=keyword_fake())  # type: ignore[arg-type]


STATE = FakeState({"adult": AgeBand.ADULT, "kid": AgeBand.MINOR, "kid2": AgeBand.MINOR})


async def run(
    det: GroomingLanguageDetector,
    f: EventFactory,
    author: str,
    lines: list[str],
    recipients: tuple[str, ...] = ("kid",),
    state: FakeState = STATE,
) -> list[Finding]:
    out: list[Finding] = []
    for line in lines:
        event = f.message(author, line, conversation="dm-1", private=True, recipients=recipients, at=f.tick(minutes=1))
        out.extend(await det.inspect(event, state))
    return out


async def test_grooming_conversation_notifies_child_and_moderators_within_six_messages() -> None:
    f = EventFactory()
    findings = await run(detector(child_notice_threshold=0.6, moderator_threshold=0.9), f, "adult", GROOMING)
    assert findings, "expected findings"
    first, last = findings[0], findings[-1]
    assert first.child == "kid" and first.notify_child and first.suspect == "adult"
    assert last.score >= 0.9  # blatant grooming reaches moderators within the six adult messages
    assert {"personal_info", "secrecy", "off_platform"} <= set(last.stages)
    labels = [e.label for e in last.evidence]
    assert any(label.startswith("asking for secrecy: “") for label in labels)
    assert all(e.at is not None and e.child == "kid" for e in last.evidence if e.kind == "message")
    assert all(len(e.label) <= 300 for e in last.evidence)
    # The detector asks for a notice on the first finding and again only when a stage is new (the last
    # line asks for a photo); NoticeBook decides whether that second one goes out.
    asking = [x for x in findings if x.notify_child]
    assert asking[0] is first and "photos" in asking[-1].stages
    assert all(not set(b.stages) <= set(a.stages) for a, b in itertools.pairwise(asking))


class Flat(FakeClassifier):
    """Every window scores the same: only stage progression can move the risk."""

    def __init__(self, score: float) -> None:
        super().__init__()
        self.flat = score

    def classify_folded(self, texts: list[str]) -> list[float]:  # type: ignore[override]
        self.calls.append(list(texts))
        return [self.flat] * len(texts)


async def test_between_thresholds_only_the_child_hears() -> None:
    det = GroomingLanguageDetector(
        GroomingLanguageSettings(child_notice_threshold=0.6, moderator_threshold=0.9), classifier=Flat(0.7)
    )
    findings = await run(det, EventFactory(), "adult", ["great game today", "how old are you", "bye now"])
    assert len(findings) == 1 and findings[0].notify_child
    assert findings[0].score <= GroomingLanguageSettings().child_only_score  # child notice alone: no mod alert


async def test_without_a_child_directed_stage_a_fairly_sure_model_notifies_nobody() -> None:
    # The same 0.7 with nothing only grooming of a child shows (no age/parents probing, secrecy, isolation,
    # gifts or meeting): explicit or flirty talk between adults reads like this, so the child is not warned.
    det = GroomingLanguageDetector(
        GroomingLanguageSettings(child_notice_threshold=0.6, moderator_threshold=0.9), classifier=Flat(0.7)
    )
    assert await run(det, EventFactory(), "adult", ["great game today", "your passing was brilliant", "bye now"]) == []


async def test_terse_benign_chat_stays_quiet_even_when_the_model_is_wrong_about_it() -> None:
    # A model that scores every *informative* window 0.99 still never sees "ok", "lol" or emoji.
    det = GroomingLanguageDetector(GroomingLanguageSettings(child_notice_threshold=0.6), classifier=Flat(0.99))
    terse = ["ok", "lol", "k", "ok cool", "haha", "👍", "yes", "sure", "😂😂", "np"] * 3
    assert await run(det, EventFactory(), "adult", terse) == []
    assert det.classifier.calls == []  # type: ignore[attr-defined]


async def test_benign_adult_to_child_is_silent() -> None:
    assert await run(detector(), EventFactory(), "adult", BENIGN * 3) == []


@pytest.mark.parametrize(
    ("author", "recipients"),
    [("kid", ("adult",)), ("kid2", ("kid",)), ("adult", ("other_adult",)), ("adult", ())],
)
async def test_only_adult_or_unknown_to_minor_is_scored(author: str, recipients: tuple[str, ...]) -> None:
    state = FakeState(
        {"adult": AgeBand.ADULT, "other_adult": AgeBand.ADULT, "kid": AgeBand.MINOR, "kid2": AgeBand.MINOR}
    )
    det = detector(child_notice_threshold=0.3)
    assert await run(det, EventFactory(), author, GROOMING, recipients, state) == []
    assert det.classifier.calls == []  # type: ignore[attr-defined]


async def test_unknown_age_author_is_scored() -> None:
    findings = await run(detector(child_notice_threshold=0.6), EventFactory(), "stranger", GROOMING)
    assert findings and findings[0].suspect == "stranger"


async def test_one_spike_does_not_alert() -> None:
    # The model scores only the window that ends with the odd line high; the median over
    # recent windows keeps one such window from alerting.
    spike = "whatever you say lol"

    class Spiky(FakeClassifier):
        def classify_folded(self, texts: list[str]) -> list[float]:  # type: ignore[override]
            return [0.95 if t.endswith("whatever you say") else 0.1 for t in texts]

    det = GroomingLanguageDetector(GroomingLanguageSettings(child_notice_threshold=0.6), classifier=Spiky())
    lines = ["hi", "how was your day", "nice drawing", spike, "what did you eat", "cool", "see you monday"]
    assert await run(det, EventFactory(), "adult", lines) == []


async def test_progression_adds_risk_beyond_model_score() -> None:
    # Fixed model score 0.5 for every window: only stage progression can lift it over 0.8.
    lines = ["how old are u", "are ur parents home", "dont tell anyone", "add me on kik"]
    det = GroomingLanguageDetector(GroomingLanguageSettings(child_notice_threshold=0.8), classifier=Flat(0.5))
    findings = await run(det, EventFactory(), "adult", lines)
    assert findings and findings[0].stages == ("personal_info", "secrecy", "off_platform")
    calm = GroomingLanguageDetector(GroomingLanguageSettings(child_notice_threshold=0.8), classifier=Flat(0.5))
    assert await run(calm, EventFactory(), "adult", ["hello", "how are you", "nice weather", "bye"]) == []


async def test_bad_input_never_crashes() -> None:
    lines = ["", "😀😀😀", "你好", "x" * 8000, "\x00\x01\x02" * 100, "   "]
    assert await run(detector(), EventFactory(), "adult", lines) == []


class MemoryState(FakeState):
    """FakeState plus the store-backed detector memory (a MemoryBook standing in for the store)."""

    def __init__(self, bands: dict[str, AgeBand], book: MemoryBook) -> None:
        super().__init__(bands)
        self.book = book

    def memory(self, detector: str) -> DetectorMemoryView:
        return self.book.view(detector)


async def test_a_restarted_detector_resumes_the_conversation_from_memory() -> None:
    # Half the conversation, a restart (a new detector, the same committed memory), then the rest:
    # the same findings as one uninterrupted run, and the same notice requests.
    def fresh() -> GroomingLanguageDetector:
        return detector(child_notice_threshold=0.6, moderator_threshold=0.9)

    whole = await run(fresh(), EventFactory(), "adult", GROOMING, state=MemoryState(STATE.bands, MemoryBook()))
    book = MemoryBook()
    f = EventFactory()
    first = await run(fresh(), f, "adult", GROOMING[:3], state=MemoryState(STATE.bands, book))
    book.take_pending()  # the batch commits
    second = await run(fresh(), f, "adult", GROOMING[3:], state=MemoryState(STATE.bands, book))
    assert [(x.score, x.notify_child, x.stages) for x in first + second] == [
        (x.score, x.notify_child, x.stages) for x in whole
    ]
    assert sum(x.notify_child for x in first + second) == sum(x.notify_child for x in whole) >= 1


async def test_memory_rows_name_both_accounts_for_erasure() -> None:
    book = MemoryBook()
    await run(detector(), EventFactory(), "adult", GROOMING[:2], state=MemoryState(STATE.bands, book))
    rows = book.take_pending()
    assert rows and all({"adult", "kid"} <= set(r.accounts) for r in rows)
    assert all(r.expires_at is not None for r in rows)
    book.forget("kid")
    assert await book.get("grooming_language", "test-community", "dm-1\x1fadult\x1fkid") is None


async def test_two_children_in_one_message_are_scored_in_one_batch() -> None:
    det = detector(child_notice_threshold=0.6)
    findings = await run(det, EventFactory(), "adult", GROOMING, ("kid", "kid2"))
    assert {x.child for x in findings} == {"kid", "kid2"}
    assert all(len(batch) in (2,) for batch in det.classifier.calls)  # type: ignore[attr-defined]


def test_settings_validate() -> None:
    with pytest.raises(ValueError, match="moderator_threshold"):
        GroomingLanguageSettings(child_notice_threshold=0.9, moderator_threshold=0.5)
    for name, info in GroomingLanguageSettings.model_fields.items():
        assert info.description, name


def test_missing_model_is_a_startup_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"python -m groomguard\.models\.train"):
        GroomingLanguageDetector(GroomingLanguageSettings(model_path=str(tmp_path / "none.onnx")))


def test_registered_once() -> None:
    rows = [spec for spec in REGISTRY if spec.name == "grooming_language"]
    assert len(rows) == 1 and rows[0].settings_model is GroomingLanguageSettings


async def test_through_the_engine_child_notice_and_mod_alert(tmp_path: Path) -> None:
    f = EventFactory()
    events = [f.joined("suspect7"), f.adult("suspect7"), f.joined("kid"), f.minor("kid")]
    events += [
        f.message("suspect7", line, conversation="dm-1", private=True, recipients=("kid",), at=f.tick(minutes=1))
        for line in GROOMING
    ]
    det = detector(child_notice_threshold=0.6, moderator_threshold=0.85)
    async with engine_with(tmp_path / "gg.db", [det]) as (engine, recorder):
        await feed(engine, events, one_by_one=True)
        await engine.drain()
        sink = engine.sinks[0]
    assert recorder.findings
    notices = sink.of(ChildNotice)  # type: ignore[attr-defined]
    # A first notice, then one more inside the 24 h limit because the last message asked for a photo.
    assert [n.child for n in notices] == ["kid", "kid"]
    assert "photos or videos" in notices[1].text and "photos or videos" not in notices[0].text
    assert all("suspect7" not in n.text for n in notices)
    alerts = sink.of(ModAlert)  # type: ignore[attr-defined]
    assert alerts and all(a.suspect == "suspect7" for a in alerts)


# A longer synthetic grooming conversation, one message at a time, for the real model.
SLOW_GROOMING = [
    "hey there",
    "hows ur day going",
    "how old r u",
    "cool, what grade r u in",
    "u seem really mature for ur age",
    "r ur parents home",
    "when do they get back",
    "do u have ur own phone",
    "dont tell ur mom we talk ok",
    "its our secret",
    "u can delete the chat after",
    "do u have snap",
    "add me there its more private",
    "send me a pic of u",
    "we could meet at the park",
]
TEACHER = [
    "hi class",
    "homework is on page 42",
    "remember the trip on friday",
    "bring a packed lunch",
    "ask your parents to sign the form",
    "how old are you turning this year, 11?",
    "great work on the poster",
    "see you tomorrow",
    "dont forget your pe kit",
    "well done everyone",
    "the bus leaves at 8",
    "pick up is at 3 from the school gate",
]


@pytest.mark.model
async def test_real_model_in_the_detector() -> None:
    from groomguard.classifier import load_default_classifier

    model = load_default_classifier()
    det = GroomingLanguageDetector(GroomingLanguageSettings(), classifier=model)
    findings = await run(det, EventFactory(), "adult", SLOW_GROOMING)
    assert findings and findings[0].notify_child
    assert {"secrecy", "off_platform"} <= set(findings[-1].stages)
    assert max(x.score for x in findings) >= det.moderator_threshold
    teacher = GroomingLanguageDetector(GroomingLanguageSettings(), classifier=model)
    assert await run(teacher, EventFactory(), "adult", TEACHER) == []


async def test_grooming_in_an_open_room_is_a_conversation_for_that_pair(tmp_path: Path) -> None:
    # Issue 13: an adult replying to and mentioning a child in `general` (no DM) is scored as an
    # adult→child conversation; the child hears, and the finding names them.
    f = EventFactory()
    events = [f.joined("adult7"), f.adult("adult7"), f.joined("kid"), f.minor("kid")]
    opener = f.message("kid", "anyone wanna play later", at=f.tick(minutes=1))
    events.append(opener)
    for i, line in enumerate(GROOMING):
        kw = {"reply_to": opener.message_id} if i % 2 == 0 else {"mentions": ("kid",)}
        events.append(f.message("adult7", line, conversation="general", at=f.tick(minutes=1), **kw))
    det = detector(child_notice_threshold=0.6, moderator_threshold=0.85)
    async with engine_with(tmp_path / "gg.db", [det]) as (engine, recorder):
        await feed(engine, events, one_by_one=True)
        await engine.drain()
        notices = engine.sinks[0].of(ChildNotice)  # type: ignore[attr-defined]
    assert recorder.findings and {x.child for x in recorder.findings} == {"kid"}
    assert [n.child for n in notices] == ["kid", "kid"]  # the first notice, then the photo request's


async def test_a_coach_posting_to_several_children_stays_quiet(tmp_path: Path) -> None:
    # A message that mentions three or more children is a broadcast: it addresses none of them.
    f = EventFactory()
    kids = ("kid", "kid2", "kid3")
    events = [f.joined("coach"), f.adult("coach")] + [e for k in kids for e in (f.joined(k), f.minor(k))]
    lines = [
        "practice moved to thursday at 5, dont tell anyone on the other team our new plays",
        "bring your kit and a water bottle, send me a pic of the permission slip",
        "we meet at the park gate, parents pick up at 7",
    ] * 3
    events += [f.message("coach", line, mentions=kids, at=f.tick(minutes=1)) for line in lines]
    det = detector(child_notice_threshold=0.3, moderator_threshold=0.5)
    async with engine_with(tmp_path / "gg.db", [det]) as (engine, recorder):
        await feed(engine, events, one_by_one=True)
        await engine.drain()
    assert recorder.findings == []
    assert det.classifier.calls == []  # type: ignore[attr-defined]


class SecondOpinion:
    """A LanguageRouter with English only and a second-opinion model that always disagrees."""

    def __init__(self) -> None:
        self.second = FakeClassifier(keywords=())
        self.second.default = 0.01

    def language(self, text: str, recent: object = ()) -> tuple[str, str]:
        return "en", "English"

    def covers(self, code: str) -> bool:
        return False

    def classifier(self, code: str) -> FakeClassifier:
        raise AssertionError("no other language here")

    def tagger(self, code: str) -> object:
        raise AssertionError("no other language here")

    def second_opinion(self) -> FakeClassifier:
        return self.second


async def test_a_second_model_that_disagrees_pulls_the_risk_down() -> None:
    # The n-gram model (Flat 0.95) is sure; the embedding model (0.01) is not: their log-odds mean decides.
    settings = GroomingLanguageSettings(child_notice_threshold=0.6, moderator_threshold=0.9)
    alone = GroomingLanguageDetector(settings, classifier=Flat(0.95))
    checked = GroomingLanguageDetector(settings, classifier=Flat(0.95), languages=SecondOpinion())  # type: ignore[arg-type]
    lines = ["great game today", "how old are you", "see you at the next match"]
    assert [round(x.score, 2) for x in await run(alone, EventFactory(), "adult", lines)] == [0.95]
    assert await run(checked, EventFactory(), "adult", lines) == []  # agree(0.95, 0.01) ≈ 0.09
    assert checked.languages.second.calls  # type: ignore[union-attr]
