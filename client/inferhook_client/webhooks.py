"""Verify Standard Webhooks (v1) signatures of the deliveries inferhook sends.

Each delivery carries `webhook-id`, `webhook-timestamp` (unix seconds) and
`webhook-signature`: space-separated `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`
(two of them while a secret is being rotated; `v1a,` ed25519 ones are skipped here). The
secret is the account's `whsec_<base64>` (`client.webhooks.secret()`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import ValidationError as PydanticValidationError

from inferhook_client.errors import WebhookVerificationError
from inferhook_client.models import Prediction

SECRET_PREFIX = "whsec_"
TOLERANCE_SECONDS = 300
"""How far a delivery's timestamp may be from now, either way (replay protection)."""


@dataclass(frozen=True)
class Delivery:
    """One verified webhook: its message id (the same on every retry), when it was signed, and
    the prediction it carries."""

    webhook_id: str
    timestamp: datetime
    prediction: Prediction


def verify_webhook(headers: Mapping[str, str], body: bytes | str, secret: str | Sequence[str], *,
                   tolerance: float = TOLERANCE_SECONDS, now: float | None = None) -> Prediction:
    """The prediction a webhook carries, once its signature and timestamp check out.

    `headers` may use any case; `body` must be the bytes as received; `secret` is one
    `whsec_…` secret or several (accept either during a rotation). Raise
    WebhookVerificationError otherwise.
    """
    return verify_delivery(headers, body, secret, tolerance=tolerance, now=now).prediction


def verify_delivery(headers: Mapping[str, str], body: bytes | str, secret: str | Sequence[str], *,
                    tolerance: float = TOLERANCE_SECONDS, now: float | None = None) -> Delivery:
    """As verify_webhook, returning the message id and timestamp along with the prediction."""
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp, signatures = (lowered.get(h) for h in
                                 ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not (msg_id and stamp and signatures):
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError as exc:
        raise WebhookVerificationError("webhook-timestamp is not a number") from exc
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookVerificationError(f"webhook-timestamp is more than {tolerance:g}s from now")
    raw = body.encode() if isinstance(body, str) else body
    content = f"{msg_id}.{timestamp}.".encode() + raw
    secrets = [secret] if isinstance(secret, str) else list(secret)
    expected = [_sign(s, content) for s in secrets]
    offered = [sig.split(",", 1)[1] for sig in signatures.split() if sig.startswith("v1,")]
    if not any(hmac.compare_digest(mine.encode(), theirs.encode())
               for mine in expected for theirs in offered):
        raise WebhookVerificationError("no signature matches the secret")
    try:
        prediction = Prediction.model_validate_json(raw)
    except PydanticValidationError as exc:
        raise WebhookVerificationError(f"signed body is not a prediction: {exc}") from exc
    return Delivery(webhook_id=msg_id, timestamp=datetime.fromtimestamp(timestamp, UTC),
                    prediction=prediction)


def _sign(secret: str, content: bytes) -> str:
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error as exc:
        raise WebhookVerificationError("the secret is not whsec_<base64>") from exc
    return base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
