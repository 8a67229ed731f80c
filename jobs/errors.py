"""What a caller did wrong or cannot have now, each with the HTTP status that says so.

Job kinds raise these; ``api.errors`` renders them (and adds the HTTP-only ones).
"""

from __future__ import annotations


class ServiceError(Exception):
    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, object]:
        return {"detail": self.message}

    def headers(self) -> dict[str, str] | None:
        """HTTP headers the answer carries (``Retry-After``, ``WWW-Authenticate``)."""
        return None


class NotFound(ServiceError):
    status_code = 404


class Forbidden(ServiceError):
    """The caller's token may not do this to this job (not its owner, not an admin)."""

    status_code = 403


class TooManyJobs(ServiceError):
    """The caller's token holds as many queued and running jobs as it may."""

    status_code = 429

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(self.retry_after_s)}


class Conflict(ServiceError):
    status_code = 409


class Unavailable(ServiceError):
    status_code = 503


class InvalidInput(ServiceError):
    """422 in FastAPI's validation shape, so clients parse one format for every bad field."""

    status_code = 422

    def __init__(self, field: str, message: str, kind: str = "value_error") -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.reason, self.kind = field, message, kind

    def body(self) -> dict[str, object]:
        loc = ["body", *self.field.split(".")] if self.field else ["body"]
        return {"detail": [{"loc": loc, "msg": self.reason, "type": self.kind}]}
