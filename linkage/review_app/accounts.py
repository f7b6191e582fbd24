"""Reviewer accounts, kept in the warehouse's `reviewer` table.

Passwords are stored as scrypt hashes (stdlib `hashlib.scrypt`, a random salt per
password), never as text. An account without a password signs in only through the
reverse proxy's user header, where the project config names one. Disabling an account
keeps its row, so the decisions it made still name a known reviewer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

import duckdb

from linkage.errors import LinkageError
from linkage.warehouse import fetch_one

# scrypt cost: 16 MiB and ~50 ms a check, enough to make guessing a stolen hash slow
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SCRYPT_MAXMEM = 64 * 1024 * 1024
MIN_PASSWORD_LENGTH = 10
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}"


class AccountError(LinkageError):
    """A reviewer account cannot be created or changed as asked."""


@dataclass(frozen=True)
class Reviewer:
    name: str
    role: str
    has_password: bool
    created_at: datetime
    disabled_at: datetime | None

    @property
    def active(self) -> bool:
        return self.disabled_at is None


def hash_password(password: str) -> str:
    """'scrypt$N$r$p$salt$hash', salt and hash base64."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join(
        ["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)]
    )


def verify_password(password: str, stored: str | None) -> bool:
    """Whether the password matches the stored hash, in constant time."""
    if not stored:
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(computed, base64.b64decode(digest))


@cache
def _dummy_hash() -> str:
    """Checked when a name is unknown, so a wrong name takes as long as a wrong password."""
    return hash_password(secrets.token_urlsafe(16))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=SCRYPT_MAXMEM, dklen=32
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def add_reviewer(
    con: duckdb.DuckDBPyConnection,
    name: str,
    role: str,
    password: str | None,
    roles: set[str] | frozenset[str],
    replace: bool = False,
) -> Reviewer:
    """Create a reviewer (or, with replace, set an existing one's role and password and
    enable it). Without a password the account signs in only through the proxy header."""
    if not re.fullmatch(NAME_PATTERN, name):
        raise AccountError(
            f"reviewer name {name!r}: letters, digits and . _ @ - (up to 64), starting with a"
            " letter or digit"
        )
    if role not in roles:
        raise AccountError(
            f"unknown role {role!r}: the project config's review.roles are"
            f" {', '.join(sorted(roles))}"
        )
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    existing = find_reviewer(con, name)
    if existing is not None and not replace:
        raise AccountError(f"reviewer {name!r} exists: use --replace to change it")
    stored = hash_password(password) if password is not None else None
    now = datetime.now(UTC).replace(tzinfo=None)
    con.execute("DELETE FROM reviewer WHERE name = $name", {"name": name})
    con.execute(
        "INSERT INTO reviewer VALUES ($name, $role, $hash, $at, NULL)",
        {"name": name, "role": role, "hash": stored, "at": now},
    )
    reviewer = find_reviewer(con, name)
    assert reviewer is not None
    return reviewer


def disable_reviewer(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Disable an account: it can no longer sign in; its decisions keep its name."""
    if find_reviewer(con, name) is None:
        raise AccountError(f"no reviewer {name!r}")
    con.execute(
        "UPDATE reviewer SET disabled_at = $at WHERE name = $name AND disabled_at IS NULL",
        {"name": name, "at": datetime.now(UTC).replace(tzinfo=None)},
    )


def find_reviewer(con: duckdb.DuckDBPyConnection, name: str) -> Reviewer | None:
    row = fetch_one(
        con,
        "SELECT name, role, password_hash IS NOT NULL, created_at, disabled_at"
        " FROM reviewer WHERE name = $name",
        {"name": name},
    )
    return None if row is None else Reviewer(*row)


def list_reviewers(con: duckdb.DuckDBPyConnection) -> list[Reviewer]:
    rows = con.execute(
        "SELECT name, role, password_hash IS NOT NULL, created_at, disabled_at"
        " FROM reviewer ORDER BY name"
    ).fetchall()
    return [Reviewer(*row) for row in rows]


def authenticate(con: duckdb.DuckDBPyConnection, name: str, password: str) -> Reviewer | None:
    """The active reviewer with this name and password, else None (same time either way)."""
    row = fetch_one(
        con,
        "SELECT password_hash FROM reviewer WHERE name = $name AND disabled_at IS NULL",
        {"name": name},
    )
    stored = row[0] if row is not None else None
    matches = verify_password(password, stored or _dummy_hash())
    if row is None or stored is None or not matches:
        return None
    return find_reviewer(con, name)
