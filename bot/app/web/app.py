"""The web case view's server: aiohttp routes for sign-in, the queue, a case, decisions and reveals.

Decisions go through the engine as `ModeratorDecision` events, exactly like a Discord button or a Matrix
reaction, so they are audited and change the case the same way. Reveals and sign-ins are audited through
`Engine.audit`. A request without a live session gets a redirect to sign-in and nothing else.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from groomguard import pictures, workspace
from groomguard.app.web import auth, pages
from groomguard.cases import recommended_action, risk_band
from groomguard.config import Settings
from groomguard.engine import Engine
from groomguard.events import Decision

log = logging.getLogger(__name__)

SESSION_COOKIE = "gg_session"
#: Cookie for the CSRF token of the sign-in forms (before there is a session).
SIGNIN_COOKIE = "gg_signin"
#: Cases the queue shows (highest stored risk first); `groomguard cases list` reaches the rest.
QUEUE_LIMIT = 200
MAX_FORM_BYTES = 16 * 1024
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
STATUS_FILTERS = {
    "active": ("open", "escalated", "confirmed"),
    "open": ("open",),
    "escalated": ("escalated",),
    "confirmed": ("confirmed",),
    "dismissed": ("dismissed",),
    "banned": ("banned",),
    "all": (),
}
DECISION_CHOICES = {"confirm": Decision.CONFIRM, "dismiss": Decision.DISMISS, "escalate": Decision.ESCALATE}

#: Where sign-in may send a browser next: a path on this site (never "//host" or "/\\host", which leave it).
LOCAL_PATH = re.compile(r"^/(?![/\\])[A-Za-z0-9/_.?=&%-]*$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WebView:
    """The aiohttp application around one engine; `clock` is injectable so tests can expire sessions."""

    def __init__(self, settings: Settings, engine: Engine, clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self.web = settings.web
        self.engine = engine
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.sessions = auth.Sessions(self.web, self.clock)
        self.failures = auth.FailureLimit()
        self.secure_cookies = self.web.public_url.startswith("https://")
        self._runner: web.AppRunner | None = None

    # -- application ----------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_FORM_BYTES, middlewares=[self._headers])
        app.add_routes(
            [
                web.get("/static/web.css", self.stylesheet),
                web.get("/signin", self.signin_form),
                web.post("/signin", self.signin_token),
                web.get("/signin/link", self.link_form),
                web.post("/signin/link", self.signin_link),
                web.post("/signout", self.signout),
                web.get("/", self.queue),
                web.get("/cases/{id}", self.case),
                web.get("/cases/{id}/graph.svg", self.graph_svg),
                web.get("/cases/{id}/graph.png", self.graph_png),
                web.post("/cases/{id}/decide", self.decide),
                web.post("/cases/{id}/reveal", self.reveal),
            ]
        )
        return app

    async def start(self) -> None:
        """Serve on [web] host:port (access log off: one-time link tokens travel in a query string)."""
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.web.host, self.web.port)
        await site.start()
        log.info("web case view on %s", self.web.base_url())

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _headers(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as error:
            for name, value in SECURITY_HEADERS.items():
                error.headers.setdefault(name, value)
            raise
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    # -- helpers --------------------------------------------------------------------------

    def _html(self, text: str, status: int = 200) -> web.Response:
        return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")

    def _session(self, request: web.Request) -> auth.Session | None:
        return self.sessions.get(request.cookies.get(SESSION_COOKIE))

    def _to_signin(self, request: web.Request) -> web.Response:
        """The only answer a request without a session gets: the same redirect, whatever it asked for."""
        path = request.path if request.method == "GET" else "/"
        return web.Response(status=303, headers={"Location": pages.signin_redirect(path)})

    def _cookie(self, response: web.StreamResponse, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=self.secure_cookies,
        )

    def _same_origin(self, request: web.Request) -> bool:
        """A form post must come from this site: Origin (when the browser sends it) names our host."""
        origin = request.headers.get("Origin")
        if origin is None or origin == "null":
            return origin is None
        return origin.split("://", 1)[-1] == request.host

    async def _form(self, request: web.Request) -> dict[str, str]:
        try:
            data = await request.post()
        except (ValueError, web.HTTPRequestEntityTooLarge):
            raise web.HTTPBadRequest(text="form too large or malformed") from None
        return {k: v for k, v in data.items() if isinstance(v, str)}

    def _client(self, request: web.Request) -> str:
        return request.remote or "unknown"

    async def _audit(
        self, actor: str, action: str, detail: dict[str, Any], community: str | None = None, case_id: int | None = None
    ) -> None:
        await self.engine.audit(self.clock(), actor, action, detail, community=community, case_id=case_id)

    @staticmethod
    def actor(moderator: str) -> str:
        """How a web moderator appears in the audit trail and on the platform's card."""
        return f"web:{moderator}"

    def _presign(self, request: web.Request) -> str:
        return request.cookies.get(SIGNIN_COOKIE) or auth.new_token()

    def _signin_response(self, request: web.Request, html: str, status: int = 200) -> web.Response:
        token = self._presign(request)
        response = self._html(html.replace("__PRESIGN__", token), status)
        self._cookie(response, SIGNIN_COOKIE, token, 600)
        return response

    def _signed_in(self, moderator: str, next_path: str) -> web.Response:
        session = self.sessions.create(moderator)
        target = next_path if LOCAL_PATH.match(next_path) else "/"
        response = web.Response(status=303, headers={"Location": target})
        self._cookie(response, SESSION_COOKIE, session.id, int(self.web.session_minutes * 60))
        response.del_cookie(SIGNIN_COOKIE, path="/")
        return response

    def _check_presign(self, request: web.Request, form: dict[str, str]) -> bool:
        cookie = request.cookies.get(SIGNIN_COOKIE, "")
        return bool(cookie) and auth.same(cookie, form.get("csrf", "")) and self._same_origin(request)

    # -- sign-in and out ------------------------------------------------------------------

    async def stylesheet(self, request: web.Request) -> web.Response:
        return web.Response(text=pages.STYLE, content_type="text/css", headers={"Cache-Control": "max-age=3600"})

    async def _signin_gate(self, request: web.Request, client: str) -> tuple[dict[str, str], web.Response | None]:
        """The checks every sign-in POST passes first: the failure rate limit, then the pre-sign-in CSRF token."""
        if self.failures.blocked(client):
            error = "Too many failed sign-ins; wait a few minutes."
            return {}, self._signin_response(request, pages.signin("__PRESIGN__", error=error), 429)
        form = await self._form(request)
        if not self._check_presign(request, form):
            error = "The form expired; try again."
            return form, self._signin_response(request, pages.signin("__PRESIGN__", error=error), 403)
        return form, None

    async def signin_form(self, request: web.Request) -> web.Response:
        if self._session(request) is not None:
            return web.Response(status=303, headers={"Location": "/"})
        return self._signin_response(request, pages.signin("__PRESIGN__", request.query.get("next", "/")))

    async def signin_token(self, request: web.Request) -> web.Response:
        client = self._client(request)
        form, refused = await self._signin_gate(request, client)
        if refused is not None:
            return refused
        moderator = auth.moderator_for_token(self.web, form.get("token", ""))
        if moderator is None:
            self.failures.failed(client)
            await self._audit("web", "web_signin_refused", {"via": "token", "client": client})
            return self._signin_response(
                request, pages.signin("__PRESIGN__", form.get("next", "/"), error="That token is not valid."), 403
            )
        await self._audit(self.actor(moderator), "web_signed_in", {"via": "token"})
        return self._signed_in(moderator, form.get("next", "/"))

    async def link_form(self, request: web.Request) -> web.Response:
        token = request.query.get("token", "")
        if not token:
            return web.Response(status=303, headers={"Location": "/signin"})
        return self._signin_response(request, pages.link_confirm("__PRESIGN__", token))

    async def signin_link(self, request: web.Request) -> web.Response:
        client = self._client(request)
        form, refused = await self._signin_gate(request, client)
        if refused is not None:
            return refused
        token = form.get("token", "")
        now = self.clock()
        moderator = await self.engine.store_write(lambda store: store.take_web_link(auth.digest(token), now))
        if moderator is None or moderator not in self.web.moderators:
            self.failures.failed(client)
            await self._audit("web", "web_signin_refused", {"via": "link", "client": client})
            return self._signin_response(
                request,
                pages.signin(
                    "__PRESIGN__",
                    error="This sign-in link has already been used or has expired. Ask for a new one.",
                ),
                403,
            )
        await self._audit(self.actor(moderator), "web_signed_in", {"via": "link"})
        return self._signed_in(moderator, "/")

    async def signout(self, request: web.Request) -> web.Response:
        session = self._session(request)
        if session is None:
            return self._to_signin(request)
        form = await self._form(request)
        if not self._csrf_ok(request, session, form):
            return self._csrf_refused(session)
        self.sessions.end(session.id)
        await self._audit(self.actor(session.moderator), "web_signed_out", {})
        response = self._signin_response(request, pages.signin("__PRESIGN__", notice="You are signed out."))
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    def _csrf_ok(self, request: web.Request, session: auth.Session, form: dict[str, str]) -> bool:
        return auth.same(session.csrf, form.get("csrf", "")) and self._same_origin(request)

    def _csrf_refused(self, session: auth.Session) -> web.Response:
        log.warning("web form from %s refused: missing or wrong CSRF token", session.moderator)
        return self._html(
            pages.message_page(
                "Request refused",
                "This form was not sent from your GroomGuard page (its security token is missing or wrong). "
                "Nothing was changed. Reload the case and try again.",
                session.moderator,
                session.csrf,
            ),
            403,
        )

    # -- pages ----------------------------------------------------------------------------

    def _now_for(self, community: str, fallback: datetime) -> datetime:
        return max(fallback, self.engine.community_now(community) or fallback)

    async def _visible_case(
        self, session: auth.Session, raw_id: str
    ) -> tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]:
        """The case if this moderator may see it; any other id (missing, another community) is the same 404."""
        if not raw_id.isdigit() or len(raw_id) > 12:
            raise self._not_found(session)
        found = await self.engine.store.get_case(int(raw_id))
        if found is None or not self.web.moderators[session.moderator].sees(found[0].community):
            raise self._not_found(session)
        return found

    def _not_found(self, session: auth.Session) -> web.HTTPNotFound:
        return web.HTTPNotFound(
            text=pages.message_page(
                "No such case", "There is no case with that number.", session.moderator, session.csrf
            ),
            content_type="text/html",
        )

    async def queue(self, request: web.Request) -> web.Response:
        session = self._session(request)
        if session is None:
            return self._to_signin(request)
        status = request.query.get("status", "active")
        wanted = STATUS_FILTERS.get(status, STATUS_FILTERS["active"])
        moderator = self.web.moderators[session.moderator]
        half_life = self.settings.cases.half_life_hours
        rows: list[pages.QueueRow] = []
        for row in await self.engine.store.list_cases(None, QUEUE_LIMIT * 5):
            if wanted and row["status"] not in wanted:
                continue
            if not moderator.sees(row["community"]):
                continue
            found = await self.engine.store.get_case(int(row["id"]))
            if found is None:
                continue
            case = found[0]
            risk = case.risk(self._now_for(case.community, case.updated_at), half_life)
            rows.append(
                pages.QueueRow(
                    id=case.id,
                    community=case.community,
                    suspect=case.suspect,
                    status=case.status,
                    risk=risk,
                    peak=max(case.peak_risk, risk),
                    signals=[pages.signal(d) for d, _ in sorted(case.reasons.items(), key=lambda kv: -kv[1]["score"])],
                    children=len(case.children),
                    updated_at=case.updated_at,
                )
            )
            if len(rows) >= QUEUE_LIMIT:
                break
        rows.sort(key=lambda r: (-round(r.risk, 6), -r.peak, r.id))
        return self._html(
            pages.queue(rows, status if status in STATUS_FILTERS else "active", session.moderator, session.csrf)
        )

    async def case(self, request: web.Request) -> web.Response:
        session = self._session(request)
        if session is None:
            return self._to_signin(request)
        case, findings, audit = await self._visible_case(session, request.match_info["id"])
        if case.id not in session.opened:
            session.opened.add(case.id)
            await self._audit(self.actor(session.moderator), "web_case_opened", {}, case.community, case.id)
            audit = (await self.engine.store.get_case(case.id) or (case, findings, audit))[2]
        half_life = self.settings.cases.half_life_hours
        risk = case.risk(self._now_for(case.community, case.updated_at), half_life)
        revealed = session.revealed.get(case.id, set())
        labels = pictures.child_labels(case.children)
        masker = pages.Masker(labels, revealed)
        graph = await pictures.contact_graph(self.engine.store, case)  # type: ignore[arg-type]
        names = {child: child for child in revealed}
        timeline_svg = ""
        if pictures.has_view_spike(case):
            timeline = await pictures.view_timeline(self.engine.store, case)  # type: ignore[arg-type]
            timeline_svg = pictures.to_svg(pictures.timeline_scene(timeline), "view-timeline")
        ordered = sorted(case.reasons.items(), key=lambda kv: -kv[1]["score"])
        done = request.query.get("done", "")
        view = pages.CasePage(
            id=case.id,
            community=case.community,
            platform=case.platform,
            suspect=case.suspect,
            status=case.status,
            risk=risk,
            peak=max(case.peak_risk, risk),
            band=risk_band(risk),
            recommended=recommended_action(risk, case.status, case.reasons),
            opened_at=case.opened_at,
            updated_at=case.updated_at,
            reasons=[(d, r["text"], float(r["score"])) for d, r in ordered],
            findings=findings,
            children=[pages.ChildRow(n.label, n.account, n.how, n.answer, n.account in revealed) for n in graph.nodes],
            audit=audit,
            graph_svg=pictures.to_svg(pictures.graph_scene(graph, names), "contact-graph")
            if graph.nodes or graph.others
            else "",
            timeline_svg=timeline_svg,
            done=f"{pages.DONE[done]}. The decision is in the case history."
            if done in pages.DONE
            else ("Revealed; this is recorded in the case history." if done == "reveal" else ""),
            error="That case is already closed; nothing was changed." if request.query.get("error") == "closed" else "",
            masker=masker,
        )
        return self._html(pages.case_page(view, session.moderator, session.csrf))

    async def graph_svg(self, request: web.Request) -> web.Response:
        session = self._session(request)
        if session is None:
            return self._to_signin(request)
        case, _, _ = await self._visible_case(session, request.match_info["id"])
        graph = await pictures.contact_graph(self.engine.store, case)  # type: ignore[arg-type]
        return web.Response(text=pictures.to_svg(pictures.graph_scene(graph)), content_type="image/svg+xml")

    async def graph_png(self, request: web.Request) -> web.Response:
        """The card picture of a case, as the alert cards carry it."""
        session = self._session(request)
        if session is None:
            return self._to_signin(request)
        case, _, _ = await self._visible_case(session, request.match_info["id"])
        picture = await pictures.card_picture(self.engine.store, case)  # type: ignore[arg-type]
        if picture is None:
            raise self._not_found(session)
        return web.Response(body=picture.png, content_type="image/png")

    # -- actions --------------------------------------------------------------------------

    async def _case_post(self, request: web.Request) -> tuple[auth.Session, dict[str, str], Any] | web.Response:
        """What every form on a case page passes first: a session, its CSRF token, a case this moderator may see."""
        session = self._session(request)
        if session is None:
            return self._to_signin(request)
        form = await self._form(request)
        if not self._csrf_ok(request, session, form):
            return self._csrf_refused(session)
        case, _, _ = await self._visible_case(session, request.match_info["id"])
        return session, form, case

    async def decide(self, request: web.Request) -> web.Response:
        posted = await self._case_post(request)
        if isinstance(posted, web.Response):
            return posted
        session, form, case = posted
        decision = DECISION_CHOICES.get(form.get("decision", ""))
        if decision is None:
            raise web.HTTPBadRequest(text="choose confirm, dismiss or escalate")
        try:
            await workspace.decide(
                self.engine,
                case.id,
                decision,
                self.actor(session.moderator),
                form.get("note", "")[: workspace.MAX_NOTE],
                community=case.community,
                at=self._decision_time(case.community),
            )
        except workspace.DecisionRefused:
            return web.Response(status=303, headers={"Location": f"/cases/{case.id}?error=closed"})
        log.info("web: %s decided %s on case %s", session.moderator, decision.value, case.id)
        return web.Response(status=303, headers={"Location": f"/cases/{case.id}?done={decision.value}"})

    def _decision_time(self, community: str) -> datetime:
        """Now, but never before the community's latest event (a decision must not predate what it judges)."""
        now = self.clock()
        latest = self.engine.community_now(community)
        limit = now + timedelta(seconds=self.settings.engine.max_future_seconds)
        return min(limit, max(now, latest)) if latest else now

    async def reveal(self, request: web.Request) -> web.Response:
        posted = await self._case_post(request)
        if isinstance(posted, web.Response):
            return posted
        session, form, case = posted
        by_label = {label: child for child, label in pictures.child_labels(case.children).items()}
        child = by_label.get(form.get("child", ""))
        if child is None:
            raise web.HTTPBadRequest(text="no such child on this case")
        session.revealed.setdefault(case.id, set()).add(child)
        await self._audit(
            self.actor(session.moderator),
            "web_child_revealed",
            {"child": form["child"], "account": child},
            case.community,
            case.id,
        )
        return web.Response(status=303, headers={"Location": f"/cases/{case.id}?done=reveal#graph-h"})


__all__ = ["WebView"]
