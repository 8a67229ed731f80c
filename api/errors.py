"""Errors that carry their HTTP status, and the one handler that renders them."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse


class NaoError(Exception):
    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, object]:
        return {"detail": self.message}


class NotFound(NaoError):
    status_code = 404


class Conflict(NaoError):
    status_code = 409


class Unauthorized(NaoError):
    status_code = 401


class Unavailable(NaoError):
    status_code = 503


class InvalidInput(NaoError):
    """422 in FastAPI's validation shape, so clients parse one format for every bad field."""

    status_code = 422

    def __init__(self, field: str, message: str, kind: str = "value_error") -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.reason, self.kind = field, message, kind

    def body(self) -> dict[str, object]:
        loc = ["body", *self.field.split(".")] if self.field else ["body"]
        return {"detail": [{"loc": loc, "msg": self.reason, "type": self.kind}]}


async def handle_nao_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NaoError)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=headers)
