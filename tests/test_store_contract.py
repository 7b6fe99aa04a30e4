"""The store contract, run against both backends: SQLite files and a real PostgreSQL server.

Every test here takes `backend` and runs twice. What only one backend has stays beside it: erasure to the
bytes and file permissions in test_erasure.py and test_store.py (SQLite), the processing lease, several
engines on one database and the doctor in tests/postgres/test_pg_store.py. Reference outcomes always come
from a fresh SQLite run, so the PostgreSQL run is also checked against SQLite.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from groomguard.actions import ModAlert
from groomguard.app.runtime import build_engine
from groomguard.config import Settings
from groomguard.detectors.base import Detector
from groomguard.engine import Engine
from groomguard.events import AgeBand, BaseEvent, parse_event
from groomguard.store import open_store
from groomguard.store.postgres import migrations as pg_migrations
from groomguard.store.sqlite import migrations as sqlite_migrations
from groomguard.testing import EventFactory, MemorySink, make_settings, running_engine
from groomguard.testing.simulate import CommunitySpec, generate


@dataclass
class Backend:
    """One backend under test: builds engines on its store and reads its rows through the dialect layer."""

    name: str
    path: Path
    url: str | None

    def settings(self, **overrides: Any) -> Settings:
        settings = make_settings(self.path, **overrides)
        settings.store.database_url = self.url
        return settings

    def engine(
        self,
        sink: MemorySink | None = None,
        clock: Callable[[], datetime] | None = None,
        detectors: list[Detector] | None = None,
        **overrides: Any,
    ) -> Engine:
        return build_engine(self.settings(**overrides), [sink or MemorySink()], clock=clock, detectors=detectors)

    def migrations(self) -> list[tuple[int, str]]:
        return pg_migrations() if self.url else sqlite_migrations()

    async def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Rows of one `$n` statement on a connection of its own (the engine may be running)."""
        db = open_store(self.settings().store).tables()
        await db.open()
        try:
            return [tuple(r) for r in await db.fetch(sql, *args)]
        finally:
            await db.close()

    async def value(self, sql: str, *args: Any) -> Any:
        """The first column of the first row, or None when there is no row."""
        rows = await self.rows(sql, *args)
        return rows[0][0] if rows else None

    async def tables(self) -> list[str]:
        db = open_store(self.settings().store).tables()
        await db.open()
        try:
            return [*await db.table_names(), "meta", "schema_version"]
        finally:
            await db.close()

    async def indexes(self) -> list[str]:
        """Names of the store's indexes (the schema's own; not those behind primary keys)."""
        if self.url:
            sql = "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
        else:
            sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        return [r[0] for r in await self.rows(sql)]

    async def scan(self, hit: Callable[[Any], bool]) -> list[tuple[str, tuple[Any, ...]]]:
        """Every (table, row) of every table with a value for which `hit` is true."""
        found = []
        for table in await self.tables():
            for row in await self.rows(f'SELECT * FROM "{table}"'):
                if any(hit(v) for v in row):
                    found.append((table, row))
        return found


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The backend under test: an empty SQLite file, or an empty database on the real PostgreSQL server."""
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    return Backend(request.param, tmp_path / "store.db", url)


def _stream(seed: int = 11) -> list[BaseEvent]:
    events, truth = generate(CommunitySpec(seed=seed))
    assert truth.groomers
    return events


def _unnumbered(action_id: str, suspect: str | None) -> str:
    """An alert's id with its case number replaced by the suspect: PostgreSQL numbers cases per partition
    (groomguard.store.partitions.CaseIds), SQLite one after another, and the rest of the id is the same."""
    kind, _, rest = action_id.partition(":")
    if kind != "alert" or suspect is None:
        return action_id
    community, _case, version = rest.rsplit(":", 2)
    return f"alert:{community}:{suspect}:{version}"


async def outcome(b: Backend) -> dict[str, Any]:
    """What a run leaves in the store, comparable across backends (seq numbers and ids of rows excluded)."""
    return {
        "events": (await b.rows("SELECT COUNT(*), COUNT(DISTINCT key) FROM events"))[0],
        "cases": sorted(
            (r[0], r[1], r[2], round(float(r[3]), 6), r[4], r[5], r[6])
            for r in await b.rows(
                "SELECT community, suspect, status, risk, alert_version, children, reasons FROM cases"
            )
        ),
        "findings": await b.rows(
            "SELECT detector, community, suspect, score, reason, event_key FROM findings ORDER BY id"
        ),
        "actions": sorted(
            _unnumbered(*r)
            for r in await b.rows("SELECT a.id, c.suspect FROM actions a LEFT JOIN cases c ON c.id = a.case_id")
        ),
        "contacts": await b.value("SELECT COUNT(*) FROM contacts"),
        "views": sorted(await b.rows("SELECT community, viewer, hour, to_minors, total FROM views")),
    }


async def sqlite_reference(tmp_path: Path, events: Sequence[BaseEvent]) -> dict[str, Any]:
    reference = Backend("sqlite", tmp_path / "reference.db", None)
    async with running_engine(reference.path) as (engine, _):
        await engine.ingest(list(events))
    result = await outcome(reference)
    assert result["cases"], "the planted groomers should open cases"
    return result


async def test_migrations_apply_once(backend: Backend) -> None:
    for _ in range(2):
        store = open_store(backend.settings().store)
        await store.open()
        await store.close()
    versions = [r[0] for r in await backend.rows("SELECT version FROM schema_version ORDER BY version")]
    assert versions == [v for v, _ in backend.migrations()]
    assert {"events", "accounts", "contacts", "requests", "views", "conversations", "findings", "cases"} | {
        "actions",
        "audit",
        "detector_memory",
        "standings",
        "message_turns",
        "discord_cards",
        "matrix_sync",
    } <= set(await backend.tables())


async def test_a_database_of_an_older_version_is_migrated_and_keeps_its_rows(backend: Backend) -> None:
    """A store left at migration 004 by an older release gets 005 to 009 at the next start, rows untouched."""
    events = _stream()
    half = len(events) // 2
    engine = backend.engine()
    await engine.start()
    try:
        await engine.ingest(events[:half])
    finally:
        await engine.stop()
    before = await outcome(backend)
    assert backend.migrations()[-1][0] == 9, "a new migration: undo it below too, to get back to 004"
    db = open_store(backend.settings().store).tables()
    await db.open()
    try:  # back to what version 004 left: no adapter tables (005), no notice stage (006), no partitions (007)
        # and the two indexes 008 drops
        await db.execute("CREATE INDEX message_turns_author ON message_turns(community, author)")
        await db.execute("CREATE INDEX views_hour ON views(hour)")
        if backend.url:  # before 007 the one processing engine kept its watermark in meta
            for name, column in (("watermark", "MAX(watermark)::text"), ("watermark_at", "MAX(watermark_at)")):
                await db.execute(
                    f"INSERT INTO meta VALUES ($1, (SELECT {column} FROM partitions)) "
                    "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    name,
                )
            await db.execute("DELETE FROM meta WHERE name = 'partitions'")
            await db.execute("DROP TABLE partitions")
            await db.execute("DROP TABLE engine_members")
            await db.execute("ALTER TABLE events DROP COLUMN part")
        for table in ("discord_cards", "discord_done", "matrix_sync", "matrix_cards", "matrix_delivered"):
            await db.execute(f"DROP TABLE {table}")
        for table in ("matrix_dms", "matrix_invites", "matrix_prompts", "matrix_mutes"):
            await db.execute(f"DROP TABLE {table}")
        await db.execute("ALTER TABLE notices DROP COLUMN stage")
        if backend.url:  # 009 sets byte order on text; before it, text took the database's collation
            await db.execute('ALTER TABLE message_turns ALTER COLUMN message_id TYPE text COLLATE "default"')
        await db.execute("DELETE FROM schema_version WHERE version > 4")
    finally:
        await db.close()
    engine = backend.engine()
    await engine.start()
    try:
        assert engine.stats.processed == 0, "nothing was left unprocessed"
        assert await outcome(backend) == before
        await engine.ingest(events)
        assert engine.stats.duplicates == half
    finally:
        await engine.stop()
    assert [r[0] for r in await backend.rows("SELECT version FROM schema_version ORDER BY version")][-5:] == [
        5,
        6,
        7,
        8,
        9,
    ]
    indexes = set(await backend.indexes())
    assert "message_turns_recent" in indexes and not {"message_turns_author", "views_hour"} & indexes
    assert await backend.value("SELECT COUNT(*) FROM discord_cards") == 0


@pytest.mark.parametrize("text", ["plain", "nul \x00 inside", "\u200b\u202e" * 1000, "x" * 9_000])
async def test_append_is_idempotent_and_keeps_any_text(backend: Backend, ev: EventFactory, text: str) -> None:
    store = open_store(backend.settings().store)
    await store.open()
    try:
        a, b = ev.message("x", "one"), ev.message("x", text)
        first = await store.append_events([a, b, a])
        again = await store.append_events([b, a])
        assert [e.key for _, e in first] == [a.key, b.key]
        assert [seq for seq, _ in first] == sorted({seq for seq, _ in first})
        assert again == []
        assert (await store.counts())["events"] == 2
        bodies = [r[0] for r in await backend.rows("SELECT body FROM events ORDER BY seq")]
        assert [parse_event(body) for body in bodies] == [a, b]
        assert await store.known_keys([a.key, "nope"]) == {a.key}  # type: ignore[attr-defined]
        assert set(await store.known_bodies([b.key, "nope"])) == {b.key}  # type: ignore[attr-defined]
    finally:
        await store.close()


async def test_same_outcome_as_sqlite_in_any_batching(backend: Backend, tmp_path: Path) -> None:
    events = _stream()
    reference = await sqlite_reference(tmp_path, events)
    engine = backend.engine()
    await engine.start()
    try:
        for start in range(0, len(events), 500):
            await engine.ingest(events[start : start + 500])
        await engine.drain()
    finally:
        await engine.stop()
    assert await outcome(backend) == reference


async def test_restart_mid_replay_loses_and_doubles_nothing(backend: Backend, tmp_path: Path) -> None:
    events = _stream()
    reference = await sqlite_reference(tmp_path, events)
    # Run 1 processes 40 %, then 10 % more is stored but not processed, then the process "dies".
    cut, stored_only = int(len(events) * 0.4), int(len(events) * 0.5)
    engine = backend.engine()
    await engine.start()
    await engine.ingest(events[:cut])
    await engine.store.append_events(events[cut:stored_only])
    await engine.store.close()  # no drain, no graceful stop
    # Run 2 resumes from the watermark, then the producer re-sends everything (at-least-once delivery).
    again = backend.engine()
    await again.start()
    try:
        assert again.stats.processed == stored_only - cut
        await again.ingest(events)
        assert again.stats.duplicates == stored_only
    finally:
        await again.stop()
    assert await outcome(backend) == reference


async def test_a_commit_the_database_refuses_rolls_back_and_resumes(backend: Backend, ev: EventFactory) -> None:
    """The database itself refuses the batch (a trigger stands in for a full disk): nothing of it stays."""
    events = [ev.adult("g"), *(ev.minor(f"k{i}") for i in range(6)), *(ev.contact("g", f"k{i}") for i in range(6))]
    if backend.url:
        refuse = [
            "CREATE FUNCTION gg_refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'no space left on device'; END $$",
            "CREATE TRIGGER refuse BEFORE INSERT ON cases FOR EACH ROW EXECUTE FUNCTION gg_refuse()",
        ]
        allow = ["DROP TRIGGER refuse ON cases", "DROP FUNCTION gg_refuse()"]
    else:
        refuse = ["CREATE TRIGGER refuse BEFORE INSERT ON cases BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"]
        allow = ["DROP TRIGGER refuse"]
    engine = backend.engine()
    await engine.start()
    try:
        for sql in refuse:
            await backend.rows(sql)
        with pytest.raises(Exception, match=r"no space left|disk I/O error"):
            await engine.ingest(events)
    finally:
        await engine.store.close()
    # The batch that opened the case is gone as a whole: no case, and its contact edges are not kept.
    assert await backend.value("SELECT COUNT(*) FROM cases") == 0
    watermark = int(await backend.value("SELECT value FROM meta WHERE name = 'watermark'") or 0)
    top = await backend.value("SELECT MAX(seq) FROM events")
    assert watermark < top
    for sql in allow:
        await backend.rows(sql)
    again = backend.engine()
    await again.start()
    try:
        assert again.stats.processed > 0
    finally:
        await again.stop()
    assert await backend.value("SELECT COUNT(*) FROM cases") == 1
    assert await backend.value("SELECT COUNT(*) FROM contacts") == 6


async def test_forget_erases_every_trace(backend: Backend, ev: EventFactory) -> None:
    events = [ev.adult("suspect"), ev.region("suspect", "north")]
    for i in range(12):
        events += [ev.minor(f"kid{i}"), ev.contact("suspect", f"kid{i}"), ev.answer("suspect", f"kid{i}", "rejected")]
    events += [
        ev.message("suspect", "hello there", conversation="dm1", private=True, recipients=("kid0",)),
        ev.view("suspect", "kid1"),
    ]
    engine = backend.engine(sink := MemorySink())
    await engine.start()
    try:
        await engine.ingest(events)
        await engine.drain()
        assert any(getattr(a, "suspect", None) == "suspect" for a in sink.actions)
        assert await backend.scan(lambda v: isinstance(v, str) and "suspect" in v)
        removed = await engine.forget("suspect")
        assert removed["events"] == len(events) - 12  # only the kids' own age events stay
        assert removed["cases"] == 1
        assert (await engine.state.account("test-community", "suspect")).band is AgeBand.UNKNOWN
    finally:
        await engine.stop()
    # The audit log keeps that an erasure happened, never whose.
    assert await backend.scan(lambda v: isinstance(v, str) and "suspect" in v) == []
    assert await backend.value("SELECT COUNT(*) FROM audit WHERE action = 'forget'") == 1


async def test_forget_a_child_scrubs_them_from_other_accounts_cases(backend: Backend, ev: EventFactory) -> None:
    events = [ev.adult("suspect")]
    for i in range(12):
        events += [ev.minor(f"kid{i}"), ev.contact("suspect", f"kid{i}")]
    engine = backend.engine()
    await engine.start()
    try:
        await engine.ingest(events)
        await engine.drain()
        await engine.forget("kid5")
        card = engine.cases.render(engine.cases.active[("test-community", "suspect")], ev.tick())
    finally:
        await engine.stop()
    assert "kid5" not in card.model_dump_json()
    assert await backend.scan(lambda v: (isinstance(v, str) and '"kid5"' in v) or v == "kid5") == []
    # The suspect's case survives the child's erasure.
    assert await backend.value("SELECT COUNT(*) FROM cases WHERE suspect = 'suspect'") == 1


async def test_forget_a_child_leaves_the_id_in_no_column_and_twice_is_consistent(backend: Backend) -> None:
    """Issue 12: conversation ids, request refs, other suspects' reasons and detector memory."""
    from tests.test_erasure import KID, OTHER, _scenario

    engine = backend.engine()
    await engine.start()
    try:
        await engine.ingest(_scenario(EventFactory()))
        await engine.drain()
        assert await backend.scan(lambda v: KID in str(v))
        assert await engine.forget(KID)
        assert await engine.forget(KID) == {}
        assert KID not in str(engine.cases.active[("test-community", OTHER)].reasons)
    finally:
        await engine.stop()
    assert await backend.scan(lambda v: KID in str(v)) == []
    assert await backend.value("SELECT COUNT(*) FROM cases WHERE suspect = $1", OTHER) == 1


