"""The webhook receiver: verifies every delivery (Standard Webhooks) and fails some on purpose.

Which attempts get a 500 is decided by a hash of (seed, webhook-id, attempt number), so a
run is repeatable and a retry of a failed delivery is not doomed to fail again.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from cli.infra.process import free_port


def output_digest(output: Any) -> str:
    """A short fingerprint of a prediction's output, to compare outcomes without keeping them."""
    return hashlib.sha256(orjson.dumps(output, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def fails(seed: int, webhook_id: str, attempt: int, one_in: int) -> bool:
    """Whether the receiver answers 500 to this attempt (about one in `one_in`)."""
    if one_in <= 0:
        return False
    digest = hashlib.sha256(f"{seed}:{webhook_id}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % one_in == 0


@dataclass(frozen=True)
class Delivery:
    """One verified delivery attempt."""

    prediction_id: str
    status: str
    webhook_id: str
    attempt: int
    answered: int
    output: str
    """`output_digest` of the body's output."""
    at: float


@dataclass
class Receiver:
    """Records verified deliveries; counts those that fail verification."""

    secret: str
    seed: int
    fail_one_in: int
    clock: Callable[[], float] = time.monotonic
    """Times of deliveries (the run's clock: seconds since the load started)."""
    deliveries: list[Delivery] = field(default_factory=list)
    attempts: Counter[str] = field(default_factory=Counter)
    unverified: list[dict[str, str]] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        webhook_id = request.headers.get("webhook-id", "")
        self.attempts[webhook_id] += 1
        attempt = self.attempts[webhook_id]
        try:
            payload = Webhook(self.secret).verify(body, dict(request.headers))
        except WebhookVerificationError as exc:
            self.unverified.append({"webhook_id": webhook_id, "error": str(exc),
                                    "body": body[:200].decode(errors="replace")})
            return web.Response(status=400, text="signature does not verify")
        answer = 500 if fails(self.seed, webhook_id, attempt, self.fail_one_in) else 204
        self.deliveries.append(Delivery(
            prediction_id=str(payload.get("id")), status=str(payload.get("status")),
            webhook_id=webhook_id, attempt=attempt, answered=answer,
            output=output_digest(payload.get("output")), at=self.clock()))
        return web.Response(status=answer)

    async def start(self) -> None:
        """Listen on 127.0.0.1 on a free port; `url` is then the webhook URL."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/hook", self.handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/hook"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def summary(self) -> dict[str, Any]:
        """Counts for the report."""
        return {"attempts": sum(self.attempts.values()), "verified": len(self.deliveries),
                "answered_500": sum(1 for d in self.deliveries if d.answered == 500),
                "unverified": len(self.unverified), "unverified_examples": self.unverified[:5]}
