"""Standard Webhooks signatures, exactly as the spec and its libraries verify them.

`webhook-signature` holds space-separated signatures of `"{id}.{timestamp}.{body}"`:
`v1,<base64 HMAC-SHA256>` for each live secret (two during a rotation's grace period) and,
when asymmetric signing is on, `v1a,<base64 ed25519>`. The bytes signed are the bytes sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SECRET_PREFIX = "whsec_"
SIGNING_KEY_PREFIX = "whsk_"


@lru_cache(maxsize=4096)
def _hmac_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


@lru_cache(maxsize=1024)
def _ed25519_key(signing_key: str) -> Ed25519PrivateKey:
    seed = base64.b64decode(signing_key.removeprefix(SIGNING_KEY_PREFIX))
    return Ed25519PrivateKey.from_private_bytes(seed)


def signed_content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    """What every signature covers: `{id}.{timestamp}.{body}`."""
    return f"{msg_id}.{timestamp}.".encode() + body


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,` signature of these exact bytes with a `whsec_` secret."""
    mac = hmac.new(_hmac_key(secret), signed_content(msg_id, timestamp, body),
                   hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def sign_ed25519(signing_key: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1a,` signature of these exact bytes with a `whsk_` ed25519 key."""
    signature = _ed25519_key(signing_key).sign(signed_content(msg_id, timestamp, body))
    return "v1a," + base64.b64encode(signature).decode()


def headers(secrets: list[str], msg_id: str, timestamp: int, body: bytes, *,
            signing_key: str | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers (and the content type) for one attempt."""
    signatures = [sign(s, msg_id, timestamp, body) for s in secrets]
    if signing_key:
        signatures.append(sign_ed25519(signing_key, msg_id, timestamp, body))
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signatures),
        "content-type": "application/json",
    }
