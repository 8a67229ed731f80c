"""Bearer API tokens: random, shown once, stored as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.models import ApiToken, utcnow

PREFIX = "nao_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, name: str) -> str:
    """Store a new token's hash; return the token (the only time it is known)."""
    token = PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, token_hash=hash_token(token)))
    session.flush()
    return token


def verify_token(session: Session, token: str) -> ApiToken | None:
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is not None:
        row.last_used_at = utcnow()
    return row


def has_tokens(session: Session) -> bool:
    return session.scalar(select(ApiToken.id).limit(1)) is not None
