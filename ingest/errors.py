"""Errors the API answers with, mapped to RFC 9457 problem+json in one middleware.

    ApiError
    ├── BadRequest            400  malformed JSON, bad query parameters
    ├── Unauthorized          401  missing or unknown API key
    ├── Forbidden             403  a signed file link that expired or is not ours
    ├── NotFound              404  unknown route, model, prediction or file (incl. other
    │                              owners')
    ├── PayloadTooLarge       413  body over INFERHOOK_MAX_BODY_BYTES, an upload over
    │                              INFERHOOK_FILES_MAX_UPLOAD_BYTES, an input whose files
    │                              do not fit one Kafka request
    ├── Conflict              409  Idempotency-Key reused with another body, or still in flight
    ├── UnsupportedMediaType  415  body is not application/json (multipart/form-data
    │                              for uploads)
    ├── HttpError             any  aiohttp's own HTTP errors (405 and the like), reshaped
    ├── Unprocessable         422  valid JSON that breaks the schema (lists every problem)
    ├── TooManyRequests       429  the key's rate limit is spent (Retry-After, RateLimit-*)
    │   └── QueueFull         429  the model's queue or the account's predictions in flight
    │                              are at their cap; nothing was written (ingest.admission)
    └── ServiceUnavailable    503  Kafka or Postgres did not answer; nothing was accepted
                                   (Retry-After: RETRY_AFTER unless told otherwise)
"""

from __future__ import annotations

from schemas.api import Problem, ProblemItem


class ApiError(Exception):
    """Base of every error the API reports; subclasses fix status and type."""

    status = 500
    type = "internal"
    title = "Internal error"

    def __init__(self, detail: str, errors: list[ProblemItem] | None = None, *,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}
        """Extra response headers (Retry-After and the like)."""

    def problem(self) -> Problem:
        """The response body."""
        return Problem(type=f"https://inferhook.dev/problems/{self.type}", title=self.title,
                       status=self.status, detail=self.detail, errors=self.errors)


class BadRequest(ApiError):
    status, type, title = 400, "bad-request", "Bad request"


class Unauthorized(ApiError):
    status, type, title = 401, "unauthorized", "Unauthorized"


class Forbidden(ApiError):
    status, type, title = 403, "forbidden", "Forbidden"


class NotFound(ApiError):
    status, type, title = 404, "not-found", "Not found"


class Conflict(ApiError):
    status, type, title = 409, "conflict", "Conflict"


class PayloadTooLarge(ApiError):
    status, type, title = 413, "payload-too-large", "Payload too large"


class UnsupportedMediaType(ApiError):
    status, type, title = 415, "unsupported-media-type", "Unsupported media type"


class Unprocessable(ApiError):
    status, type, title = 422, "validation", "Validation failed"


class TooManyRequests(ApiError):
    status, type, title = 429, "rate-limited", "Too many requests"


class QueueFull(TooManyRequests):
    type, title = "queue-full", "Queue full"


RETRY_AFTER = 2
"""Seconds a 503 asks the client to wait before trying again (a dependency is away)."""


class ServiceUnavailable(ApiError):
    status, type, title = 503, "unavailable", "Service unavailable"

    def __init__(self, detail: str, errors: list[ProblemItem] | None = None, *,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail, errors, headers={"Retry-After": str(RETRY_AFTER), **(headers or {})})


class HttpError(ApiError):
    """An HTTP error aiohttp raised itself, carried over with its status."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title = status, title
        self.type = title.lower().replace(" ", "-")
