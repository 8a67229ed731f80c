"""HTTP rendering of the service's errors (``jobs.errors``), and the HTTP-only ones."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from jobs.errors import ServiceError


class Unauthorized(ServiceError):
    status_code = 401


async def handle_service_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=headers)


class Problem(BaseModel):
    """The body of every error but 422 (which has FastAPI's validation shape)."""

    detail: str


_MEANING = {
    401: "Missing or invalid bearer token",
    404: "No such id",
    409: "The job has already finished",
    416: "The range lies outside the file",
    503: "The broker could not take the job; it is marked failed",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route may answer (``responses=`` of a route)."""
    return {code: {"model": Problem, "description": _MEANING[code]} for code in codes}
