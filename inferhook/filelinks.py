"""Signed links to a file's content: `GET /v1/files/{id}/content?expires=…&signature=…`.

A link opens the file without an API key until `expires` (Unix seconds), which is the
file's own expiry (an output file's is its prediction's result expiry). The signature is
HMAC-SHA256 over `"{file_id}.{expires}"` with the server's link secret
(INFERHOOK_FILES_SIGNING_SECRET), URL-safe base64 without padding. The dispatcher makes
links for output files and ingest for uploads; ingest checks them. Pure: no clock of its
own, no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode


@dataclass(frozen=True)
class FileLinks:
    """Makes and checks signed content links of one deployment."""

    base_url: str
    """Public base URL, without a trailing slash."""
    secret: bytes
    """HMAC key; every ingest and dispatcher of a deployment must hold the same."""

    def signature(self, file_id: str, expires: int) -> str:
        """The signature of a link to `file_id` valid until `expires` (Unix seconds)."""
        mac = hmac.new(self.secret, f"{file_id}.{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def url(self, file_id: str, expires_at: datetime) -> str:
        """The signed content URL of `file_id`, valid until `expires_at` (rounded up to a second)."""
        expires = math.ceil(expires_at.timestamp())
        query = urlencode({"expires": expires, "signature": self.signature(file_id, expires)})
        return f"{self.base_url}/v1/files/{file_id}/content?{query}"

    def valid(self, file_id: str, expires: str, signature: str, now: datetime) -> bool:
        """True when `signature` is ours for `file_id` and `expires`, and `expires` is still ahead."""
        if not (expires.isascii() and expires.isdigit()) or len(expires) > 12:
            return False
        wanted = self.signature(file_id, int(expires))
        return hmac.compare_digest(wanted.encode(), signature.encode()) and int(expires) > now.timestamp()
