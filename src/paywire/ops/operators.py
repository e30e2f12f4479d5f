"""Operators, their sessions and roles: who may use the dashboard, and what they may do (the
store: `web/dashboard/auth.py` adds the cookie and what a page does without a session).

Operators are people, never API keys: an email, an argon2id password hash (memory-hard) and a
role, `admin` (every action) or `viewer` (reads only). Sessions live in the database; the
browser holds a random token in an `HttpOnly`, `SameSite=Lax` cookie (`Secure` over https) and
the table keeps only its SHA-256. A session ends after `IDLE_TIMEOUT` without a request or
`ABSOLUTE_TIMEOUT` after sign-in, whichever comes first, or when its operator signs out.

Failed sign-ins are stored (`sign_in_failures`), so the limit holds across workers: after
`MAX_FAILURES_PER_EMAIL` failures for one email, or `MAX_FAILURES_PER_IP` from one address, in
`FAILURE_WINDOW` seconds, sign-in is refused with 429 until the window has passed.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.ext.asyncio import AsyncConnection

from paywire.db.engine import Database, Tx
from paywire.db.schema import operator_sessions, operators, sign_in_failures
from paywire.errors import InvalidRequest, NotFound, PaywireError, RateLimited
from paywire.ids import new_id

ROLES = ("admin", "viewer")
IDLE_TIMEOUT = 12 * 3600
ABSOLUTE_TIMEOUT = 7 * 86400
TOUCH_EVERY = 60  # last_seen is written at most once a minute per session
FAILURE_WINDOW = 15 * 60
MAX_FAILURES_PER_EMAIL = 5
MAX_FAILURES_PER_IP = 20
MIN_PASSWORD = 10

# argon2id with the library's defaults (64 MiB, 3 passes): memory-hard by design.
_hasher = PasswordHasher()
# Verified when the email is unknown, so a wrong email takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class Forbidden(PaywireError):
    status = 403
    type = "permission_error"
    code = "forbidden"


@dataclass(frozen=True)
class Session:
    """The signed-in operator of one request, and the mode the dashboard shows."""

    token_hash: str
    operator_id: str
    email: str
    role: str
    livemode: bool

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden("this action needs the admin role; you are signed in as a viewer")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalize_email(email: str) -> str:
    return email.strip().lower()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_new_operator(email: str, password: str, role: str) -> str:
    email = normalize_email(email)
    if "@" not in email or len(email) > 320 or any(ch.isspace() for ch in email):
        raise InvalidRequest("email must be an address like ops@example.com", param="email")
    if role not in ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)}", param="role")
    if len(password) < MIN_PASSWORD:
        raise InvalidRequest(f"the password must have at least {MIN_PASSWORD} characters", param="password")
    return email


async def create_operator(tx: Tx, email: str, password: str, *, role: str = "admin", now: float) -> dict[str, Any]:
    """A new operator (409-like InvalidRequest if the email is taken)."""
    email = check_new_operator(email, password, role)
    taken = await tx.conn.scalar(sa.select(operators.c.id).where(operators.c.email == email))
    if taken:
        raise InvalidRequest(f"an operator with email {email!r} already exists", param="email")
    row = {
        "id": new_id("op"),
        "email": email,
        "password_hash": await asyncio.to_thread(hash_password, password),
        "role": role,
        "created": int(now),
        "updated": int(now),
    }
    await tx.conn.execute(operators.insert(), row)
    return {"id": row["id"], "email": email, "role": role, "created": row["created"]}


async def list_operators(conn: AsyncConnection) -> list[sa.RowMapping]:
    query = sa.select(operators.c.id, operators.c.email, operators.c.role, operators.c.created)
    return list((await conn.execute(query.order_by(operators.c.seq))).mappings())


async def delete_operator(tx: Tx, email: str) -> None:
    """Delete the operator and end every session of theirs."""
    row = (await tx.conn.execute(sa.select(operators).where(operators.c.email == normalize_email(email)))).first()
    if row is None:
        raise NotFound(f"no such operator: {email!r}", param="email")
    await tx.conn.execute(operator_sessions.delete().where(operator_sessions.c.operator_id == row.id))
    await tx.conn.execute(operators.delete().where(operators.c.id == row.id))


async def _failures(conn: AsyncConnection, column: sa.ColumnElement[str], value: str, since: float) -> int:
    query = sa.select(sa.func.count()).where(column == value, sign_in_failures.c.created >= since)
    return int(await conn.scalar(query) or 0)


async def check_not_throttled(conn: AsyncConnection, email: str, ip: str, *, now: float) -> None:
    """429 while this email or this address has failed too often recently."""
    since = now - FAILURE_WINDOW
    if await _failures(conn, sign_in_failures.c.email, normalize_email(email), since) >= MAX_FAILURES_PER_EMAIL:
        raise RateLimited(
            f"too many failed sign-ins for this email; try again in {FAILURE_WINDOW // 60} minutes",
            code="sign_in_throttled",
        )
    if await _failures(conn, sign_in_failures.c.ip, ip, since) >= MAX_FAILURES_PER_IP:
        raise RateLimited(
            f"too many failed sign-ins from your address; try again in {FAILURE_WINDOW // 60} minutes",
            code="sign_in_throttled",
        )


async def verify_password(conn: AsyncConnection, email: str, password: str) -> sa.RowMapping | None:
    """The operator whose email and password these are, or None (same work either way)."""
    row = (
        (await conn.execute(sa.select(operators).where(operators.c.email == normalize_email(email)))).mappings().first()
    )
    try:
        _hasher.verify(row["password_hash"] if row else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    return row


async def record_failure(tx: Tx, email: str, ip: str, *, now: float) -> None:
    await tx.conn.execute(sign_in_failures.insert().values(email=normalize_email(email)[:320], ip=ip[:64], created=now))
    # Old failures no longer count: keep the table small.
    await tx.conn.execute(sign_in_failures.delete().where(sign_in_failures.c.created < now - 2 * FAILURE_WINDOW))


async def start_session(tx: Tx, operator_id: str, *, now: float, livemode: bool = False) -> str:
    """A new session; returns the token for the cookie (stored only as its hash)."""
    token = secrets.token_urlsafe(32)
    await tx.conn.execute(
        operator_sessions.insert().values(
            token_hash=hash_token(token),
            operator_id=operator_id,
            livemode=livemode,
            created=int(now),
            last_seen=int(now),
            expires=int(now) + ABSOLUTE_TIMEOUT,
        )
    )
    # Sessions that ran out are of no use to anyone.
    s = operator_sessions
    await tx.conn.execute(s.delete().where(sa.or_(s.c.expires < int(now), s.c.last_seen < int(now) - IDLE_TIMEOUT)))
    return token


async def find_session(conn: AsyncConnection, token: str | None, *, now: float) -> tuple[Session | None, bool]:
    """The live session of this cookie token, or None (unknown, idle too long, or too old), read
    on `conn`; and whether its `last_seen` is due a write (see `touch`)."""
    if not token or len(token) > 100:
        return None, False
    s, o = operator_sessions, operators
    token_hash = hash_token(token)
    row = (
        await conn.execute(
            sa.select(s.c.operator_id, s.c.livemode, s.c.last_seen, s.c.expires, o.c.email, o.c.role)
            .join(o, o.c.id == s.c.operator_id)
            .where(s.c.token_hash == token_hash)
        )
    ).first()
    if row is None or row.expires <= now or row.last_seen <= now - IDLE_TIMEOUT:
        return None, False
    session = Session(token_hash, row.operator_id, row.email, row.role, bool(row.livemode))
    return session, now - row.last_seen >= TOUCH_EVERY


async def touch(db: Database, session: Session, *, now: float) -> None:
    """Record that the session was used now (at most once a minute: `find_session` says when)."""
    s = operator_sessions
    async with db.transaction() as tx:
        await tx.conn.execute(s.update().where(s.c.token_hash == session.token_hash).values(last_seen=int(now)))


async def session_of(db: Database, token: str | None, *, now: float) -> Session | None:
    """The live session of this cookie token, or None (unknown, idle too long, or too old)."""
    async with db.read() as conn:
        session, stale = await find_session(conn, token, now=now)
    if session is not None and stale:
        await touch(db, session, now=now)
    return session


async def end_session(tx: Tx, token_hash: str) -> None:
    await tx.conn.execute(operator_sessions.delete().where(operator_sessions.c.token_hash == token_hash))


async def set_mode(tx: Tx, token_hash: str, livemode: bool) -> None:
    await tx.conn.execute(
        operator_sessions.update().where(operator_sessions.c.token_hash == token_hash).values(livemode=livemode)
    )
