"""The web case view over HTTP: sign-in (token, one-time link), sessions, CSRF, decisions, reveals, who sees what."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import ClientResponse, CookieJar
from aiohttp.test_utils import TestClient, TestServer
from groomguard.actions import ModAlert
from groomguard.app.runtime import build_engine
from groomguard.app.web import WebView, auth
from groomguard.config import ConfigError, WebModerator, load_settings
from groomguard.engine import Engine
from groomguard.testing import MemorySink, make_settings
from web_scenario import KIDS, communities

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdef-xyz"


class Client(TestClient):  # type: ignore[type-arg]
    """A test client that leaves the shared server running when it closes (several clients per test)."""

    async def close(self) -> None:
        if not self._closed:
            await self._session.close()
            self._closed = True


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 5, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Site:
    engine: Engine
    view: WebView
    sink: MemorySink
    clock: Clock
    server: TestServer
    db: Path

    async def client(self) -> TestClient:
        client = Client(self.server, cookie_jar=CookieJar(unsafe=True))
        await client.start_server()
        return client


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    db = tmp_path / "web.db"
    settings = make_settings(db)
    settings.web.moderators = {
        "alice": WebModerator(token=ALICE),  # type: ignore[arg-type]
        "bob": WebModerator(token_sha256=auth.digest(BOB), communities=["club"]),
    }
    settings.web.session_minutes = 30
    sink = MemorySink()
    clock = Clock()
    engine = build_engine(settings, [sink], clock=clock)
    await engine.start()
    for event in communities():
        await engine.submit(event)
    await engine.drain()
    view = WebView(settings, engine, clock=clock)
    server = TestServer(view.app())
    await server.start_server()
    try:
        yield Site(engine, view, sink, clock, server, db)
    finally:
        await server.close()
        await engine.stop()


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "form without a CSRF token"
    return found.group(1)


async def sign_in(client: TestClient, token: str = ALICE, next_path: str = "/") -> ClientResponse:
    form = await client.get(f"/signin?next={next_path}", allow_redirects=False)
    html = await form.text()
    return await client.post(
        "/signin", data={"csrf": csrf(html), "token": token, "next": next_path}, allow_redirects=False
    )


def audit(db: Path) -> list[tuple[str, str, int | None, dict]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT actor, action, case_id, detail FROM audit ORDER BY id").fetchall()
    return [(a, b, c, json.loads(d)) for a, b, c, d in rows]


def case_ids_in_order(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<a href="/cases/(\d+)">Case #', html)]


async def test_without_a_session_every_page_is_the_same_redirect(site: Site) -> None:
    client = await site.client()
    try:
        answers = []
        for method, path in (
            ("GET", "/"),
            ("GET", "/cases/1"),
            ("GET", "/cases/999"),
            ("GET", "/cases/1/graph.png"),
            ("POST", "/cases/1/decide"),
            ("POST", "/cases/1/reveal"),
        ):
            response = await client.request(method, path, allow_redirects=False, data={"decision": "dismiss"})
            body = await response.text()
            answers.append((response.status, response.headers["Location"].split("?")[0], body))
            assert response.headers["Cache-Control"] == "no-store"
            assert "default-src 'none'" in response.headers["Content-Security-Policy"]
        assert {a[:2] for a in answers} == {(303, "/signin")}
        assert all(a[2] == "" for a in answers), "a redirect without a session must carry no content"
        page = await (await client.get("/cases/1")).text()  # followed: the sign-in page
        assert "Sign in" in page and "groomer" not in page and "kid0" not in page
    finally:
        await client.close()
    # Nothing was decided.
    assert all(action != "dismiss" for _, action, _, _ in audit(site.db))


async def test_token_sign_in_sets_a_strict_http_only_session_and_is_audited(site: Site) -> None:
    client = await site.client()
    try:
        response = await sign_in(client, next_path="/cases/2")
        assert response.status == 303 and response.headers["Location"] == "/cases/2"
        cookie = response.headers.getall("Set-Cookie")
        session = next(c for c in cookie if c.startswith("gg_session="))
        assert "HttpOnly" in session and "SameSite=Strict" in session and "Max-Age=1800" in session
        page = await (await client.get("/cases/2")).text()
        assert "<h1>Case #2</h1>" in page and "Signed in as <strong>alice</strong>" in page
    finally:
        await client.close()
    assert ("web:alice", "web_signed_in", None, {"via": "token"}) in audit(site.db)


async def test_wrong_token_is_refused_then_rate_limited(site: Site) -> None:
    client = await site.client()
    try:
        response = await sign_in(client, token="not-the-token-at-all")
        assert response.status == 403
        assert "not valid" in await response.text()
        assert "gg_session" not in {c.key for c in client.session.cookie_jar}
        for _ in range(9):
            await sign_in(client, token="still-not-the-token")
        limited = await sign_in(client, token=ALICE)
        assert limited.status == 429, "after 10 failures even the right token waits"
    finally:
        await client.close()
    assert sum(1 for _, action, _, _ in audit(site.db) if action == "web_signin_refused") == 10


async def test_sign_in_form_without_its_csrf_token_is_refused(site: Site) -> None:
    client = await site.client()
    try:
        await client.get("/signin")
        response = await client.post("/signin", data={"token": ALICE, "csrf": "forged"}, allow_redirects=False)
        assert response.status == 403
        assert "gg_session" not in {c.key for c in client.session.cookie_jar}
    finally:
        await client.close()


async def test_one_time_link_signs_in_once(site: Site) -> None:
    token = auth.new_token()
    expires = site.clock.now + timedelta(minutes=15)
    await site.engine.store_write(lambda s: s.put_web_link(auth.digest(token), "alice", expires))
    first, second = await site.client(), await site.client()
    try:
        page = await (await first.get(f"/signin/link?token={token}")).text()
        assert "one-time link" in page
        used = await first.post("/signin/link", data={"csrf": csrf(page), "token": token}, allow_redirects=False)
        assert used.status == 303 and used.headers["Location"] == "/"
        assert "Case queue" in await (await first.get("/")).text()
        page = await (await second.get(f"/signin/link?token={token}")).text()
        again = await second.post("/signin/link", data={"csrf": csrf(page), "token": token}, allow_redirects=False)
        assert again.status == 403
        assert "already been used or has expired" in await again.text()
        assert (await second.get("/", allow_redirects=False)).status == 303
    finally:
        await first.close()
        await second.close()
    with sqlite3.connect(site.db) as conn:
        stored = [r[0] for r in conn.execute("SELECT name FROM meta WHERE name LIKE 'web_link:%'")]
    assert stored == [], "a used link is gone from the store"
    assert token not in site.db.read_bytes().decode("latin-1"), "the store never holds the token itself"


async def test_expired_link_is_refused(site: Site) -> None:
    token = auth.new_token()
    await site.engine.store_write(
        lambda s: s.put_web_link(auth.digest(token), "alice", site.clock.now + timedelta(minutes=15))
    )
    site.clock.now += timedelta(minutes=16)
    client = await site.client()
    try:
        page = await (await client.get(f"/signin/link?token={token}")).text()
        response = await client.post("/signin/link", data={"csrf": csrf(page), "token": token}, allow_redirects=False)
        assert response.status == 403
    finally:
        await client.close()


async def test_session_expires(site: Site) -> None:
    client = await site.client()
    try:
        await sign_in(client)
        assert (await client.get("/", allow_redirects=False)).status == 200
        site.clock.now += timedelta(minutes=29)
        assert (await client.get("/", allow_redirects=False)).status == 200
        site.clock.now += timedelta(minutes=2)
        gone = await client.get("/cases/1", allow_redirects=False)
        assert gone.status == 303 and gone.headers["Location"].startswith("/signin")
    finally:
        await client.close()
    assert len(site.view.sessions) == 0


async def test_sign_out_ends_the_session(site: Site) -> None:
    client = await site.client()
    try:
        await sign_in(client)
        page = await (await client.get("/")).text()
        out = await client.post("/signout", data={"csrf": csrf(page)}, allow_redirects=False)
        assert out.status == 200 and "You are signed out" in await out.text()
        assert (await client.get("/", allow_redirects=False)).status == 303
    finally:
        await client.close()
    assert "web_signed_out" in [a for _, a, _, _ in audit(site.db)]


async def test_decision_without_the_csrf_token_changes_nothing(site: Site) -> None:
    client = await site.client()
    try:
        await sign_in(client)
        page = await (await client.get("/cases/1")).text()
        for data, headers in (
            ({"decision": "dismiss", "note": "x"}, {}),
            ({"decision": "dismiss", "csrf": "wrong"}, {}),
            ({"decision": "dismiss", "csrf": csrf(page)}, {"Origin": "https://evil.example"}),
        ):
            response = await client.post("/cases/1/decide", data=data, headers=headers, allow_redirects=False)
            assert response.status == 403
            assert "Nothing was changed" in await response.text()
    finally:
        await client.close()
    case = site.engine.cases.by_id[1]
    assert case.status == "open"
    assert all(action != "dismiss" for _, action, _, _ in audit(site.db))


async def test_confirm_with_a_note_is_audited_like_a_button(site: Site) -> None:
    before = len(site.sink.actions)
    client = await site.client()
    try:
        await sign_in(client)
        page = await (await client.get("/cases/1")).text()
        response = await client.post(
            "/cases/1/decide",
            data={"csrf": csrf(page), "decision": "confirm", "note": "  eight cold friend requests,\n3 refused "},
            allow_redirects=False,
        )
        assert response.status == 303 and response.headers["Location"] == "/cases/1?done=confirm"
        page = await (await client.get(response.headers["Location"])).text()
        assert "Confirmed. The decision is in the case history." in page
        assert "eight cold friend requests, 3 refused" in page  # the history shows the note
    finally:
        await client.close()
    assert site.engine.cases.by_id[1].status == "confirmed"
    decisions = [(actor, detail) for actor, action, case, detail in audit(site.db) if action == "confirm"]
    assert decisions == [
        (
            "web:alice",
            {
                "note": "eight cold friend requests, 3 refused",
                "duration_minutes": None,
                "event": decisions[0][1]["event"],
            },
        )
    ]
    # The same effect as a button: the platform's card is edited at once, saying who acted.
    cards = [a for a in site.sink.actions[before:] if isinstance(a, ModAlert)]
    assert cards and cards[-1].status == "confirmed" and "confirm by a moderator" in cards[-1].changes[0]


async def test_closed_case_has_no_decision_form_and_refuses_a_late_post(site: Site) -> None:
    client = await site.client()
    try:
        await sign_in(client)
        page = await (await client.get("/cases/2")).text()
        token = csrf(page)
        await client.post("/cases/2/decide", data={"csrf": token, "decision": "dismiss"})
        page = await (await client.get("/cases/2")).text()
        assert 'id="decision-form"' not in page and "This case is closed (dismissed)" in page
        late = await client.post("/cases/2/decide", data={"csrf": token, "decision": "confirm"}, allow_redirects=False)
        assert late.headers["Location"] == "/cases/2?error=closed"
    finally:
        await client.close()
    assert site.engine.cases.by_id[2].status == "dismissed"


async def test_children_are_labels_until_revealed_and_the_reveal_is_audited(site: Site) -> None:
    client = await site.client()
    try:
        await sign_in(client)
        page = await (await client.get("/cases/1")).text()
        assert not any(kid in page for kid in KIDS), "no child's id before a reveal"
        assert "child A" in page and "child H" in page
        response = await client.post("/cases/1/reveal", data={"csrf": csrf(page), "child": "child C"})
        page = await response.text()
        assert "Revealed; this is recorded" in page
        assert KIDS[2] in page
        assert not any(kid in page for kid in KIDS if kid != KIDS[2])
        bad = await client.post("/cases/1/reveal", data={"csrf": csrf(page), "child": "child Z"})
        assert bad.status == 400
    finally:
        await client.close()
    reveals = [
        (actor, case, detail) for actor, action, case, detail in audit(site.db) if action == "web_child_revealed"
    ]
    assert reveals == [("web:alice", 1, {"child": "child C", "account": KIDS[2]})]
    # Another moderator's session has revealed nothing.
    other = await site.client()
    try:
        await sign_in(other)
        assert KIDS[2] not in await (await other.get("/cases/1")).text()
    finally:
        await other.close()


async def test_queue_is_sorted_by_risk_now_with_the_peak_beside_it(site: Site) -> None:
    client = await site.client()
    try:
        await sign_in(client)
        page = await (await client.get("/")).text()
    finally:
        await client.close()
    order = case_ids_in_order(page)
    assert sorted(order) == [1, 2, 3]
    half_life = site.engine.settings.cases.half_life_hours
    risks = []
    for case_id in order:
        case = site.engine.cases.by_id[case_id]
        risks.append(case.risk(site.engine.community_now(case.community) or case.updated_at, half_life))
    assert risks == sorted(risks, reverse=True)
    cells = re.findall(r'<td class="risk">([0-9.]+)</td><td>([0-9.]+)</td>', page)
    assert [float(now) for now, _ in cells] == [round(r, 2) for r in risks]
    assert all(float(peak) >= float(now) for now, peak in cells)
    # One risk number everywhere: the peak is the case's stored peak, as on the cards and in `cases list`.
    peaks = [max(site.engine.cases.by_id[i].peak_risk, r) for i, r in zip(order, risks, strict=True)]
    assert [float(peak) for _, peak in cells] == [round(p, 2) for p in peaks]


async def test_moderator_of_one_community_sees_only_its_cases(site: Site) -> None:
    client = await site.client()
    try:
        await sign_in(client, token=BOB)
        page = await (await client.get("/?status=all")).text()
        assert case_ids_in_order(page) == [3]
        hidden = await client.get("/cases/1")
        missing = await client.get("/cases/999")
        assert hidden.status == missing.status == 404
        assert "groomer" not in await hidden.text()
        page = await (await client.get("/cases/3")).text()
        refused = await client.post("/cases/1/decide", data={"csrf": csrf(page), "decision": "dismiss"})
        assert refused.status == 404
    finally:
        await client.close()
    assert site.engine.cases.by_id[1].status == "open"


async def test_view_spike_case_shows_the_view_timeline(site: Site) -> None:
    client = await site.client()
    try:
        await sign_in(client)
        spike = await (await client.get("/cases/2")).text()
        fan_out = await (await client.get("/cases/1")).text()
        png = await client.get("/cases/1/graph.png")
        assert png.content_type == "image/png" and (await png.read()).startswith(b"\x89PNG")
    finally:
        await client.close()
    assert '<h2 id="views-h">View timeline</h2>' in spike and 'id="view-timeline"' in spike
    assert "(flagged)" in spike
    assert "View timeline" not in fan_out and 'id="contact-graph"' in fan_out


def test_web_config_is_checked(tmp_path: Path) -> None:
    cfg = tmp_path / "g.toml"
    cfg.write_text(
        f'[web]\npublic_url = "mod.example.org"\n[web.moderators."bad name"]\ntoken = "{ALICE}"\n', encoding="utf-8"
    )
    with pytest.raises(ConfigError) as error:
        load_settings(cfg)
    assert {p.key for p in error.value.problems} == {"web.public_url", "web.moderators"}
    cfg.write_text('[web.moderators.alice]\ntoken = "short"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="at least 16 characters"):
        load_settings(cfg)
    cfg.write_text(
        '[web]\npublic_url = "https://mod.example.org/"\n[web.moderators.alice]\n'
        f'token_sha256 = "{auth.digest(ALICE)}"\n',
        encoding="utf-8",
    )
    settings = load_settings(cfg)
    assert settings.web.public_url == "https://mod.example.org"
    assert auth.moderator_for_token(settings.web, ALICE) == "alice"
    assert auth.moderator_for_token(settings.web, ALICE + "x") is None


async def test_sign_in_never_redirects_off_the_site(site: Site) -> None:
    for target in ("//evil.example/x", "/\\evil.example", "https://evil.example/"):
        client = await site.client()
        try:
            response = await sign_in(client, next_path=target)
            assert response.status == 303 and response.headers["Location"] == "/", target
        finally:
            await client.close()
