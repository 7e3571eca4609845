"""`data:` URIs (RFC 2397), base64 only: how binary data travels inside JSON inputs and outputs.

One rule for every service: executors decode their media inputs with it, ingest builds
them from uploaded files, the dispatcher finds them in outputs to store them as files.
"""

from __future__ import annotations

import base64
import binascii
import re

_DATA_URI = re.compile(
    r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[\w.+-]+=[^;,]*)*);base64,(?P<data>.*)$",
    re.DOTALL,
)
MEDIA_TYPE = re.compile(r"^[\w.+-]+/[\w.+-]+$")
"""A bare media type (`type/subtype`, no parameters): what a file's content type may be."""


def decode(uri: str) -> tuple[str, bytes]:
    """Split a base64 `data:` URI into its media type and decoded bytes.

    The media type is lower-cased and defaults to `text/plain` when the URI leaves it out;
    whitespace inside the base64 is ignored. Raises ValueError for anything that is not a
    well-formed base64 data URI.
    """
    if not isinstance(uri, str):
        raise ValueError("expected a data URI string")
    match = _DATA_URI.match(uri)
    if match is None:
        raise ValueError("not a base64 data URI (expected 'data:<type>;base64,<data>')")
    media_type = (match.group("type") or "text/plain").lower()
    payload = match.group("data")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        data = _decode_spaced(payload)
    return media_type, data


def _decode_spaced(payload: str) -> bytes:
    """Base64 with whitespace inside (line-wrapped); stripping it up front costs more than
    the decode itself on the usual, unwrapped payload."""
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"bad base64 in data URI: {exc}") from None


def encode(media_type: str, data: bytes) -> str:
    """`data:<media_type>;base64,<data>`."""
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


def encoded_size(media_type: str, size: int) -> int:
    """Characters `encode` makes of `size` bytes (base64 is 4 per 3, padded)."""
    return len("data:;base64,") + len(media_type) + 4 * ((size + 2) // 3)


def looks_like(value: object) -> bool:
    """Cheap test: a string starting `data:` (decode says whether it really is one)."""
    return isinstance(value, str) and value.startswith("data:")
