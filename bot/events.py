"""The one event vocabulary inside GroomGuard: frozen pydantic models, one union on `type`."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Self, Union

import msgspec
import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

#: Longest message text kept; longer text is truncated (and flagged), never rejected,
#: so one enormous message cannot drop a real event.
MAX_TEXT_CHARS = 8_000

_ZERO = timedelta(0)

Id = Annotated[str, StringConstraints(min_length=1, max_length=256, strip_whitespace=True)]
#: Message text as sent: any length is read (and then clipped to MAX_TEXT_CHARS, see `_clip`), where
#: every other string is refused past the model's `str_max_length`.
RawText = Annotated[str, Field(max_length=64 * 1024 * 1024)]


def _parse_utc(value: Any) -> Any:
    """UTC ISO 8601 text, the common case, parsed by the standard library straight to `UTC`.

    pydantic's own parse gives a zone object of its own, which `_to_utc` must then swap; anything else
    (other offsets, no zone, numbers, junk) is left to pydantic and its error messages.
    """
    # Only the RFC 3339 shape pydantic accepts ("2026-01-31T12:00:00[.ffffff]Z" or "+00:00"): fromisoformat
    # alone would also take basic, week-date and shortened forms that pydantic refuses.
    if (
        isinstance(value, str)
        and len(value) >= 20
        and value[4] == value[7] == "-"
        and value[10] in "Tt "
        and value[19] in ".Z+"
        and (value.endswith(("Z", "+00:00")) and value[-2] != ".")
    ):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value
        if parsed.tzinfo is UTC:
            return parsed
    return value


#: The earliest time an event may carry. No platform sends older ones (a zero time from a bad clock is
#: year 1), and the windows detectors and restarts subtract from an event's time overflow near year 1.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is not UTC:
        # Nearly every timestamp arrives in UTC ("Z"): swapping the zone object is far cheaper than astimezone.
        if value.utcoffset() == _ZERO:
            value = value.replace(tzinfo=UTC)
        else:
            try:
                value = value.astimezone(UTC)
            except OverflowError:
                # Year 1 or 9999 with an offset cannot be expressed in UTC (found by the fuzzer).
                raise ValueError("timestamp out of range") from None
    if value < EARLIEST:
        raise ValueError("timestamp before 1970-01-01T00:00:00Z: check the sender's clock")
    return value


UtcDatetime = Annotated[AwareDatetime, BeforeValidator(_parse_utc), AfterValidator(_to_utc)]


class AgeBand(StrEnum):
    """What we know of an account's age; `minor` means under 18."""

    MINOR = "minor"
    ADULT = "adult"
    UNKNOWN = "unknown"


class AgeSource(StrEnum):
    """Where an age declaration came from, strongest last."""

    TEXT = "text"
    SELF = "self"
    ROLE = "role"
    #: The platform itself knows the age (verified at sign-up, a school roster): trusted like a role.
    PLATFORM = "platform"
    MODERATOR = "moderator"


class ContactKind(StrEnum):
    """How one account reached out to another for the first time."""

    FRIEND = "friend"
    FOLLOW = "follow"
    DM = "dm"
    INVITE = "invite"
    MENTION = "mention"
    REPLY = "reply"


#: Contact kinds that are requests the target can accept or reject.
REQUEST_KINDS = frozenset({ContactKind.FRIEND, ContactKind.FOLLOW, ContactKind.DM, ContactKind.INVITE})


