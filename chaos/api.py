"""The few inferhook API calls the harness makes, each bounded in time and never raising for
a server that is down (the answer is then status 0)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

CONNECTION_ERROR = 0
"""The status recorded when no HTTP answer came (refused, reset, timed out)."""


@dataclass(frozen=True)
class Answer:
    """An HTTP answer, or status 0 with the error's name when none came."""

    status: int
    body: Any = None
    retry_after: float | None = None
    error: str = ""


def _seconds(header: str | None) -> float | None:
    """A `Retry-After` in seconds (the HTTP-date form is not used by ingest)."""
    try:
        return None if header is None else float(header)
    except ValueError:
        return None


class Api:
    """Authenticated calls to one ingest base URL."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, key: str) -> None:
        self.session = session
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {key}"}

    async def _call(self, method: str, path: str, *, timeout: float = 30.0, json: Any = None,
                    headers: dict[str, str] | None = None) -> Answer:
        data = None if json is None else orjson.dumps(json)
        all_headers = {**self.headers, **(headers or {})}
        if data is not None:
            all_headers["Content-Type"] = "application/json"
        try:
            async with self.session.request(method, self.base_url + path, data=data,
                                            headers=all_headers,
                                            timeout=aiohttp.ClientTimeout(total=timeout)) as response:
                raw = await response.read()
                retry_after = response.headers.get("Retry-After")
                body = orjson.loads(raw) if raw and response.content_type.endswith("json") else None
                return Answer(response.status, body, _seconds(retry_after))
        except (TimeoutError, aiohttp.ClientError, orjson.JSONDecodeError) as exc:
            return Answer(CONNECTION_ERROR, error=type(exc).__name__)

    async def create(self, body: dict[str, Any], idempotency_key: str) -> Answer:
        """POST /v1/predictions with an Idempotency-Key (so a retry cannot make a second one)."""
        return await self._call("POST", "/v1/predictions", json=body,
                                headers={"Idempotency-Key": idempotency_key})

    async def get(self, prediction_id: str) -> Answer:
        return await self._call("GET", f"/v1/predictions/{prediction_id}", timeout=10.0)

    async def example_input(self, model: str) -> dict[str, Any]:
        """The model's example input as `GET /v1/models/{owner}/{name}` gives it."""
        answer = await self._call("GET", f"/v1/models/{model}")
        if answer.status != 200 or not isinstance(answer.body, dict):
            raise RuntimeError(f"GET /v1/models/{model} answered {answer.status} {answer.error}")
        example: dict[str, Any] = answer.body["example_input"]
        return example

    async def webhook_secret(self) -> str:
        """The owner's Standard Webhooks secret (`whsec_…`)."""
        answer = await self._call("GET", "/v1/webhooks/default/secret")
        if answer.status != 200 or not isinstance(answer.body, dict):
            raise RuntimeError(f"GET /v1/webhooks/default/secret answered {answer.status} {answer.error}")
        return str(answer.body["key"])

    async def ready(self) -> bool:
        """GET /readyz answers 200 (Kafka and PostgreSQL both reachable from ingest)."""
        return (await self._call("GET", "/readyz", timeout=5.0)).status == 200
