"""The review application: server-rendered pages over the warehouse (FastAPI, Jinja2).

Pages (all GET, read-only, the warehouse opened read-only per request): the queue, a pair
of records with its evidence, a person, a search. The only forms that write are the
decision forms (POST /decide); sign-in and sign-out change only the server's session
memory. Every form carries a CSRF token; every response forbids framing, caching and
loading anything from elsewhere (a strict content security policy with a nonce for the
page's own style and script), so it works offline and leaks nothing to the network.
"""

from __future__ import annotations

import logging
import secrets
from typing import Annotated, Any
from urllib.parse import urlencode

import duckdb
from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.middleware.base import BaseHTTPMiddleware

from linkage.review import DECISION_LABELS, DECISIONS, Shown, save_decision
from linkage.review_app.accounts import authenticate, find_reviewer
from linkage.review_app.context import ReviewContext
from linkage.review_app.evidence import pair_evidence
from linkage.review_app.graph import colour_of
from linkage.review_app.permissions import Viewer
from linkage.review_app.person import person_evidence, person_fate
from linkage.review_app.queue import QueueFilters, queue_item, queue_page, search
from linkage.review_app.sessions import LoginThrottle, Session, SessionStore, same_token
from linkage.review_app.web import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    guard_headers,
    link_to,
    local_target,
    probability_text,
    proxy_user,
    read_form,
    run_in_progress,
    set_session_cookie,
)
from linkage.warehouse import WarehouseUnavailable

log = logging.getLogger(__name__)

MAX_NOTE = 2000


class _Auth:
    """A signed-in request: its session and what its reviewer may see."""

    def __init__(self, session: Session, viewer: Viewer, new_cookie: bool) -> None:
        self.session, self.viewer, self.new_cookie = session, viewer, new_cookie