class Answer(StrEnum):
    """How a contact request ended."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    EXPIRED = "expired"
    #: The sender took it back (or the target was removed) before any answer: neither yes nor no.
    WITHDRAWN = "withdrawn"


class StandingKind(StrEnum):
    """A standing in the community that connects an account to many people without a personal tie."""

    MODERATOR = "moderator"
    BOT = "bot"
    #: Created (or owns) a room, space or server, and so invites or admits people into it.
    CREATOR = "creator"


class Decision(StrEnum):
    """What a moderator decided about a case."""

    CONFIRM = "confirm"
    DISMISS = "dismiss"
    ESCALATE = "escalate"
    TIMEOUT = "timeout"
    KICK = "kick"
    BAN = "ban"


class _once:
    """A read-only value computed from an event's fields on first use and kept in the instance.

    functools.cached_property takes a lock on every first use (Python 3.11); events are frozen, so a
    value cannot go stale, except through `model_copy(update=...)`, which drops them (see BaseEvent).
    """

    names: ClassVar[set[str]] = set()

    def __init__(self, compute: Callable[[Any], Any]) -> None:
        self.compute = compute
        self.name = compute.__name__
        _once.names.add(self.name)

    def __get__(self, event: Any, owner: type | None = None) -> Any:
        if event is None:
            return self
        value = event.__dict__[self.name] = self.compute(event)
        return value


class BaseEvent(BaseModel):
    """Fields every event carries; `event_id` is unique per platform and makes ingest idempotent."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_max_length=MAX_TEXT_CHARS * 4, ignored_types=(_once,))

    event_id: Id
    platform: Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[a-z0-9_.-]+$")]
    community: Id
    at: UtcDatetime

    @_once
    def key(self) -> str:
        """Platform-qualified id used for idempotency in the store."""
        return f"{self.platform}:{self.event_id}"

    @_once
    def at_iso(self) -> str:
        """`at` as ISO 8601 text, formatted once: the event's rows in several tables store it."""
        return iso_utc(self.at)

    @_once
    def body(self) -> str:
        """The event as one JSON Lines record (see `dump_event`), written once: a decoded line brings its own."""
        return _dump(self)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy; values computed once from the fields (`key`, `at_iso`, `body`) are computed again for it."""
        copy = super().model_copy(update=update, deep=deep)
        for name in _once.names:
            copy.__dict__.pop(name, None)
        return copy


class MemberJoined(BaseEvent):
    """An account joined the community; `account_created_at` lets us spot brand-new accounts."""

    type: Literal["member_joined"] = "member_joined"
    account: Id
    account_created_at: UtcDatetime | None = None


class MemberLeft(BaseEvent):
    """An account left or was removed from the community."""

    type: Literal["member_left"] = "member_left"
    account: Id


class ContactRequested(BaseEvent):
    """`source` started contact with `target` (friend request, follow, DM, invite, mention, reply)."""

    type: Literal["contact_requested"] = "contact_requested"
    source: Id
    target: Id
    kind: ContactKind
    request_id: Id | None = None


class ContactAnswered(BaseEvent):
    """`target` answered (or never answered) a request from `source`."""

    type: Literal["contact_answered"] = "contact_answered"
    source: Id
    target: Id
    answer: Answer
    request_id: Id | None = None


def _clip(event: BaseModel) -> None:
    """Cut a just-validated message's text to MAX_TEXT_CHARS (the model is frozen once built)."""
    object.__setattr__(event, "text", event.text[:MAX_TEXT_CHARS])  # type: ignore[attr-defined]


class MessageSent(BaseEvent):
    """A message in a conversation; `private` is a DM or a room with only the listed recipients."""

    type: Literal["message_sent"] = "message_sent"
    message_id: Id
    author: Id
    conversation: Id
    private: bool = False
    recipients: tuple[Id, ...] = ()
    text: RawText = ""
    reply_to: Id | None = None
    truncated: bool = False
    #: Accounts the message names on purpose (Discord mentions, Matrix `m.mentions` or pills), author excluded.
    mentions: tuple[Id, ...] = ()
    #: Who wrote the message `reply_to` points at, when the adapter knows it (the store is asked otherwise).
    reply_to_author: Id | None = None

    @model_validator(mode="after")
    def _clip_text(self) -> Self:
        # Clipped text is flagged, so moderators and detectors know they saw only the start. Done after
        # validation: a "before" validator would make pydantic turn every message's JSON into a dict first.
        if len(self.text) > MAX_TEXT_CHARS:
            _clip(self)
            object.__setattr__(self, "truncated", True)
            self.__pydantic_fields_set__.add("truncated")
        return self


class MessageEdited(BaseEvent):
    """A message's text changed; detectors see the new text."""

    type: Literal["message_edited"] = "message_edited"
    message_id: Id
    author: Id
    conversation: Id
    text: RawText = ""

    @model_validator(mode="after")
    def _clip_text(self) -> Self:
        if len(self.text) > MAX_TEXT_CHARS:
            _clip(self)
        return self


