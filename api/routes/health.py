"""/healthz: the process is up. /readyz: the database and the broker answer."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.deps import SessionDep
from store import broker

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={503: {"description": "The database or the broker does not answer (which, said)"}},
)
def readyz(session: SessionDep) -> JSONResponse:
    try:
        session.execute(text("SELECT 1"))
        database = True
    except Exception:  # any driver error means "not ready"
        database = False
    reachable = broker.broker_reachable()
    ok = database and reachable
    body = {"status": "ok" if ok else "unavailable", "database": database, "broker": reachable}
    return JSONResponse(body, status_code=200 if ok else 503)