KID_A, KID_B, PAL = "kidzqa", "kidzqb", "palzq7"  # ids that no other id contains


def _twin_kids(ev: EventFactory) -> list[BaseEvent]:
    """Rows that differ only in which kid they name: after both kids are erased they would be one row."""
    from tests.test_erasure import SUSPECT

    events: list[BaseEvent] = [ev.adult(SUSPECT), ev.minor(KID_A), ev.minor(KID_B), ev.minor(PAL)]
    for kid in (KID_A, KID_B):
        conversation = f"dm-{SUSPECT}-{kid}"
        events.append(ev.message(SUSPECT, "hi there", conversation=conversation, private=True, recipients=(kid,)))
        events.append(ev.message(kid, "hey", conversation=conversation, private=True, recipients=(SUSPECT,)))
        # Two requests to the same child whose ids differ only in the kid they came through.
        events.append(ev.contact(SUSPECT, PAL, request_id=f"via-{kid}"))
    # A conversation between the two kids: the first erasure leaves a row the second one rewrites again.
    events.append(ev.message(KID_A, "yo", conversation=f"dm-{KID_A}-{KID_B}", private=True, recipients=(KID_B,)))
    return events


async def _twin_adapter_rows(engine: Engine) -> None:
    """Adapter and detector rows keyed by an id naming each kid (delivery markers, a pair-keyed memory)."""
    db = engine.adapter_tables()
    await db.open()
    try:
        for kid in (KID_A, KID_B):
            await db.execute("INSERT INTO discord_done VALUES ($1, $2)", f"notice:ev9:{kid}", "2026-03-02T00:00:00")
            await db.execute("INSERT INTO matrix_delivered VALUES ($1, $2, $3)", f"notice:ev9:{kid}", "$e", "t")
            # A detector that failed to list the kid in `accounts`: the sweep is the safety net.
            await db.execute(
                "INSERT INTO detector_memory (detector, community, key, value) VALUES ('probe', $1, $2, '{}')",
                "test-community",
                f"pair|{kid}",
            )
    finally:
        await db.close()


