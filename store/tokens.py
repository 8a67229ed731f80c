"""Bearer API tokens: random, shown once, stored as a SHA-256 hash; each has a role and can
be revoked (it is refused from then on: every request looks its token up, nothing caches it)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import ApiToken, TokenRole, utcnow

PREFIX = "nao_"
LAST_USED_RESOLUTION = timedelta(minutes=1)  # not a write on every authenticated request


class TokenNotFound(LookupError):
    """No token, or more than one, answers to the id or name given."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, name: str, admin: bool = False) -> str:
    """Store a new token's hash; return the token (the only time it is known)."""
    token = PREFIX + secrets.token_urlsafe(32)
    role = TokenRole.ADMIN if admin else TokenRole.USER
    session.add(ApiToken(name=name, role=role, token_hash=hash_token(token)))
    session.flush()
    return token


def verify_token(session: Session, token: str) -> ApiToken | None:
    """The token's row, or None when it is unknown or revoked."""
    row = session.scalar(
        select(ApiToken).where(
            ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None)
        )
    )
    now = utcnow()
    if row is not None and _stale(row.last_used_at, now):
        row.last_used_at = now
    return row


def _stale(last_used_at: datetime | None, now: datetime) -> bool:
    if last_used_at is None:
        return True
    if last_used_at.tzinfo is None:  # SQLite returns naive UTC
        last_used_at = last_used_at.replace(tzinfo=UTC)
    return now - last_used_at >= LAST_USED_RESOLUTION


def has_tokens(session: Session) -> bool:
    """True when some token is still usable (not revoked)."""
    active = select(ApiToken.id).where(ApiToken.revoked_at.is_(None)).limit(1)
    return session.scalar(active) is not None


def list_tokens(session: Session) -> Sequence[ApiToken]:
    return session.scalars(select(ApiToken).order_by(ApiToken.id)).all()


def revoke_token(session: Session, ref: str) -> ApiToken:
    """Revoke the token whose id (digits) or name is ``ref``; a name must be unambiguous
    among the tokens not yet revoked. Revoking a revoked token changes nothing."""
    if ref.isdigit():
        row = session.get(ApiToken, int(ref))
        if row is None:
            raise TokenNotFound(f"no token with id {ref}")
    else:
        rows = session.scalars(
            select(ApiToken).where(ApiToken.name == ref, ApiToken.revoked_at.is_(None))
        ).all()
        if not rows:
            raise TokenNotFound(f"no active token named {ref!r}")
        if len(rows) > 1:
            ids = ", ".join(str(r.id) for r in rows)
            raise TokenNotFound(f"tokens {ids} are all named {ref!r}: give an id")
        row = rows[0]
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row
