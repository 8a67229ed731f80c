"""create_app(): the FastAPI instance, its routers, error handlers, body-size limit and the
cached read path (``api.readcache``)."""

from __future__ import annotations

import gc
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from api import metrics
from api.errors import document_common_errors, handle_service_error
from api.metrics import RequestTimer
from api.readcache import CachedReads, ChangeListener, ReadCache
from api.routes import (
    architectures,
    candidates,
    checkpoints,
    controller,
    dashboard,
    health,
    insights,
    jobs,
    search_spaces,
    sweeps,
)
from jobs.errors import ServiceError
from nao_core.errors import NaoCoreError
from store.settings import get_settings

logger = logging.getLogger(__name__)

_BODY_METHODS = (b"POST", b"PUT", b"PATCH")
_LARGE_BODIES = frozenset({"/predictions"})  # bodies held to NAO_MAX_QUERY_BODY_BYTES
DB_RETRY_AFTER_S = 5  # the Retry-After of a 503 while the database does not answer
DESCRIPTION = """Neural Architecture Optimization as a service: searches, trainings, evaluations
and sweeps are jobs that GPU workers run; architectures come back ranked, with checkpoints.

Reading needs no token (unless the server sets `NAO_PRIVATE_READS=true`). Creating,
cancelling and downloading need a bearer token (`nao token create --name NAME`, or the one
`nao up` printed): press **Authorize**. A token cancels only the jobs it created, unless it is
an admin token (`--admin`), and holds at most `NAO_MAX_ACTIVE_JOBS_PER_TOKEN` unfinished jobs."""


class BodyLimit:
    """Refuse bodies over ``max_body_bytes`` with a 422 naming the body, before parsing.

    Plain ASGI (not ``BaseHTTPMiddleware``, which costs a task and a queue per request): a
    declared Content-Length is checked from the headers; a chunked body is read up to the
    limit and replayed to the app.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = get_settings()
        limit = settings.max_body_bytes
        if scope["path"] in _LARGE_BODIES:  # up to 1,000 architectures in their text form
            limit = max(limit, settings.max_query_body_bytes)
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None:
            if length.isdigit() and int(length) > limit:
                await _too_big(limit)(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        if scope["method"].encode() not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                await _too_big(limit)(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return dict(await receive())
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def _too_big(limit: int) -> JSONResponse:
    detail = [{"loc": ["body"], "msg": f"body exceeds {limit} bytes", "type": "too_long"}]
    return JSONResponse({"detail": detail}, status_code=422)


def _printable(value: Any) -> Any:
    """A validation error's context as JSON can carry it: NaN and Infinity become strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _printable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_printable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, whatever the input held (its own handler fails on NaN: a 500)."""
    assert isinstance(exc, RequestValidationError)
    detail = [_printable(dict(e)) for e in exc.errors()]
    return JSONResponse({"detail": detail}, status_code=422)


async def _core_error(_request: Request, exc: Exception) -> JSONResponse:
    detail = [{"loc": ["body"], "msg": str(exc), "type": "value_error"}]
    return JSONResponse({"detail": detail}, status_code=422)


async def _database_error(_request: Request, exc: Exception) -> JSONResponse:
    """The database does not answer (down, restarting, out of connections): 503 with
    Retry-After, not a plain-text 500. The pool pings a connection before using it, so the
    first request after the database is back gets a fresh one: no restart needed."""
    if isinstance(exc, DBAPIError) and not (
        isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated
    ):
        logger.error("database error: %s", exc, exc_info=exc)
        return JSONResponse({"detail": "Internal Server Error"}, status_code=500)
    logger.warning("database unavailable: %s: %s", type(exc).__name__, str(exc).split("\n")[0])
    return JSONResponse(
        {"detail": "the database is unavailable; retry later"},
        status_code=503,
        headers={"Retry-After": str(DB_RETRY_AFTER_S)},
    )


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # The ~150k objects of the app's imports never die: out of the collector's sight, a full
    # collection no longer walks them (it cost a request ~70 ms on a loaded 2-core machine).
    gc.freeze()
    settings = get_settings()
    url = settings.resolved_database_url()
    listener = None
    # Private reads check a token on every request: a cached answer would skip the check.
    if settings.read_cache and not settings.private_reads and url.startswith("postgresql"):
        listener = ChangeListener(url, app.state.read_cache)
        listener.start()
    try:
        yield
    finally:
        if listener is not None:
            listener.stop()


def create_app() -> FastAPI:
    app = FastAPIOffline(  # /docs and /redoc from assets installed with the package
        title="NAO Service",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=_lifespan,
        swagger_ui_parameters={"persistAuthorization": True},
    )
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_common_errors(default_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.state.read_cache = ReadCache()
    app.add_middleware(BodyLimit)
    app.add_middleware(RequestTimer)
    app.add_middleware(CachedReads, cache=app.state.read_cache)  # outermost: hits skip all
    app.add_exception_handler(ServiceError, handle_service_error)
    app.add_exception_handler(NaoCoreError, _core_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(PoolTimeout, _database_error)
    for module in (
        health,
        jobs,
        architectures,
        checkpoints,
        controller,
        search_spaces,
        candidates,
        sweeps,
        insights,
        metrics,
        dashboard,
    ):
        app.include_router(module.router)
    return app


app = create_app()
