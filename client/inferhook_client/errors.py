"""Every error the client raises, in one tree.

    InferhookError
    ├── APIError(status, problem)        the API answered 4xx/5xx (RFC 9457 problem+json)
    │   ├── ValidationError(errors)      400, 422: the request was refused, `errors` says where
    │   ├── Unauthorized                 401: missing or unknown API key
    │   ├── NotFound                     404: unknown model or prediction (or another owner's)
    │   ├── Conflict                     409: Idempotency-Key reused with another body, or in flight
    │   ├── RateLimited                  429: retried by the client; raised once retries are spent
    │   └── ServerError                  5xx: retried by the client; raised once retries are spent
    ├── APIConnectionError               no answer at all (refused, reset, timed out)
    ├── InferhookTimeout                 also a builtins.TimeoutError: wait()/run() ran out of time
    ├── PredictionError(prediction)      run(): the prediction ended failed or canceled
    │   ├── PredictionFailed
    │   └── PredictionCanceled
    └── WebhookVerificationError         a webhook's signature or timestamp does not hold

Each error says itself whether repeating the request may help (`retriable`), so the retry
loop asks the error instead of keeping a list of statuses.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inferhook_client.models import Prediction, Problem


class InferhookError(Exception):
    """Base of everything this package raises."""

    retriable: bool = False
    """True when sending the same request again may succeed."""


class APIError(InferhookError):
    """The API answered with an error status and a problem+json body."""

    def __init__(self, status: int, problem: Problem, *, retry_after: float | None = None) -> None:
        super().__init__(f"{status} {problem.title}: {problem.detail}")
        self.status = status
        self.problem = problem
        self.retry_after = retry_after
        """Seconds from the answer's Retry-After header, when it had one."""


class ValidationError(APIError):
    """400 or 422: the request is malformed or breaks the schema; nothing was created."""

    @property
    def errors(self) -> list[dict[str, Any]]:
        """Each problem with `loc` (where) and `msg` (what)."""
        return [item.model_dump() for item in self.problem.errors]


class Unauthorized(APIError):
    """401: the API key is missing, unknown or revoked."""


class NotFound(APIError):
    """404: no such model or prediction (other owners' predictions are not found either)."""


class Conflict(APIError):
    """409: the Idempotency-Key was used with another body, or its first request is in flight.

    Only the second case carries Retry-After, and only it is worth repeating.
    """

    def __init__(self, status: int, problem: Problem, *, retry_after: float | None = None) -> None:
        super().__init__(status, problem, retry_after=retry_after)
        self.retriable = retry_after is not None


class RateLimited(APIError):
    """429: the key's rate limit is spent for now; `retry_after` says for how long."""

    retriable = True


class ServerError(APIError):
    """5xx: the service could not answer (503: nothing was accepted)."""

    retriable = True


class APIConnectionError(InferhookError):
    """The request got no answer: connection refused or dropped, or a network timeout."""

    retriable = True


class InferhookTimeout(InferhookError, builtins.TimeoutError):
    """`wait()` or `run()` ran out of time; `prediction` is the last state seen (if any)."""

    def __init__(self, message: str, prediction: Prediction | None = None) -> None:
        super().__init__(message)
        self.prediction = prediction


class PredictionError(InferhookError):
    """`run()`: the prediction ended without success; `prediction.error` says why."""

    def __init__(self, prediction: Prediction) -> None:
        error = prediction.error
        why = f"{error.reason}: {error.message}" if error else "no reason given"
        super().__init__(f"prediction {prediction.id} {prediction.status}: {why}")
        self.prediction = prediction


class PredictionFailed(PredictionError):
    """The prediction ended `failed`."""


class PredictionCanceled(PredictionError):
    """The prediction ended `canceled` (by a user, or its Cancel-After deadline)."""


class WebhookVerificationError(InferhookError):
    """A webhook's headers are missing, its timestamp is too old or new, or no signature matches."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: ValidationError, 401: Unauthorized, 404: NotFound, 409: Conflict, 422: ValidationError,
    429: RateLimited,
}


def error_for(status: int, problem: Problem, retry_after: float | None) -> APIError:
    """The error class that stands for this status."""
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else APIError)
    return cls(status, problem, retry_after=retry_after)