async def test_forget_two_kids_whose_rows_collide_after_erasure(backend: Backend) -> None:
    """Erasing rewrites ids inside keys (conversation, request and action ids): two rows that differ only in
    the erased kid must neither collide (PostgreSQL: unique violation) nor merge into one (SQLite's UPDATE
    OR REPLACE dropped the other row), and forgetting either kid again finds nothing."""
    from tests.test_erasure import SUSPECT

    def named(v: Any) -> bool:
        return KID_A in str(v) or KID_B in str(v)

    engine = backend.engine()
    await engine.start()
    try:
        await engine.ingest(_twin_kids(EventFactory()))
        await engine.drain()
        await _twin_adapter_rows(engine)
        mine = "SELECT conversation FROM conversations WHERE substr(conversation, 1, $1) = $2"
        prefix = f"dm-{SUSPECT}-"
        assert len(await backend.rows(mine, len(prefix), prefix)) == 2
        assert await backend.value("SELECT COUNT(*) FROM requests WHERE source = $1", SUSPECT) == 2
        assert await engine.forget(KID_A)
        assert await engine.forget(KID_B)
        assert await engine.forget(KID_A) == {}
        assert await engine.forget(KID_B) == {}
    finally:
        await engine.stop()
    assert await backend.scan(named) == [], "an erased id is left in some column"
    if backend.url is None:  # the bytes of the file, its WAL and shm (PostgreSQL: dead rows wait for VACUUM)
        from tests.test_erasure import _raw

        assert KID_A.encode() not in _raw(backend.path) and KID_B.encode() not in _raw(backend.path)
    # The suspect's two conversations stay two, and their messages still point at them.
    conversations = [r[0] for r in await backend.rows(mine, len(prefix), prefix)]
    assert len(set(conversations)) == 2
    pointed = await backend.rows("SELECT conversation FROM messages WHERE author = $1", SUSPECT)
    assert sorted(r[0] for r in pointed) == sorted(conversations)
    # Both of the suspect's requests to the pal are kept, as two requests.
    assert await backend.value("SELECT COUNT(DISTINCT request_id) FROM requests WHERE source = $1", SUSPECT) == 2
    # Delivery markers stay apart (one per action, so a redelivery is still recognised).
    assert await backend.value("SELECT COUNT(DISTINCT action_id) FROM discord_done") == 2
    assert await backend.value("SELECT COUNT(DISTINCT action_id) FROM matrix_delivered") == 2
    # A memory row keyed by a pair with an erased kid is about that kid: it goes.
    assert await backend.value("SELECT COUNT(*) FROM detector_memory WHERE detector = 'probe'") == 0
    # The kids' own conversation is kept once, with neither kid in it.
    assert await backend.value("SELECT COUNT(*) FROM conversations") == 3


