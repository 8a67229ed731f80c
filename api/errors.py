"""HTTP rendering of the service's errors (``jobs.errors``), and the HTTP-only ones."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from jobs.errors import ServiceError


class Unauthorized(ServiceError):
    status_code = 401


async def handle_service_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=headers)
