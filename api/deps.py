"""``Annotated`` dependency aliases: settings, a database session and the bearer token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from api.errors import Unauthorized
from store.db import session_factory
from store.models import ApiToken
from store.settings import Settings, get_settings
from store.tokens import verify_token

SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_session() -> Iterator[Session]:
    # get_settings() is called, not injected: a sync dependency costs a threadpool hop.
    with session_factory(get_settings().resolved_database_url())() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def require_token(request: Request, session: SessionDep) -> ApiToken:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing bearer token")
    row = verify_token(session, token.strip())
    if row is None:
        raise Unauthorized("invalid token")
    session.commit()
    return row


TokenDep = Annotated[ApiToken, Depends(require_token)]
