"""HTTP rendering of the service's errors (``jobs.errors``), and the HTTP-only ones."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from jobs.errors import ServiceError


class Unauthorized(ServiceError):
    status_code = 401

    def headers(self) -> dict[str, str] | None:
        return {"WWW-Authenticate": "Bearer"}


async def handle_service_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers())


class Problem(BaseModel):
    """The body of every error but 422 (which has FastAPI's validation shape)."""

    detail: str


_MEANING = {
    401: "Missing, invalid or revoked bearer token",
    403: "The token neither created the job nor is an admin token",
    404: "No such id",
    409: "The job has already finished",
    416: "The range lies outside the file",
    429: "The token holds NAO_MAX_ACTIVE_JOBS_PER_TOKEN jobs queued or running; see Retry-After",
    503: "The broker could not take the job; it is marked failed",
}
# Statuses any route may answer, added to every operation of the OpenAPI document.
COMMON = {
    503: "The database or the broker is unavailable; retry after Retry-After seconds",
}
WITH_BODY = {400: "The body is not JSON (or not UTF-8)"}


def document_common_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the statuses every route (and every route with a body) may answer, keeping a
    route's own wording where it has one."""
    problem = {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            answers = operation.setdefault("responses", {})
            extra = {**COMMON, **(WITH_BODY if "requestBody" in operation else {})}
            for code, meaning in extra.items():
                answers.setdefault(str(code), {"description": meaning, "content": problem})
    schema.setdefault("components", {}).setdefault("schemas", {}).setdefault(
        "Problem", Problem.model_json_schema()
    )
    return schema


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route may answer (``responses=`` of a route)."""
    return {code: {"model": Problem, "description": _MEANING[code]} for code in codes}
