"""Signed-in sessions, their CSRF tokens, and a brake on password guessing.

Sessions live in the server's memory only: a random token in an HttpOnly, SameSite=Strict
cookie names one. A session ends after `idle` without a request, after `lifetime` however
active, at sign-out, or when the server restarts. Each carries its own CSRF token, which
every form posts back.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Session:
    token: str
    reviewer: str
    csrf: str
    via_proxy: bool
    started: float
    last_seen: float


@dataclass
class SessionStore:
    idle: float  # seconds
    lifetime: float  # seconds
    clock: Callable[[], float] = time.monotonic
    _sessions: dict[str, Session] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, reviewer: str, via_proxy: bool = False) -> Session:
        now = self.clock()
        session = Session(
            token=secrets.token_urlsafe(32),
            reviewer=reviewer,
            csrf=secrets.token_urlsafe(32),
            via_proxy=via_proxy,
            started=now,
            last_seen=now,
        )
        with self._lock:
            self._expire(now)
            self._sessions[session.token] = session
        return session

    def get(self, token: str | None) -> Session | None:
        """The live session of a token (touched), or None if unknown or expired."""
        if not token:
            return None
        now = self.clock()
        with self._lock:
            self._expire(now)
            session = self._sessions.get(token)
            if session is not None:
                session.last_seen = now
            return session

    def end(self, token: str | None) -> None:
        with self._lock:
            self._sessions.pop(token or "", None)

    def _expire(self, now: float) -> None:
        expired = [
            token
            for token, session in self._sessions.items()
            if now - session.last_seen > self.idle or now - session.started > self.lifetime
        ]
        for token in expired:
            del self._sessions[token]


def same_token(expected: str, given: str | None) -> bool:
    """A CSRF token check in constant time."""
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


@dataclass
class LoginThrottle:
    """After `attempts` failed sign-ins for one name or from one address within `window`
    seconds, further attempts are refused until the window has passed."""

    attempts: int = 5
    window: float = 15 * 60
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, list[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def blocked(self, *keys: str) -> bool:
        now = self.clock()
        with self._lock:
            return any(len(self._recent(key, now)) >= self.attempts for key in keys)

    def failed(self, *keys: str) -> None:
        now = self.clock()
        with self._lock:
            for key in keys:
                self._failures[key] = [*self._recent(key, now), now]

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)

    def _recent(self, key: str, now: float) -> list[float]:
        return [t for t in self._failures.get(key, []) if now - t < self.window]
