"""The blocking client: `Client(...).predictions.create/get/list/cancel/wait/stream/run`."""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterator
from typing import Any

import httpx

from inferhook_client import _core
from inferhook_client._core import Attempts, Config, SSEDecoder, check
from inferhook_client.errors import InferhookError, InferhookTimeout
from inferhook_client.models import (
    Event,
    ModelInfo,
    Prediction,
    PredictionPage,
    Status,
    WebhookSecret,
)
from inferhook_client.retry import RetryPolicy


class Client:
    """A connection pool to one inferhook API with one API key.

    `api_key` defaults to INFERHOOK_API_KEY, `base_url` to INFERHOOK_URL (else
    http://127.0.0.1:8080). `timeout` bounds each HTTP request, not a whole wait.
    """

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *,
                 timeout: float = 30.0, retry: RetryPolicy | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.config = Config.resolve(base_url, api_key, timeout, retry)
        self._http = httpx.Client(base_url=self.config.base_url, headers=self.config.headers(),
                                  timeout=timeout, transport=transport)
        self.predictions = Predictions(self)
        self.models = Models(self)
        self.webhooks = Webhooks(self)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def request(self, method: str, url: str, *, json: Any = None, headers: dict[str, str] | None = None,
                params: dict[str, Any] | None = None, retry: bool = True,
                deadline: float | None = None) -> httpx.Response:
        """Send one API request, retrying what is safe to retry; raise InferhookError on failure.

        `deadline` (time.monotonic()) caps the request and its retries: past it,
        InferhookTimeout.
        """
        attempts = Attempts(self.config.retry, retry, deadline)
        while True:
            attempts.count += 1
            try:
                response = self._http.request(method, url, json=json, headers=headers, params=params,
                                              timeout=attempts.timeout(self.config.timeout))
                return check(response)
            except httpx.TimeoutException as exc:
                if deadline is not None and time.monotonic() >= deadline - 0.01:
                    raise InferhookTimeout(f"{method} {url}: out of time") from exc
                error: InferhookError = _core.as_error(exc)
            except httpx.TransportError as exc:
                error = _core.as_error(exc)
            except InferhookError as exc:
                error = exc
            pause = attempts.delay(error)
            if pause is None:
                raise error
            time.sleep(pause)

    def account(self) -> dict[str, Any]:
        """Who the API key belongs to (`owner`, `key_prefix`, `key_created_at`)."""
        body: dict[str, Any] = self.request("GET", "/v1/account").json()
        return body


