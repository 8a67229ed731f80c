"""``Annotated`` dependency aliases: settings, a database session and the bearer token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.errors import Unauthorized
from store.db import session_factory
from store.models import ApiToken
from store.settings import Settings, get_settings
from store.tokens import verify_token

SettingsDep = Annotated[Settings, Depends(get_settings)]

# Ids are 64-bit in the database: a larger one is refused as a 422 naming the parameter before
# it reaches the driver (which would overflow into a 500).
MAX_ID = 2**63 - 1
Id = Annotated[int, Path(ge=1, le=MAX_ID)]


def get_session() -> Iterator[Session]:
    # get_settings() is called, not injected: a sync dependency costs a threadpool hop.
    with session_factory(get_settings().resolved_database_url())() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


# Declares the bearer scheme in the OpenAPI document (the Authorize button of /docs); the
# check itself is ours, so a missing token is our 401 with our message.
_bearer = HTTPBearer(auto_error=False, description="an API token: `nao token create --name N`")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _check(session: Session, token: str) -> ApiToken:
    if not token:
        raise Unauthorized("missing bearer token")
    row = verify_token(session, token)  # every request: a revoked token is refused at once
    if row is None:
        raise Unauthorized("invalid or revoked token")
    session.commit()
    return row


def require_token(credentials: BearerDep, session: SessionDep) -> ApiToken:
    return _check(session, credentials.credentials.strip() if credentials else "")


TokenDep = Annotated[ApiToken, Depends(require_token)]


def require_read_token(request: Request, session: SessionDep) -> None:
    """With ``NAO_PRIVATE_READS=true``, a read needs a token too. A router-wide dependency
    (``api.main``), so it reads the header itself: the OpenAPI document keeps declaring the
    token on the routes that always need it, and a write is checked by its own ``TokenDep``."""
    if request.method not in ("GET", "HEAD") or not get_settings().private_reads:
        return
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    _check(session, value.strip() if scheme.lower() == "bearer" else "")


ReadAccess = Depends(require_read_token)
