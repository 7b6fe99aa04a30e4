"""Event validation: good events round-trip; bad input becomes a readable EventError, never a crash."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import orjson
import pytest
from groomguard.events import (
    _VALIDATE_JSON,
    EVENT_ADAPTER,
    MAX_TEXT_CHARS,
    EventError,
    MessageSent,
    dump_event,
    event_json_schema,
    iso_utc,
    parse_event,
    same_event,
)
from groomguard.testing import EventFactory
from groomguard.testing.simulate import CommunitySpec, generate
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError


def test_every_factory_event_round_trips(ev: EventFactory) -> None:
    events = [
        ev.joined("a"),
        ev.adult("a"),
        ev.region("a", "North"),
        ev.contact("a", "b"),
        ev.answer("a", "b", "rejected"),
        ev.message("a", "hello"),
        ev.view("a", "b"),
        ev.decision("mod", 1, "dismiss"),
    ]
    for event in events:
        again = parse_event(dump_event(event))
        assert again == event
        assert again.at.utcoffset().total_seconds() == 0


def test_region_is_normalised(ev: EventFactory) -> None:
    assert ev.region("a", "  North ").region == "north"


def test_events_are_frozen(ev: EventFactory) -> None:
    event = ev.message("a", "hi")
    with pytest.raises(Exception, match="frozen"):
        event.text = "changed"  # type: ignore[misc]


def test_key_is_platform_qualified(ev: EventFactory) -> None:
    assert ev.message("a", "hi").key.startswith("test:")


@pytest.mark.parametrize(
    ("payload", "field", "fragment"),
    [
        ("{", None, "not valid JSON"),
        ('{"type": "nope"}', "type", "unknown event type"),
        ('{"event_id": "1"}', "type", "missing 'type'"),
        (
            '{"type": "member_left", "event_id": "1", "platform": "p", "community": "c", "at": "2026-01-01T00:00:00", "account": "a"}',
            "at",
            "timezone",
        ),
        (
            '{"type": "member_left", "event_id": "1", "platform": "p", "community": "c", "at": "2026-01-01T00:00:00Z"}',
            "account",
            "Field required",
        ),
        (
            '{"type": "member_left", "event_id": "1", "platform": "p", "community": "c", "at": "2026-01-01T00:00:00Z", "account": "a", "x": 1}',
            "x",
            "Extra inputs",
        ),
        (
            '{"type": "contact_requested", "event_id": "1", "platform": "p", "community": "c", "at": "2026-01-01T00:00:00Z", "source": "a", "target": "b", "kind": "poke"}',
            "kind",
            "Input should be",
        ),
        (
            '{"type": "member_left", "event_id": "", "platform": "p", "community": "c", "at": "2026-01-01T00:00:00Z", "account": "a"}',
            "event_id",
            "at least 1",
        ),
        ("[]", None, "object"),
    ],
)
def test_bad_payloads_name_the_field(payload: str, field: str | None, fragment: str) -> None:
    with pytest.raises(EventError) as info:
        parse_event(payload)
    assert info.value.field == field
    assert fragment in info.value.reason


def test_binary_payload_is_a_clear_error() -> None:
    with pytest.raises(EventError, match="JSON"):
        parse_event(b"\xff\xfe\x00garbage")


def test_huge_text_is_truncated_not_rejected() -> None:
    body = {
        "type": "message_sent",
        "event_id": "1",
        "platform": "p",
        "community": "c",
        "at": "2026-01-01T00:00:00+02:00",
        "message_id": "m",
        "author": "a",
        "conversation": "x",
        "text": "a" * 2_000_000,
    }
    event = parse_event(json.dumps(body))
    assert isinstance(event, MessageSent)
    assert len(event.text) == MAX_TEXT_CHARS
    assert event.at.isoformat() == "2025-12-31T22:00:00+00:00"


def test_schema_lists_every_event_type() -> None:
    schema = event_json_schema()
    names = set(schema["discriminator"]["mapping"])
    assert {
        "member_joined",
        "contact_requested",
        "contact_answered",
        "message_sent",
        "content_viewed",
        "moderator_decision",
    } <= names


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=300),
        st.binary(max_size=300),
        st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=6),
    )
)
def test_arbitrary_input_never_crashes(payload: object) -> None:
    try:
        parse_event(payload)  # type: ignore[arg-type]
    except EventError as error:
        assert error.reason


@pytest.mark.parametrize(
    "at", ["20240101T000000Z", "2024-W01-1T00:00:00Z", "2024-01-01T00Z", "2024-01-01T00:00:00+00", "2024-01-01T0000Z"]
)
def test_iso_forms_outside_rfc3339_are_refused_as_before(at: str) -> None:
    """The fast UTC parse must not widen what is accepted: basic, week-date and shortened forms stay refused."""
    line = json.dumps(
        {"type": "member_joined", "event_id": "e", "platform": "p", "community": "c", "at": at, "account": "a"}
    )
    with pytest.raises(EventError):
        parse_event(line)


@pytest.mark.parametrize("at", ["2024-01-01T00:00:00Z", "2024-01-01T00:00:00.250+00:00", "2024-01-01 00:00:00Z"])
def test_utc_timestamps_parse_to_the_utc_zone(at: str) -> None:
    line = json.dumps(
        {"type": "member_joined", "event_id": "e", "platform": "p", "community": "c", "at": at, "account": "a"}
    )
    event = parse_event(line)
    assert event.at.tzinfo is UTC and event.at_iso.startswith("2024-01-01T00:00:00")


@pytest.mark.parametrize("at", ["0001-01-01T00:00:00Z", "1969-12-31T23:59:59.999999Z", "1970-01-01T00:59:59+01:00"])
def test_times_before_1970_are_refused_with_a_reason(at: str) -> None:
    """A zero time from a broken clock (Go's is year 1) is refused at the edge: windows subtracted from it
    would overflow in detectors and in every later restart's snapshot."""
    line = json.dumps(
        {"type": "member_joined", "event_id": "e", "platform": "p", "community": "c", "at": at, "account": "a"}
    )
    with pytest.raises(EventError) as caught:
        parse_event(line)
    assert caught.value.field == "at" and "before 1970" in caught.value.reason
    created = json.dumps(
        {"type": "member_joined", "event_id": "e", "platform": "p", "community": "c", "at": "2026-01-01T00:00:00Z"}
        | {"account": "a", "account_created_at": at}
    )
    with pytest.raises(EventError, match="before 1970"):
        parse_event(created)
    assert parse_event(line.replace(at, "1970-01-01T00:00:00Z")).at == datetime(1970, 1, 1, tzinfo=UTC)


def test_dump_event_reads_back_equal_for_every_simulated_event(ev: EventFactory) -> None:
    """Every stored body is replayed at a restart: msgspec's text must read back as the same event,
    defaults, clipped text and enums all, and say what pydantic's JSON says field for field."""
    events, _truth = generate(CommunitySpec(seed=3, adults=30, minors=20, days=3))
    clipped = MessageSent.model_validate(
        {
            "event_id": "long",
            "platform": "p",
            "community": "c",
            "at": "2026-01-01T00:00:00Z",
            "message_id": "m",
            "author": "a",
            "conversation": "dm",
            "text": "é" * (MAX_TEXT_CHARS + 5),
        }
    )
    kinds = set()
    made = [ev.region("a", "North"), ev.decision("mod", 1, "dismiss"), ev.message("a", "hi", private=True)]
    for event in [*events, clipped, *made]:
        assert event.key and event.at_iso  # computed once, not fields: they must stay out of the body
        body = dump_event(event)
        assert parse_event(body) == event
        assert _with_utc(json.loads(body)) == _with_utc(json.loads(event.model_dump_json()))
        kinds.add(event.type)
    assert len(kinds) >= 8, kinds


def _with_utc(fields: dict[str, object]) -> dict[str, object]:
    """The same instant whether written with "Z" (pydantic, msgspec) or "+00:00" (orjson, older bodies)."""
    return {k: v.replace("Z", "+00:00") if k.endswith("at") and isinstance(v, str) else v for k, v in fields.items()}


def test_dump_event_writes_a_case_id_past_64_bits(ev: EventFactory) -> None:
    """A case id past 64 bits (nothing bounds it above) is written and read back, not a failure."""
    decision = ev.decision("mod", 2**70, "ban")
    assert parse_event(dump_event(decision)) == decision


def test_a_body_an_earlier_version_wrote_is_the_same_event(ev: EventFactory) -> None:
    """Webhook resends are checked against stored bodies; those written by pydantic's serializer, or by orjson
    (with "+00:00", up to 4193ca2), still match."""
    event = ev.message("a", "see you at practice")
    assert same_event(event.model_dump_json(), event)
    fields = {k: v for k, v in event.__dict__.items() if k in type(event).model_fields}
    assert same_event(orjson.dumps(fields).decode(), event)
    assert same_event(dump_event(event), event)
    assert not same_event(ev.message("a", "something else").model_dump_json(), event)
    assert not same_event("{not json", event)


@settings(max_examples=500, deadline=None)
@given(st.datetimes(timezones=st.just(UTC)))
def test_iso_utc_is_isoformat(at: datetime) -> None:
    assert iso_utc(at) == at.isoformat()


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_parse_event_answers_as_the_type_adapter_does(payload: str | bytes) -> None:
    """parse_event calls the union's validator directly; TypeAdapter.validate_json must agree on every input."""
    try:
        expected: object = EVENT_ADAPTER.validate_json(payload)
    except ValidationError as error:
        expected = repr(error.errors(include_url=False))  # as text: a NaN input is not equal to itself
    try:
        got: object = _VALIDATE_JSON(payload)
    except ValidationError as error:
        got = repr(error.errors(include_url=False))
    assert got == expected
