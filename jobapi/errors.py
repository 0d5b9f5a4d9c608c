"""The job API's errors: each carries the HTTP status and the stable `code` it maps to.

Every error says what was wrong and what to do about it. The API maps these
classes to HTTP status codes in one place (`jobapi.app`).
"""

from __future__ import annotations

from core.errors import CrawlgraphError

# --- The job API's errors: each carries the HTTP status it maps to. ---------


class ApiError(CrawlgraphError):
    """An error the API answers with its own status code and a stable `code`."""

    status_code = 500
    code = "internal_error"

    def __init__(
        self, message: str, *, hint: str | None = None, field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.field = field
        self.headers = headers or {}


class BadRequest(ApiError):
    """The request cannot be read (malformed JSON, a bad header)."""

    status_code = 400
    code = "bad_request"


class Unauthorized(ApiError):
    """No valid credentials: a missing, expired or forged token, or a wrong password."""

    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ApiError):
    """Authenticated, but the role does not allow this."""

    status_code = 403
    code = "forbidden"


class NotFound(ApiError):
    """No such resource, or one that belongs to another user."""

    status_code = 404
    code = "not_found"


class Conflict(ApiError):
    """The request conflicts with the resource's state (a taken username, a reused key)."""

    status_code = 409
    code = "conflict"


class PayloadTooLarge(ApiError):
    """The request body is larger than the API accepts."""

    status_code = 413
    code = "payload_too_large"


class Unprocessable(ApiError):
    """The request is well-formed but a field has a value that cannot work."""

    status_code = 422
    code = "validation_error"


class TooManyRequests(ApiError):
    """A rate limit was hit; `Retry-After` says when to try again."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint, headers={"Retry-After": str(max(1, retry_after))})
        self.retry_after = max(1, retry_after)


class BadGateway(ApiError):
    """An upstream service (scrapyd) answered with an error."""

    status_code = 502
    code = "bad_gateway"


class ServiceUnavailable(ApiError):
    """An upstream service (scrapyd, PostgreSQL, Redis) cannot be reached."""

    status_code = 503
    code = "service_unavailable"


def field_from_message(message: str) -> str | None:
    """The field a msgspec validation message names (`$.start_urls[3]` -> `start_urls[3]`)."""
    import re

    found = re.search(r"at `\$\.?([^`]*)`", message)
    if found and found.group(1):
        return found.group(1)
    found = re.search(r"(?:unknown|missing required) field `([^`]+)`", message)
    return found.group(1) if found else None