class Predictions:
    """`client.predictions`: create, read, list, cancel, wait, stream and run predictions."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(self, model: str, input: dict[str, Any], *, webhook: str | None = None,
               webhook_events_filter: list[str] | None = None, wait: bool | float | None = None,
               idempotency_key: str | None = None, cancel_after: str | None = None,
               priority: str | None = None) -> Prediction:
        """Create a prediction (retried safely: one Idempotency-Key for every try of this call).

        `wait=True` (up to 60 s) or `wait=n` holds the answer until it is terminal or n seconds
        passed (`Prefer: wait`); `cancel_after` is a duration like `30s` or `5m`; `priority`
        is `interactive`, `default` (the server's default) or `batch`.
        """
        headers = {"Idempotency-Key": idempotency_key or _core.new_idempotency_key()}
        if (prefer := _core.prefer_wait(wait)) is not None:
            headers["Prefer"] = prefer
        if cancel_after is not None:
            headers["Cancel-After"] = cancel_after
        body = _core.create_body(model, input, webhook, webhook_events_filter, priority)
        response = self._client.request("POST", "/v1/predictions", json=body, headers=headers)
        return Prediction.model_validate_json(response.content)

    def get(self, prediction_id: str, *, wait: bool | float | None = None) -> Prediction:
        """One prediction; with `wait`, once it is terminal or the time is up."""
        prefer = _core.prefer_wait(wait)
        response = self._client.request("GET", f"/v1/predictions/{prediction_id}",
                                        headers={"Prefer": prefer} if prefer else None)
        return Prediction.model_validate_json(response.content)

    def list(self, *, status: Status | str | None = None, model: str | None = None,
             limit: int = 100, created_after: str | None = None,
             created_before: str | None = None) -> Iterator[Prediction]:
        """Every matching prediction, newest first, fetching page after page as it goes."""
        params: dict[str, Any] | None = {
            k: v for k, v in {"status": status, "model": model, "limit": limit,
                              "created_after": created_after,
                              "created_before": created_before}.items() if v is not None}
        url: str | None = "/v1/predictions"
        while url is not None:
            page = PredictionPage.model_validate_json(
                self._client.request("GET", url, params=params).content)
            yield from page.results
            url, params = page.next, None  # `next` carries the query (httpx drops it for {})

    def cancel(self, prediction_id: str, *, wait: bool | float | None = None) -> Prediction:
        """Cancel it (repeating is harmless); the prediction as it is after the cancel."""
        prefer = _core.prefer_wait(wait)
        response = self._client.request("POST", f"/v1/predictions/{prediction_id}/cancel",
                                        headers={"Prefer": prefer} if prefer else None)
        return Prediction.model_validate_json(response.content)

    def events(self, prediction_id: str, *, after: int = -1) -> builtins.list[Event]:
        """The recorded events with a sequence number above `after`, oldest first."""
        response = self._client.request("GET", f"/v1/predictions/{prediction_id}/events",
                                        params={"after": after})
        return [Event.model_validate(e).model_copy(update={"prediction_id": prediction_id})
                for e in response.json()["results"]]

    def wait(self, prediction_id: str, *, timeout: float = 300.0) -> Prediction:
        """The prediction once terminal; InferhookTimeout (a TimeoutError) after `timeout` s.

        Holds `Prefer: wait` requests of at most 60 s each, and never past the deadline.
        """
        deadline = time.monotonic() + timeout
        latest: Prediction | None = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise InferhookTimeout(f"prediction {prediction_id} not done after {timeout:g}s", latest)
            try:
                response = self._client.request(
                    "GET", f"/v1/predictions/{prediction_id}", deadline=deadline,
                    headers={"Prefer": f"wait={_core.wait_chunk(remaining)}"})
            except InferhookError as exc:
                if isinstance(exc, InferhookTimeout) or time.monotonic() >= deadline:
                    raise InferhookTimeout(f"prediction {prediction_id} not done after {timeout:g}s",
                                           latest) from exc
                raise
            latest = Prediction.model_validate_json(response.content)
            if latest.done:
                return latest

    def stream(self, prediction_id: str, *, after: int = -1) -> Iterator[Event]:
        """Its events as they happen (history first), until the terminal one.

        A dropped connection is resumed with Last-Event-ID, so no event is missed or repeated.
        """
        last = after
        attempts = Attempts(self._client.config.retry)
        timeout = httpx.Timeout(self._client.config.timeout, read=_core.STREAM_READ_TIMEOUT)
        while True:
            attempts.count += 1
            decoder = SSEDecoder(prediction_id)
            headers = {"Accept": "text/event-stream"}
            if last >= 0:
                headers["Last-Event-ID"] = str(last)
            try:
                with self._client._http.stream("GET", f"/v1/predictions/{prediction_id}/stream",
                                               headers=headers, timeout=timeout) as response:
                    if response.status_code >= 400:
                        response.read()
                        check(response)
                    for line in response.iter_lines():
                        event = decoder.feed(line)
                        if event is None or event.sequence <= last:
                            continue
                        last = event.sequence
                        attempts.count = 0
                        yield event
                        if event.is_terminal:
                            return
                if self.get(prediction_id).done:  # closed cleanly: terminal, history expired
                    return
                error: InferhookError = _core.as_error(httpx.RemoteProtocolError("stream ended early"))
            except httpx.TransportError as exc:
                error = _core.as_error(exc)
            except InferhookError as exc:
                error = exc
            pause = attempts.delay(error)
            if pause is None:
                raise error
            time.sleep(pause)

    def run(self, model: str, input: dict[str, Any], *, timeout: float = 300.0,
            webhook: str | None = None) -> Any:
        """Create, wait until done and return its output.

        PredictionFailed / PredictionCanceled (with `.prediction.error`) when it did not
        succeed; InferhookTimeout when it is not done within `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        prediction = self.create(model, input, webhook=webhook,
                                       wait=_core.wait_chunk(timeout) if timeout >= 1 else None)
        if not prediction.done:
            prediction = self.wait(prediction.id, timeout=max(0.0, deadline - time.monotonic()))
        return _core.outcome(prediction)


class Models:
    """`client.models`: the served models."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def get(self, name: str) -> ModelInfo:
        """One model (`owner/name`) with its schemas and example input."""
        return ModelInfo.model_validate_json(self._client.request("GET", f"/v1/models/{name}").content)

    def list(self) -> builtins.list[ModelInfo]:
        """Every served model."""
        body = self._client.request("GET", "/v1/models").json()
        return [ModelInfo.model_validate(m) for m in body["results"]]


class Webhooks:
    """`client.webhooks`: the account's signing secret."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def secret(self) -> WebhookSecret:
        """The `whsec_…` secret webhooks are signed with (and the previous one while rotating)."""
        return WebhookSecret.model_validate_json(
            self._client.request("GET", "/v1/webhooks/default/secret").content)