def create_app(context: ReviewContext) -> FastAPI:
    """The application over one project's warehouse."""
    settings = context.project.review
    sessions = SessionStore(
        idle=settings.session_idle_minutes * 60, lifetime=settings.session_max_hours * 3600
    )
    throttle = LoginThrottle()
    templates = Environment(
        loader=PackageLoader("linkage.review_app", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    templates.globals["decision_labels"] = DECISION_LABELS
    templates.globals["link"] = link_to
    templates.globals["url"] = link_to
    templates.filters["probability"] = probability_text
    templates.filters["weight"] = lambda value: f"{value:+.2f}"
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(BaseHTTPMiddleware, dispatch=guard_headers)

    def render(
        request: Request,
        template: str,
        auth: _Auth | None = None,
        status_code: int = 200,
        **values: Any,
    ) -> HTMLResponse:
        nonce = secrets.token_urlsafe(16)
        html = templates.get_template(template).render(
            nonce=nonce,
            viewer=auth.viewer if auth else None,
            csrf=auth.session.csrf if auth else "",
            proxy=bool(auth and auth.session.via_proxy),
            agency_colours=_colours(context, auth.viewer) if auth else {},
            **values,
        )
        response = HTMLResponse(html, status_code=status_code)
        response.headers["Content-Security-Policy"] = (
            f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}';"
            " img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        )
        if auth is not None and auth.new_cookie:
            set_session_cookie(response, auth.session, settings.secure_cookies)
        return response

    def signed_in(request: Request, con: duckdb.DuckDBPyConnection) -> _Auth | None:
        """The request's reviewer: by the proxy's header where configured and sent by a
        trusted proxy, else by the session cookie; None if neither, or the account is
        disabled or its role no longer configured."""
        cookie = request.cookies.get(SESSION_COOKIE)
        proxied = proxy_user(request, settings.proxy_user_header, settings.trusted_proxies)
        session = sessions.get(cookie)
        new_cookie = False
        if proxied is not None and (session is None or session.reviewer != proxied):
            sessions.end(cookie)
            session, new_cookie = sessions.start(proxied, via_proxy=True), True
        if session is None:
            return None
        reviewer = find_reviewer(con, session.reviewer)
        viewer = context.viewer(reviewer) if reviewer is not None else None
        if viewer is None:
            sessions.end(session.token)
            return None
        return _Auth(session, viewer, new_cookie)

    def to_login(request: Request) -> RedirectResponse:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)

    def not_found(request: Request, auth: _Auth, what: str) -> HTMLResponse:
        return render(
            request, "error.html.j2", auth, status_code=404, title="Not found", message=what
        )

    @app.exception_handler(WarehouseUnavailable)
    async def warehouse_busy(request: Request, error: WarehouseUnavailable) -> Response:
        log.warning("review: the warehouse is unavailable: %s", type(error).__name__)
        return render(
            request,
            "error.html.j2",
            status_code=503,
            title="The warehouse is busy",
            message="A nightly run (or another program) has the warehouse open. Nothing was"
            " changed; try again in a few minutes.",
        )

    @app.get("/healthz", response_class=PlainTextResponse)
    def healthz() -> str:
        return "ok"

    @app.get("/")
    def home() -> RedirectResponse:
        return RedirectResponse("/queue", status_code=303)

    @app.get("/login")
    def loginform(request: Request, next: str = "/queue") -> Response:
        token = secrets.token_urlsafe(32)
        response = render(
            request,
            "login.html.j2",
            title="Sign in",
            login_csrf=token,
            next=local_target(next),
            error="",
        )
        response.set_cookie(
            LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=settings.secure_cookies
        )
        return response

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = await read_form(request)
        name, password = form.get("name", "").strip(), form.get("password", "")
        target = local_target(form.get("next", "/queue"))
        client = request.client.host if request.client else "unknown"
        if not same_token(request.cookies.get(LOGIN_COOKIE, ""), form.get("csrf")):
            return PlainTextResponse("the sign-in form expired: reload it", status_code=400)
        if throttle.blocked(f"name:{name}", f"client:{client}"):
            log.warning("review: sign-in refused after repeated failures")
            error = "Too many failed sign-ins: wait a quarter of an hour and try again."
            return render(
                request,
                "login.html.j2",
                title="Sign in",
                status_code=429,
                login_csrf=request.cookies.get(LOGIN_COOKIE, ""),
                next=target,
                error=error,
            )

        def check() -> bool:
            with context.reading() as con:
                reviewer = authenticate(con, name, password)
                return reviewer is not None and context.viewer(reviewer) is not None

        if not await run_in_threadpool(check):
            throttle.failed(f"name:{name}", f"client:{client}")
            log.info("review: a sign-in failed")
            return render(
                request,
                "login.html.j2",
                title="Sign in",
                status_code=401,
                login_csrf=request.cookies.get(LOGIN_COOKIE, ""),
                next=target,
                error="Wrong name or password (or the account is disabled).",
            )
        throttle.succeeded(f"name:{name}", f"client:{client}")
        sessions.end(request.cookies.get(SESSION_COOKIE))
        session = sessions.start(name)
        log.info("review: a reviewer signed in")
        response = RedirectResponse(target, status_code=303)
        set_session_cookie(response, session, settings.secure_cookies)
        response.delete_cookie(LOGIN_COOKIE)
        return response

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        form = await read_form(request)
        token = request.cookies.get(SESSION_COOKIE)
        session = sessions.get(token)
        if session is not None and same_token(session.csrf, form.get("csrf")):
            sessions.end(token)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    @app.get("/queue")
    def queue(
        request: Request,
        reason: str | None = None,
        agency: str | None = None,
        status: str = "todo",
        page: int = 1,
        recorded: str | None = None,
    ) -> Response:
        with context.reading() as con:
            auth = signed_in(request, con)
            if auth is None:
                return to_login(request)
            filters = _filters(auth.viewer, reason, agency, status)
            changed = context.changed_decisions(con)
            listed = queue_page(
                con, auth.viewer, filters, max(page, 1), settings.page_size, changed
            )
        return render(
            request,
            "queue.html.j2",
            auth,
            title="Review queue",
            queue=listed,
            filters=filters,
            query=filters.query(),
            recorded=DECISION_LABELS.get(recorded or ""),
        )

    @app.get("/queue/at")
    def queue_at(
        request: Request,
        pos: int = 0,
        reason: str | None = None,
        agency: str | None = None,
        status: str = "todo",
        recorded: str | None = None,
    ) -> Response:
        """The item at a position of the filtered queue (the queue itself past its end)."""
        with context.reading() as con:
            auth = signed_in(request, con)
            if auth is None:
                return to_login(request)
            filters = _filters(auth.viewer, reason, agency, status)
            item = queue_item(con, auth.viewer, filters, pos, context.changed_decisions(con))
        done = {"recorded": recorded} if recorded in DECISIONS else {}
        if item is None:
            return RedirectResponse(f"/queue?{urlencode(filters.query() | done)}", 303)
        query = {"l": item.record_key_l, "r": item.record_key_r, "pos": item.position}
        return RedirectResponse(f"/pair?{urlencode(query | filters.query() | done)}", 303)

    @app.get("/pair")
    def pair(
        request: Request,
        left: Annotated[str, Query(alias="l")],
        right: Annotated[str, Query(alias="r")],
        pos: int | None = None,
        reason: str | None = None,
        agency: str | None = None,
        status: str = "todo",
        recorded: str | None = None,
    ) -> Response:
        with context.reading() as con:
            auth = signed_in(request, con)
            if auth is None:
                return to_login(request)
            filters = _filters(auth.viewer, reason, agency, status)
            evidence = pair_evidence(con, context, auth.viewer, left, right)
        if evidence is None:
            return not_found(request, auth, "No such pair of records that you may see.")
        # pos is where the pair was in the queue when it was opened: previous and next
        # resolve against the queue as it is then (checking it here would redo the queue)
        return render_pair(request, auth, evidence, pos, filters, recorded=recorded)

    def render_pair(
        request: Request,
        auth: _Auth,
        evidence: Any,
        pos: int | None,
        filters: QueueFilters,
        recorded: str | None = None,
        message: str = "",
        status_code: int = 200,
    ) -> HTMLResponse:
        snapshot = evidence.snapshot()
        return render(
            request,
            "pair.html.j2",
            auth,
            status_code=status_code,
            title="Pair under review",
            ev=evidence,
            evidence_sha256=Shown(snapshot, evidence.link_run_id).sha256,
            pos=pos,
            filters=filters,
            query=filters.query(),
            recorded=DECISION_LABELS.get(recorded or ""),
            message=message,
            max_weight=_max_weight(evidence),
        )

    @app.post("/decide")
    async def decide(request: Request) -> Response:
        form = await read_form(request)
        return await run_in_threadpool(_decide, request, form)

    def _decide(request: Request, form: dict[str, str]) -> Response:
        key_l, key_r, decision = form.get("l", ""), form.get("r", ""), form.get("decision", "")
        note = form.get("note", "").strip()[:MAX_NOTE]
        pos = int(form["pos"]) if form.get("pos", "").isdigit() else None
        if run_in_progress(context.project.warehouse):
            return render(
                request,
                "error.html.j2",
                status_code=503,
                title="A run is in progress",
                message="A nightly or link run holds the warehouse: your decision was not"
                " recorded. Go back and decide again once it has finished.",
            )
        with context.writing() as con:
            auth = signed_in(request, con)
            if auth is None:
                return to_login(request)
            if not same_token(auth.session.csrf, form.get("csrf")):
                return PlainTextResponse("the form expired: reload the page", status_code=403)
            filters = _filters(
                auth.viewer, form.get("reason"), form.get("agency"), form.get("status", "todo")
            )
            evidence = pair_evidence(con, context, auth.viewer, key_l, key_r)
            if evidence is None or decision not in DECISIONS:
                return not_found(request, auth, "No such pair of records that you may see.")
            shown = Shown(evidence.snapshot(), evidence.link_run_id)
            if shown.sha256 != form.get("evidence"):
                # a night ran (or a decision was made) since the page was drawn
                return render_pair(
                    request,
                    auth,
                    evidence,
                    pos,
                    filters,
                    message="The evidence changed since you opened this pair (a night ran or"
                    " someone decided it): nothing was recorded. Look again, then decide.",
                    status_code=409,
                )
            save_decision(
                con,
                key_l,
                key_r,
                decision,  # type: ignore[arg-type]  # checked against DECISIONS above
                note,
                decided_by=auth.viewer.name,
                via="browser",
                shown=shown,
            )
        log.info("review: a decision was recorded (%s)", decision)
        done: dict[str, Any] = {"recorded": decision}
        if pos is None:  # opened from a person or a search: back to the pair
            query = {"l": key_l, "r": key_r} | done
            return RedirectResponse(f"/pair?{urlencode(query)}", status_code=303)
        # the decided pair has left the list: the next item now holds its position
        query = {"pos": pos} | filters.query() | done
        return RedirectResponse(f"/queue/at?{urlencode(query)}", status_code=303)

    @app.get("/person/{person_id}")
    def person(request: Request, person_id: str, record: str | None = None) -> Response:
        with context.reading() as con:
            auth = signed_in(request, con)
            if auth is None:
                return to_login(request)
            evidence = person_evidence(con, context, auth.viewer, person_id)
            fate = person_fate(con, person_id) if evidence is None else None
        if evidence is None:
            message = "No person with records you may see has this id."
            if fate is not None and fate.related_person_id:
                message = (
                    f"{person_id} is no longer in the index: {fate.event} into"
                    f" {fate.related_person_id} on {fate.run_date}."
                )
            return not_found(request, auth, message)
        return render(
            request,
            "person.html.j2",
            auth,
            title=f"Person {person_id}",
            ev=evidence,
            highlight=record,
        )

    @app.get("/search")
    def search_page(request: Request, q: str = "") -> Response:
        with context.reading() as con:
            auth = signed_in(request, con)
            if auth is None:
                return to_login(request)
            found = search(con, auth.viewer, q[:100])
        persons = sorted({item.person_id for item in found})
        if len(persons) == 1:
            target = f"/person/{persons[0]}"
            if len(found) == 1:
                target += f"?{urlencode({'record': found[0].record_key})}"
            return RedirectResponse(target, status_code=303)
        return render(request, "search.html.j2", auth, title="Search", q=q, found=found)

    return app


def _filters(
    viewer: Viewer, reason: str | None, agency: str | None, status: str | None
) -> QueueFilters:
    return QueueFilters(
        reason=reason or None,
        agency=agency if agency and viewer.may_see_source(agency) else None,
        status="unsure" if status == "unsure" else "todo",
    )


def _colours(context: ReviewContext, viewer: Viewer) -> dict[str, str]:
    return {source: colour_of(source, context.sources) for source in viewer.sorted_agencies}


def _max_weight(evidence: Any) -> float:
    if evidence.scored is None or not evidence.scored.rows:
        return 1.0
    return max([1.0] + [abs(row.total) for row in evidence.scored.rows])
