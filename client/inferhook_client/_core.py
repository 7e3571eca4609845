"""What the sync and async clients share: configuration, request shapes, answers, SSE framing.

No I/O here; each client does its own sending and sleeping around these functions.
"""

from __future__ import annotations

import math
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import ValidationError as PydanticValidationError

from inferhook_client.errors import (
    APIConnectionError,
    APIError,
    InferhookError,
    PredictionCanceled,
    PredictionFailed,
    error_for,
)
from inferhook_client.models import Event, Prediction, Problem, Status
from inferhook_client.retry import RetryPolicy, compute_backoff, parse_retry_after

DEFAULT_URL = "http://127.0.0.1:8080"
MAX_WAIT_CHUNK = 60
"""The longest `Prefer: wait=n` the API honours."""
STREAM_READ_TIMEOUT = 90.0
"""Seconds of silence after which an event stream counts as dropped (keep-alives come every 15 s)."""


@dataclass(frozen=True)
class Config:
    """Where the API is and how to reach it."""

    base_url: str
    api_key: str
    timeout: float
    retry: RetryPolicy

    @classmethod
    def resolve(cls, base_url: str | None, api_key: str | None, timeout: float,
                retry: RetryPolicy | None) -> Config:
        """Arguments first, then INFERHOOK_URL / INFERHOOK_API_KEY, then the defaults."""
        key = api_key or os.environ.get("INFERHOOK_API_KEY")
        if not key:
            raise InferhookError("no API key: pass api_key= or set INFERHOOK_API_KEY")
        url = (base_url or os.environ.get("INFERHOOK_URL") or DEFAULT_URL).rstrip("/")
        return cls(base_url=url, api_key=key, timeout=timeout, retry=retry or RetryPolicy())

    def headers(self) -> dict[str, str]:
        """Headers on every request."""
        return {"Authorization": f"Bearer {self.api_key}", "User-Agent": "inferhook-client/0.1"}


def new_idempotency_key() -> str:
    """A fresh Idempotency-Key; one per create call, the same on each of its retries."""
    return str(uuid.uuid4())


def create_body(model: str, input: dict[str, Any], webhook: str | None,
                webhook_events_filter: list[str] | None,
                priority: str | None = None) -> dict[str, Any]:
    """The JSON body of `POST /v1/predictions`."""
    body: dict[str, Any] = {"model": model, "input": input}
    if priority is not None:
        body["priority"] = priority
    if webhook is not None:
        body["webhook"] = webhook
    if webhook_events_filter is not None:
        body["webhook_events_filter"] = list(webhook_events_filter)
    return body


def prefer_wait(wait: bool | float | None) -> str | None:
    """The `Prefer` header for `wait=`: True is the server's longest wait, a number is seconds."""
    if wait is None or wait is False:
        return None
    if wait is True:
        return "wait"
    return f"wait={wait_chunk(float(wait))}"


def wait_chunk(remaining: float) -> int:
    """Whole seconds to ask the server to hold one request: 1 to MAX_WAIT_CHUNK, never above
    `remaining` when it is at least 1 (the HTTP timeout cuts the rest)."""
    return max(1, min(MAX_WAIT_CHUNK, math.floor(remaining)))


def check(response: httpx.Response) -> httpx.Response:
    """The response when it is a success; the matching APIError otherwise."""
    if response.status_code < 400:
        return response
    try:
        problem = Problem.model_validate_json(response.content)
    except PydanticValidationError:
        problem = Problem(title=response.reason_phrase, status=response.status_code,
                          detail=response.text[:500])
    raise error_for(response.status_code, problem, parse_retry_after(response.headers.get("Retry-After")))


def as_error(exc: httpx.TransportError) -> InferhookError:
    """A transport failure as the client's error."""
    return APIConnectionError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


class Attempts:
    """Counts the tries of one call and says how long to wait before the next, or to stop."""

    def __init__(self, policy: RetryPolicy, enabled: bool = True,
                 deadline: float | None = None) -> None:
        self.policy, self.enabled, self.deadline = policy, enabled, deadline
        self.count = 0

    def timeout(self, default: float) -> float:
        """The HTTP timeout of the next try: never past the deadline."""
        if self.deadline is None:
            return default
        return max(0.001, min(default, self.deadline - time.monotonic()))

    def delay(self, error: InferhookError) -> float | None:
        """Seconds to sleep before trying again after `error`, or None to give up."""
        if not (self.enabled and error.retriable) or self.count >= self.policy.max_attempts:
            return None
        retry_after = error.retry_after if isinstance(error, APIError) else None
        pause = compute_backoff(self.count, self.policy, retry_after=retry_after)
        if self.deadline is not None and time.monotonic() + pause >= self.deadline:
            return None
        return pause


@dataclass
class SSEDecoder:
    """Text/event-stream framing, fed line by line; yields an Event at each blank line."""

    prediction_id: str | None = None
    _id: str | None = None
    _event: str | None = None
    _data: list[str] | None = None

    def feed(self, line: str) -> Event | None:
        """Take one line (without its newline); return the event it completes, if any."""
        if line == "":
            data, self._data, self._event = self._data, None, None
            if data is None:
                return None
            event = Event.model_validate_json("\n".join(data))
            return event.model_copy(update={"prediction_id": self.prediction_id})
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            self._data = [*(self._data or []), value]
        elif field == "id":
            self._id = value
        elif field == "event":
            self._event = value
        return None


def outcome(prediction: Prediction) -> Any:
    """`run()`'s result: the output of a succeeded prediction; PredictionFailed/Canceled else."""
    if prediction.status is Status.FAILED:
        raise PredictionFailed(prediction)
    if prediction.status is Status.CANCELED:
        raise PredictionCanceled(prediction)
    return prediction.output