class MessageDeleted(BaseEvent):
    """A message was deleted; its stored text is erased too."""

    type: Literal["message_deleted"] = "message_deleted"
    message_id: Id
    conversation: Id
    author: Id | None = None


class ContentViewed(BaseEvent):
    """`viewer` saw content made by `author` (a post view, read receipt or reaction-like signal)."""

    type: Literal["content_viewed"] = "content_viewed"
    viewer: Id
    author: Id
    content_id: Id
    count: Annotated[int, Field(ge=1, le=10_000)] = 1


class ReactionAdded(BaseEvent):
    """`account` reacted to a message written by `author`."""

    type: Literal["reaction_added"] = "reaction_added"
    account: Id
    author: Id
    message_id: Id
    emoji: Annotated[str, StringConstraints(max_length=64)] = ""


class AgeDeclared(BaseEvent):
    """An account's age band, from a role, the user, a moderator or text inference."""

    type: Literal["age_declared"] = "age_declared"
    account: Id
    band: AgeBand
    age: Annotated[int, Field(ge=5, le=120)] | None = None
    source: AgeSource


class RegionDeclared(BaseEvent):
    """An account's region tag (a region role, room, or declared place) used to find shared context."""

    type: Literal["region_declared"] = "region_declared"
    account: Id
    region: Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True, to_lower=True)]


class StandingDeclared(BaseEvent):
    """An account is (or, with `held=False`, no longer is) a moderator, bot or room/space/server creator.

    Such accounts invite or admit everyone, so a contact they share with two people is no sign that
    those two know each other; `fan_out` and `new_account_contact` never count them as a mutual.
    `scope` says where the standing holds (a room or space id), for the record only.
    """

    type: Literal["standing_declared"] = "standing_declared"
    account: Id
    standing: StandingKind
    held: bool = True
    scope: Id | None = None


class ModeratorDecision(BaseEvent):
    """A moderator acted on a case; adapters emit it only after checking the moderator's rights."""

    type: Literal["moderator_decision"] = "moderator_decision"
    moderator: Id
    case_id: Annotated[int, Field(ge=1)]
    decision: Decision
    duration_minutes: Annotated[int, Field(ge=1, le=40_320)] | None = None
    note: Annotated[str, StringConstraints(max_length=1000)] = ""


Event = Annotated[
    MemberJoined
    | MemberLeft
    | ContactRequested
    | ContactAnswered
    | MessageSent
    | MessageEdited
    | MessageDeleted
    | ContentViewed
    | ReactionAdded
    | AgeDeclared
    | RegionDeclared
    | ModeratorDecision
    | StandingDeclared,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
_VALIDATE_JSON = EVENT_ADAPTER.validator.validate_json
EVENT_TYPES: dict[str, type[BaseEvent]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        MemberJoined,
        MemberLeft,
        ContactRequested,
        ContactAnswered,
        MessageSent,
        MessageEdited,
        MessageDeleted,
        ContentViewed,
        ReactionAdded,
        AgeDeclared,
        RegionDeclared,
        ModeratorDecision,
        StandingDeclared,
    )
}


