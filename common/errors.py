"""One application error class. Views raise; `common.api.exception_handler` answers."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refusal with a stable code. Subclasses fix `code` and `status`; `data` is optional detail."""

    code = "DOMAIN_ERROR"
    status = 400
    message = "The request was refused."
    retry_after: int | None = None

    def __init__(self, message: str | None = None, *, data: Any = None, code: str | None = None):
        super().__init__(message or self.message)
        self.message = message or self.message
        self.data = data
        if code:
            self.code = code


class ValidationFailed(DomainError):
    code, status, message = "INVALID_INPUT", 400, "The request is not valid."


class InvalidParameter(ValidationFailed):
    """A path or query parameter is not a value in its range (a body field is INVALID_INPUT)."""

    code, message = "INVALID_PARAMETER", "A parameter is not valid."


class NotFound(DomainError):
    code, status, message = "NOT_FOUND", 404, "Not found."


class Forbidden(DomainError):
    code, status, message = "FORBIDDEN", 403, "You may not act for another user."


class Conflict(DomainError):
    code, status, message = "CONFLICT", 409, "The request conflicts with the current state."


class DependencyUnavailable(DomainError):
    """A dependency is down: 503 with Retry-After, and nothing was changed."""

    code, status, message = "SERVICE_UNAVAILABLE", 503, "A dependency is unavailable; retry shortly."
    retry_after = 2


class DatabaseUnavailable(DependencyUnavailable):
    code, message = "DATABASE_UNAVAILABLE", "The database is unavailable; retry shortly."


class CacheUnavailable(DependencyUnavailable):
    code, message = "CACHE_UNAVAILABLE", "Redis is unavailable; retry shortly."


class BusyRetry(DependencyUnavailable):
    code, message, retry_after = "BUSY_RETRY", "The item is busy; retry shortly.", 1


class InvalidIdempotencyKey(ValidationFailed):
    code = "INVALID_IDEMPOTENCY_KEY"
    message = "Idempotency-Key must be 1..255 printable ASCII characters without spaces."


class IdempotencyKeyReused(DomainError):
    code, status = "IDEMPOTENCY_KEY_REUSED", 422
    message = "This Idempotency-Key was used with a different request body."


class IdempotencyKeyInFlight(DomainError):
    code, status = "IDEMPOTENCY_KEY_IN_FLIGHT", 409
    message = "A request with this Idempotency-Key is still being processed."