async def test_forget_in_one_community_keeps_the_account_elsewhere(backend: Backend) -> None:
    one, two = EventFactory(community="one", platform="p1"), EventFactory(community="two", platform="p2")
    events = [one.adult("roamer"), one.minor("kid"), one.contact("roamer", "kid")]
    events += [two.adult("roamer"), two.minor("kid"), two.contact("roamer", "kid")]
    engine = backend.engine()
    await engine.start()
    try:
        await engine.ingest(events)
        removed = await engine.forget("roamer", community="one")
        assert removed["accounts"] == 1 and removed["contacts"] == 1
    finally:
        await engine.stop()
    assert await backend.rows("SELECT community FROM accounts WHERE account = 'roamer'") == [("two",)]
    assert await backend.rows("SELECT community FROM contacts WHERE source = 'roamer'") == [("two",)]


async def test_retention_purges_old_text_but_not_unprocessed_events(backend: Backend, ev: EventFactory) -> None:
    old = ev.message("a", "old words", conversation="dm", private=True, recipients=("b",))
    old_view = ev.view("a", "b")
    ev.tick(days=40)
    new = ev.message("a", "new words", conversation="dm", private=True, recipients=("b",))
    new_view = ev.view("a", "b")
    # Retention runs on the wall clock, pinned here to the newer message's time.
    retention = {"store__message_retention_days": 30, "store__event_retention_days": 90}
    engine = backend.engine(clock=lambda: new.at, **retention)
    await engine.start()
    try:
        await engine.ingest([old, old_view, new, new_view])
        removed = await engine.purge()
    finally:
        await engine.stop()
    assert removed["messages"] == 1 and removed["event_text"] == 1
    # Who viewed whom, hour by hour, goes with message text (past view_spike's 14-day history).
    assert removed["views"] == 1
    assert await backend.rows("SELECT hour FROM views") == [(int(new_view.at.timestamp()) // 3600,)]
    assert await backend.rows("SELECT text FROM messages") == [("new words",)]
    bodies = [r[0] for r in await backend.rows("SELECT body FROM events WHERE type = 'message_sent' ORDER BY seq")]
    assert "old words" not in bodies[0] and "new words" in bodies[1]


async def test_only_text_worth_keeping_is_stored(backend: Backend, ev: EventFactory) -> None:
    from groomguard.events import MessageEdited

    public = ev.message("adult", "public chatter")
    to_minor = ev.message("adult", "hi there", recipients=("kid",))
    private = ev.message("adult", "a dm", conversation="dm", private=True, recipients=("friend",))
    common = {"platform": ev.platform, "community": ev.community, "author": "adult", "conversation": "general"}
    edit_public = MessageEdited(
        event_id="edit1", at=ev.tick(), message_id=public.message_id, text="edited chatter", **common
    )
    edit_kept = MessageEdited(
        event_id="edit2", at=ev.tick(), message_id=to_minor.message_id, text="hi there (edited)", **common
    )
    engine = backend.engine()
    await engine.start()
    try:
        await engine.ingest([ev.minor("kid"), public, to_minor, private, edit_public, edit_kept])
    finally:
        await engine.stop()
    assert sorted(r[0] for r in await backend.rows("SELECT text FROM messages")) == ["a dm", "hi there (edited)"]


async def test_a_message_deleted_and_sent_again_in_one_transaction_is_kept(backend: Backend, ev: EventFactory) -> None:
    """Deletions are written before the batch's messages and turns, so a re-sent id survives (both backends)."""
    from groomguard.events import MessageDeleted

    first = ev.message("adult", "first words", recipients=("kid",))
    gone = MessageDeleted(
        event_id="del1",
        platform=ev.platform,
        community=ev.community,
        at=ev.tick(),
        message_id=first.message_id,
        conversation=first.conversation,
    )
    again = first.model_copy(update={"event_id": "again", "at": ev.tick(), "text": "said again"})
    engine = backend.engine()
    await engine.start()
    try:
        await engine.ingest([ev.minor("kid"), first])
        await engine.ingest([gone, again])
    finally:
        await engine.stop()
    assert await backend.rows("SELECT message_id, text FROM messages") == [(first.message_id, "said again")]
    assert await backend.rows("SELECT message_id, at FROM message_turns") == [(first.message_id, again.at_iso)]


async def test_cases_audit_and_outbox_round_trip(backend: Backend, ev: EventFactory) -> None:
    events = [ev.adult("g"), *(ev.minor(f"k{i}") for i in range(6)), *(ev.contact("g", f"k{i}") for i in range(6))]
    engine = backend.engine(sink := MemorySink())
    await engine.start()
    try:
        await engine.ingest(events)
        await engine.drain()
        listed = await engine.store.list_cases()
        assert [(c["suspect"], c["status"]) for c in listed] == [("g", "open")]
        assert await engine.store.list_cases("dismissed") == []
        case_id = listed[0]["id"]
        await engine.store.audit(ev.tick(), "mod1", "note", {"text": "looked"}, community=ev.community, case_id=case_id)
        found = await engine.store.get_case(case_id)
        assert found is not None and await engine.store.get_case(case_id + 1000) is None
        case, findings, audit = found
        assert case.suspect == "g" and "fan_out" in {f["detector"] for f in findings}
        assert [(a["actor"], a["action"]) for a in audit] == [("mod1", "note")]
        assert sink.of(ModAlert) and await engine.store.pending_actions() == []
    finally:
        await engine.stop()
    undelivered = await backend.value("SELECT COUNT(*) FROM actions WHERE delivered_at IS NULL")
    assert undelivered == 0


async def test_detector_memory_survives_a_restart(backend: Backend) -> None:
    """Issue 12: view_spike's firing mark is committed with the batch and restored."""
    from groomguard.detectors.view_spike import ViewSpikeDetector, ViewSpikeSettings

    f = EventFactory()
    kids = [f"kid{i}" for i in range(6)]
    events: list[BaseEvent] = [f.adult("watcher"), *(f.minor(k) for k in kids)]
    for h in range(24):  # a quiet baseline, then a burst hour
        events.append(f.view("watcher", kids[h % 6], at=f.tick(hours=1)))
    burst = f.tick(hours=1).replace(minute=0)
    events += [f.view("watcher", kids[i % 5], at=burst.replace(minute=i // 60, second=i % 60)) for i in range(40)]

    def engine() -> Engine:
        return backend.engine(detectors=[ViewSpikeDetector(ViewSpikeSettings())])

    first = engine()
    await first.start()
    try:
        for event in events[:-10]:
            await first.ingest([event])
        assert first.stats.findings == 1
        rows = await first.store.memory_rows("view_")  # type: ignore[attr-defined]
        assert [(r.detector, r.key, r.accounts) for r in rows] == [("view_spike", "watcher", ("watcher",))]
        row = await first.store.memory_row("view_spike", "test-community", "watcher")  # type: ignore[attr-defined]
        assert row is not None and row.value == rows[0].value
    finally:
        await first.stop()
    second = engine()
    await second.start()
    try:
        for event in events[-10:]:
            await second.ingest([event])
        assert second.stats.findings == 0, "the restarted detector fired again in the same hour"
    finally:
        await second.stop()
    rows = await backend.rows("SELECT detector, key, accounts FROM detector_memory WHERE detector = 'view_spike'")
    assert rows == [("view_spike", "watcher", '["watcher"]')]


async def test_layout_and_addressing_state(backend: Backend) -> None:
    """Issue 13: standings survive a restart, hubs are counted by degree, group messages resolve replies
    and turns, and forget and retention remove what addressing remembers."""
    from groomguard.addressing import addressees

    from tests.test_layout import ADULT, MOD, hub_layout

    ev = EventFactory()
    setup = hub_layout(ev, declare="moderator")
    dms = [e for e in setup if getattr(e, "kind", None) is not None and e.kind.value == "dm"]  # type: ignore[attr-defined]
    said = ev.message("@kid0:hs", "anyone on?")
    reply = ev.message(ADULT, "me", reply_to=said.message_id)
    # Retention runs on the wall clock (issue 12): the engines' "now" follows the scenario instead.
    now = [reply.at + timedelta(hours=1)]
    engine = backend.engine(clock=lambda: now[0])
    await engine.start()
    try:
        await engine.ingest([e for e in setup if e not in dms] + [said, reply])
        assert await engine.state.accepted_degree("test-community", MOD) == 9
    finally:
        await engine.stop()
    engine = backend.engine(sink := MemorySink(), clock=lambda: now[0])
    await engine.start()
    try:
        assert (await engine.state.account("test-community", MOD)).standings == frozenset({"moderator"})
        assert await engine.state.message_author("test-community", said.message_id) == "@kid0:hs"
        assert [(a.account, a.how) for a in await addressees(reply, engine.state)] == [("@kid0:hs", "reply")]
        await engine.ingest(dms)
        await engine.drain()
        assert {a.suspect for a in sink.of(ModAlert)} == {ADULT}
        removed = await engine.forget("@kid0:hs")
        assert removed["message_turns"] == 1
        assert (await engine.forget(MOD))["standings"] == 1
        later = ev.message("@kid1:hs", "later", at=ev.tick(days=340))
        now[0] = reply.at + timedelta(days=366)  # tests keep 365 days of messages
        await engine.ingest([later])
        await engine.purge()  # the adult's reply is past retention now (the engine may have purged already)
        assert await engine.state.message_author("test-community", reply.message_id) is None
        assert await engine.state.message_author("test-community", later.message_id) == "@kid1:hs"
    finally:
        await engine.stop()


async def test_the_dialect_layer_answers_alike(backend: Backend) -> None:
    """Each SQL builder of groomguard.store.db, on a scratch table: both dialects give the same answers."""
    db = open_store(backend.settings().store).tables()
    await db.open()
    try:
        await db.execute("CREATE TABLE scratch (k TEXT PRIMARY KEY, n INTEGER NOT NULL, doc TEXT NOT NULL)")
        docs = {
            "a": '{"who": "kid1", "to": ["kid2", "kid3"], "text": "hi"}',
            "b": '{"who": "adult", "to": "kid2", "text": ""}',
            "c": '"2026-03-01T00:00:00+00:00"',
            "d": '["kid3"]',
        }
        await db.insert_rows(
            "scratch", ("k", "n", "doc"), ("text", "bigint", "text"), [(k, 1, v) for k, v in docs.items()]
        )
        await db.insert_rows(
            "scratch", ("k", "n", "doc"), ("text", "bigint", "text"), [("a", 9, "{}"), ("e", 1, "{}")], "(k) DO NOTHING"
        )
        assert await db.fetchval("SELECT n FROM scratch WHERE k = 'a'") == 1  # the conflict kept the first row

        async def keys(condition: str, *args: Any) -> list[str]:
            return [r[0] for r in await db.fetch(f"SELECT k FROM scratch WHERE {condition} ORDER BY k", *args)]

        assert await keys(f"k IN ('a', 'b') AND {db.json_text('doc', 'who')} = $1", "kid1") == ["a"]
        # A non-array field holds nothing; a top-level array is searched without a field.
        assert await keys(f"k IN ('a', 'b') AND {db.json_has('doc', 'to', '$1')}", "kid2") == ["a"]
        assert await keys(f"k = 'd' AND {db.json_has('doc', None, '$1')}", "kid3") == ["d"]
        assert (
            await db.fetchval(f"SELECT {db.json_scalar('doc')} FROM scratch WHERE k = 'c'")
            == "2026-03-01T00:00:00+00:00"
        )
        assert await keys(f"{db.contains('doc', '$1')}", '"kid3"') == ["a", "d"]
        assert await keys(f"{db.contains('doc', '$1')}", "%") == []  # no LIKE wildcards
        # Numbered placeholders may repeat; list parameters bind from the number given.
        assert await keys("k = $1 OR doc = $1", "b") == ["b"]
        condition, args = db.in_list("k", 2, ["a", "c", "zz"])
        assert await keys(f"n = $1 AND {condition}", 1, *args) == ["a", "c"]
        condition, args = db.in_list("k", 1, [])
        assert await keys(condition, *args) == []
        await db.execute(
            f"UPDATE scratch SET doc = {db.json_blank('doc', 'text')} WHERE k = 'a' AND {db.json_text('doc', 'text')} <> ''"
        )
        assert await db.fetchval(f"SELECT {db.json_text('doc', 'text')} FROM scratch WHERE k = 'a'") == ""
        assert await db.fetchval(f"SELECT {db.json_text('doc', 'who')} FROM scratch WHERE k = 'a'") == "kid1"
        columns, ident = await db.table_columns("scratch")
        assert columns == ["k", "n", "doc"] and len(ident) == 1
        assert "scratch" in await db.table_names()
        # Text NUL survives as far as each database allows: SQLite keeps it, PostgreSQL gets U+FFFD.
        await db.execute("INSERT INTO scratch VALUES ($1, 2, $2)", "nul", "a\x00b")
        assert await db.fetchval("SELECT doc FROM scratch WHERE k = 'nul'") == db.stored_text("a\x00b")
        with pytest.raises(Exception, match="refused"):
            async with db.transaction():
                await db.execute("DELETE FROM scratch")
                raise RuntimeError("refused")
        assert await db.fetchval("SELECT COUNT(*) FROM scratch") == 6  # the transaction rolled back
    finally:
        await db.close()


async def test_a_web_link_works_once_and_expires(backend: Backend) -> None:
    """One-time web sign-in links: kept by hash, usable once, refused after expiry, swept when stale."""
    from groomguard.app.web import auth

    store = open_store(backend.settings().store)
    await store.open()
    now = datetime(2026, 3, 5, 12, tzinfo=UTC)
    try:
        token, old = auth.new_token(), auth.new_token()
        await store.put_web_link(auth.digest(token), "alice", now + timedelta(minutes=15))
        await store.put_web_link(auth.digest(old), "bob", now - timedelta(minutes=1))
        assert await store.take_web_link(auth.digest("guess"), now) is None
        assert await store.take_web_link(auth.digest(old), now) is None, "expired"
        assert await store.take_web_link(auth.digest(token), now) == "alice"
        assert await store.take_web_link(auth.digest(token), now) is None, "used"
        # Erasing a moderator takes their unused links too (meta is outside forget's sweep of tables).
        await store.put_web_link(auth.digest(auth.new_token()), "modzq1", now + timedelta(minutes=15))
        assert (await store.forget("modzq1"))["web links"] == 1
    finally:
        await store.close()
    assert await backend.rows("SELECT name FROM meta WHERE substr(name, 1, 9) = 'web_link:'") == []
    assert await backend.scan(lambda v: "modzq1" in str(v)) == []
