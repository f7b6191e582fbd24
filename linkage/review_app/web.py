"""Request and response plumbing of the review application: security headers, forms,
cookies, safe redirects, links and numbers as pages show them."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import HTTPException, Request
from fastapi.responses import Response
from starlette.middleware.base import RequestResponseEndpoint

from linkage.lock import is_stale, lock_path_of, read_holder
from linkage.review_app.sessions import Session

log = logging.getLogger(__name__)

SESSION_COOKIE = "linkage_review_session"
LOGIN_COOKIE = "linkage_review_login"  # the sign-in form's CSRF token (double submit)
MAX_FORM_BYTES = 16 * 1024


async def guard_headers(request: Request, call_next: RequestResponseEndpoint) -> Response:
    """Headers every response carries; one quiet log line per request, without its query
    string (a URL can hold a record id, which stays out of logs)."""
    started = time.perf_counter()
    response = await call_next(request)
    response.headers.setdefault("Content-Security-Policy", "default-src 'none'")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    log.debug(
        "review: %s %s %d in %.0f ms",
        request.method,
        request.url.path.split("/")[1] if "/" in request.url.path else "",
        response.status_code,
        1000 * (time.perf_counter() - started),
    )
    return response


async def read_form(request: Request) -> dict[str, str]:
    """A url-encoded form's fields (the first value of each), bounded in size."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(status_code=413, detail="form too large")
    parsed = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {key: values[0] for key, values in parsed.items()}


def run_in_progress(warehouse: Path) -> bool:
    """Whether a run holds the warehouse's lock (a stale lock, its process gone, does not
    count: the next run clears it)."""
    path = lock_path_of(warehouse)
    if not path.exists():
        return False
    holder = read_holder(path)
    return holder is None or not is_stale(holder)


def proxy_user(request: Request, header: str | None, trusted: list[str]) -> str | None:
    if header is None or request.client is None or request.client.host not in trusted:
        return None
    value = request.headers.get(header, "").strip()
    return value or None


def set_session_cookie(response: Response, session: Session, secure: bool) -> None:
    response.set_cookie(
        SESSION_COOKIE, session.token, httponly=True, samesite="strict", secure=secure, path="/"
    )


def local_target(target: str) -> str:
    """Only a path on this site (never //elsewhere or http://elsewhere)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/queue"
    return target


def link_to(path: str, *queries: dict[str, Any], **params: Any) -> str:
    """A path with query parameters, later ones replacing earlier; None drops one."""
    merged: dict[str, Any] = {}
    for query in (*queries, params):
        merged.update(query)
    kept = {key: value for key, value in merged.items() if value is not None}
    return f"{path}?{urlencode(kept)}" if kept else path


def probability_text(value: float | None) -> str:
    if value is None:
        return ""
    if value >= 0.9999:
        return f"{value:.6f}"
    return f"{value:.4f}"