class EventError(ValueError):
    """A payload that is not a valid event; `reason` is short and names the field at fault."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


def _describe(error: ValidationError) -> EventError:
    first = error.errors(include_url=False)[0]
    loc = [str(p) for p in first["loc"]]
    # The union tag appears as the first loc element; drop it so the field path reads naturally.
    if loc and loc[0] in EVENT_TYPES:
        loc = loc[1:]
    field = ".".join(loc) or None
    msg = first["msg"]
    if first["type"] == "union_tag_invalid":
        msg = f"unknown event type; expected one of: {', '.join(sorted(EVENT_TYPES))}"
        field = "type"
    elif first["type"] == "union_tag_not_found":
        msg = "missing 'type'"
        field = "type"
    elif first["type"] == "timezone_aware":
        msg = "timestamp needs a timezone, e.g. 2026-01-31T12:00:00Z"
    more = len(error.errors()) - 1
    suffix = f" (+{more} more)" if more > 0 else ""
    return EventError(f"{field}: {msg}{suffix}" if field else f"{msg}{suffix}", field)


_SURROGATE_ESCAPE_RE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


# -- the fast path -------------------------------------------------------------------------------------------
# Every event but a moderator's decision (rare, and its case id has no upper bound), decoded and checked by
# msgspec. A line is taken here only when the event is certainly the one pydantic would build: anything
# msgspec refuses or that pydantic would change (whitespace around an id, text past MAX_TEXT_CHARS, a time
# not in UTC) goes to pydantic, which builds it or says why not in its own words. The gain is mostly the
# body, written here once (docs/scaling.md, seventh round). tests/test_fast_events.py holds the two paths
# equal. Bodies are written by msgspec on both paths (`_dump`): an event's stored text does not depend on
# its path.

_FastId = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
_FastIds = tuple[_FastId, ...]


class _Fast(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type"):
    """`BaseEvent` as msgspec decodes it; `at` stays text, for `_parse_utc` (what pydantic runs first too)."""

    event_id: _FastId
    platform: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    community: _FastId
    at: str


class _FastMessageSent(_Fast, tag="message_sent"):
    message_id: _FastId
    author: _FastId
    conversation: _FastId
    private: bool = False
    recipients: _FastIds = ()
    text: Annotated[str, msgspec.Meta(max_length=MAX_TEXT_CHARS)] = ""
    reply_to: _FastId | None = None
    truncated: bool = False
    mentions: _FastIds = ()
    reply_to_author: _FastId | None = None


class _FastContentViewed(_Fast, tag="content_viewed"):
    viewer: _FastId
    author: _FastId
    content_id: _FastId
    count: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 1


class _FastReactionAdded(_Fast, tag="reaction_added"):
    account: _FastId
    author: _FastId
    message_id: _FastId
    emoji: Annotated[str, msgspec.Meta(max_length=64)] = ""


class _FastContactRequested(_Fast, tag="contact_requested"):
    source: _FastId
    target: _FastId
    kind: ContactKind
    request_id: _FastId | None = None


class _FastContactAnswered(_Fast, tag="contact_answered"):
    source: _FastId
    target: _FastId
    answer: Answer
    request_id: _FastId | None = None


class _FastAgeDeclared(_Fast, tag="age_declared", kw_only=True):
    account: _FastId
    band: AgeBand
    age: Annotated[int, msgspec.Meta(ge=5, le=120)] | None = None
    source: AgeSource


class _FastMemberJoined(_Fast, tag="member_joined"):
    account: _FastId
    account_created_at: str | None = None


class _FastMemberLeft(_Fast, tag="member_left"):
    account: _FastId


class _FastMessageEdited(_Fast, tag="message_edited"):
    message_id: _FastId
    author: _FastId
    conversation: _FastId
    text: Annotated[str, msgspec.Meta(max_length=MAX_TEXT_CHARS)] = ""


class _FastMessageDeleted(_Fast, tag="message_deleted"):
    message_id: _FastId
    conversation: _FastId
    author: _FastId | None = None


class _FastStandingDeclared(_Fast, tag="standing_declared"):
    account: _FastId
    standing: StandingKind
    held: bool = True
    scope: _FastId | None = None


class _FastRegionDeclared(_Fast, tag="region_declared"):
    account: _FastId
    #: pydantic strips and lowers it: only plain lower-case ASCII is taken here (`_FastPlan.lowered`).
    region: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class _FastPlan:
    """How one decoded struct becomes its model: the model, its tag, the id fields pydantic would strip."""

    __slots__ = ("fields_set", "id_lists", "ids", "lowered", "model", "order", "tag", "times")

    def __init__(self, struct: type[_Fast], model: type[BaseEvent]) -> None:
        fields = msgspec.structs.fields(struct)
        self.model = model
        self.tag = struct.__struct_config__.tag
        self.ids = tuple(f.name for f in fields if f.type in (_FastId, _FastId | None))
        self.id_lists = tuple(f.name for f in fields if f.type == _FastIds)
        #: Times besides `at` (text, or None): read as `at` is.
        self.times = tuple(f.name for f in fields if f.name.endswith("_at") and f.name != "at")
        #: Text pydantic strips and lowers (a region): taken here only when plain lower-case ASCII already.
        self.lowered = tuple(name for name, field in model.model_fields.items() if _lowers(field))
        # Every field counts as set (pydantic records the given ones; nothing reads it of an event). Each event
        # gets a copy: one changed in place must not change the others.
        self.fields_set = frozenset(model.model_fields)
        #: The model's fields in its own order (`type` after `at`), values to come: a dict updated from the
        #: struct keeps this order, so repr, model_dump and the body of a copy read as pydantic's do.
        self.order = dict.fromkeys(model.model_fields)


def _lowers(field: Any) -> bool:
    """Whether a model field's constraints lower-case its text (pydantic's `to_lower`)."""
    return any(getattr(m, "to_lower", False) for m in field.metadata)


_FAST_STRUCTS: dict[type[_Fast], type[BaseEvent]] = {
    _FastMessageSent: MessageSent,
    _FastContentViewed: ContentViewed,
    _FastReactionAdded: ReactionAdded,
    _FastContactRequested: ContactRequested,
    _FastContactAnswered: ContactAnswered,
    _FastAgeDeclared: AgeDeclared,
    _FastMemberJoined: MemberJoined,
    _FastMemberLeft: MemberLeft,
    _FastMessageEdited: MessageEdited,
    _FastMessageDeleted: MessageDeleted,
    _FastStandingDeclared: StandingDeclared,
    _FastRegionDeclared: RegionDeclared,
}
_FAST_PLANS = {struct: _FastPlan(struct, model) for struct, model in _FAST_STRUCTS.items()}
_FAST_DECODE = msgspec.json.Decoder(Union[tuple(_FAST_STRUCTS)]).decode  # noqa: UP007 - a union built at run time
_FAST_ENCODE = msgspec.json.Encoder().encode
_AS_DICT = msgspec.structs.asdict
_PLATFORM_RE = re.compile(r"[a-z0-9_.-]+")
#: Platform names already matched against `_PLATFORM_RE` (a handful in any deployment; bounded all the same).
_GOOD_PLATFORMS: set[str] = set()
_NEW = object.__new__
# The model's slots, set straight through their descriptors (a third cheaper than object.__setattr__).
_SET_DICT = BaseModel.__dict__["__dict__"].__set__
_SET_FIELDS_SET = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_SET_EXTRA = BaseModel.__dict__["__pydantic_extra__"].__set__
_SET_PRIVATE = BaseModel.__dict__["__pydantic_private__"].__set__


def _decode_fast(data: str | bytes) -> BaseEvent | None:
    """The event a line holds, when msgspec shows pydantic would build exactly it; None leaves it to pydantic.

    The result is the model pydantic builds, field for field; it also carries its body (`BaseEvent.body`,
    the text `_dump` writes) and, where the line wrote `at` as `iso_utc` does, that text as `at_iso`.
    """
    kind = data.__class__
    if kind is not bytes and kind is not str:
        return None  # a subclass, a bytearray or a memoryview: pydantic says what it makes of them
    try:
        struct = _FAST_DECODE(data)
    except (msgspec.DecodeError, UnicodeError):
        # ValidationError is a DecodeError, and so is a lone surrogate escape; a str holding a lone surrogate
        # cannot be encoded at all: pydantic words each.
        return None
    plan = _FAST_PLANS[struct.__class__]
    fields = plan.order.copy()
    fields.update(_AS_DICT(struct))
    # pydantic strips whitespace around ids (str.strip returns the string itself when there is none, and
    # strips a superset of what pydantic strips): any to strip goes to pydantic.
    for name in plan.ids:
        value = fields[name]
        if value is not None and value.strip() is not value:
            return None
    for name in plan.id_lists:
        for value in fields[name]:
            if value.strip() is not value:
                return None
    for name in plan.lowered:
        value = fields[name]
        if not (value.isascii() and value.strip() is value and value.lower() == value):
            return None
    platform = fields["platform"]
    if platform not in _GOOD_PLATFORMS:
        if _PLATFORM_RE.fullmatch(platform) is None:
            return None
        if len(_GOOD_PLATFORMS) < 1024:
            _GOOD_PLATFORMS.add(platform)
    text = fields["at"]
    at = _parse_utc(text)
    if at.__class__ is not datetime or at < EARLIEST:
        return None
    for name in plan.times:
        if (value := fields[name]) is not None:
            if (when := _parse_utc(value)).__class__ is not datetime or when < EARLIEST:
                return None
            fields[name] = when
    fields["at"] = at
    fields["type"] = plan.tag
    # The model's fields and nothing else so far: the same text `_dump` writes for an event pydantic built.
    fields["body"] = _FAST_ENCODE(fields).decode()
    if text[10] == "T" and text.endswith("+00:00") and (len(text) == 25 or (len(text) == 32 and at.microsecond)):
        fields["at_iso"] = text
    event = _NEW(plan.model)
    _SET_DICT(event, fields)
    _SET_FIELDS_SET(event, set(plan.fields_set))
    _SET_EXTRA(event, None)
    _SET_PRIVATE(event, None)
    return event


def parse_event(data: str | bytes | dict[str, Any]) -> Event:
    """Validate one event from JSON text or a dict; raises EventError with a readable reason."""
    try:
        if isinstance(data, dict):
            return EVENT_ADAPTER.validate_python(data)
        fast = _decode_fast(data)
        if fast is not None:
            return fast
        # The validator itself: TypeAdapter.validate_json's wrapper cost a tenth of every line replayed.
        return _VALIDATE_JSON(data)  # type: ignore[no-any-return]
    except ValidationError as error:
        if isinstance(data, str | bytes) and error.errors()[0]["type"] == "json_invalid":
            message = str(error.errors()[0]["msg"])
            if "escape" in message and _SURROGATE_ESCAPE_RE.search(data if isinstance(data, bytes) else data.encode()):
                raise EventError(
                    "text holds a lone UTF-16 surrogate escape (\\ud800-\\udfff), which is not valid Unicode: "
                    "send the character as UTF-8 or as a complete surrogate pair"
                ) from None
            raise EventError(f"not valid JSON: {message}") from None
        raise _describe(error) from None
    except (TypeError, UnicodeDecodeError) as error:
        raise EventError(f"unreadable payload: {error}") from None


def iso_utc(at: datetime) -> str:
    """A time as `datetime.isoformat()` writes it ("2026-01-31T12:00:00.250000+00:00"), a UTC one in a third
    of its time: every stored row's time is formatted this way (orjson's RFC 3339 text is the same)."""
    if at.tzinfo is not UTC:
        return at.isoformat()
    return orjson.dumps(at)[1:-1].decode()


def dump_event(event: BaseEvent) -> str:
    """The event as one JSON Lines record: every field, defaults too, that `parse_event` reads back equal.

    Every stored event is written this way, so it is written once per event (`BaseEvent.body`); one that
    `parse_event` took on its fast path brings it along, in the same text.
    """
    return event.body  # type: ignore[no-any-return]


def _dump(event: BaseEvent) -> str:
    """The fields, in the model's order, as msgspec writes them (a UTC time with "Z", as pydantic does; 0.3 µs,
    a fifth less than orjson). What it refuses, if anything ever is, goes to pydantic's serializer."""
    fields = event.__dict__.copy()
    for name in _once.names:
        fields.pop(name, None)
    try:
        return _FAST_ENCODE(fields).decode()
    except (TypeError, msgspec.EncodeError):
        return event.__pydantic_serializer__.to_json(event).decode()


def same_event(body: str, event: BaseEvent) -> bool:
    """Whether a stored body is this event: the same text, or (a body written by an earlier version, in
    pydantic's own JSON) text that reads back as an equal event."""
    if body == dump_event(event):
        return True
    try:
        return parse_event(body) == event
    except EventError:
        return False


def event_json_schema() -> dict[str, Any]:
    """JSON Schema of the event union (what `groomguard schema` prints)."""
    return EVENT_ADAPTER.json_schema()


def schema_text() -> str:
    return json.dumps(event_json_schema(), indent=2)
