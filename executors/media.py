"""Decoding of media inputs sent as `data:` URIs (RFC 2397), base64 only."""

from __future__ import annotations

import base64
import binascii
import io
import re

from PIL import Image, UnidentifiedImageError

MAX_IMAGE_SIDE = 4096
"""Largest width or height decode_image accepts (against decompression bombs)."""

_DATA_URI = re.compile(
    r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[\w.+-]+=[^;,]*)*);base64,(?P<data>.*)$",
    re.DOTALL,
)


def decode_data_uri(uri: str) -> tuple[str, bytes]:
    """Split a base64 `data:` URI into its media type and decoded bytes.

    The media type defaults to `text/plain` when the URI leaves it out. Raises ValueError
    for anything that is not a well-formed base64 data URI.
    """
    if not isinstance(uri, str):
        raise ValueError("expected a data URI string")
    match = _DATA_URI.match(uri)
    if match is None:
        raise ValueError("not a base64 data URI (expected 'data:<type>;base64,<data>')")
    media_type = (match.group("type") or "text/plain").lower()
    payload = re.sub(r"\s+", "", match.group("data"))
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"bad base64 in data URI: {exc}") from None
    return media_type, data


def decode_image(uri: str, mode: str = "L") -> Image.Image:
    """Decode an image `data:` URI into a loaded PIL image converted to `mode`.

    Raises ValueError when the URI is malformed, the data is not an image Pillow can read,
    or the image is wider or taller than MAX_IMAGE_SIDE (checked before pixel data is read).
    """
    media_type, data = decode_data_uri(uri)
    if not media_type.startswith("image/"):
        raise ValueError(f"expected an image data URI, got media type {media_type!r}")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ValueError(f"{media_type} data is not an image in a supported format") from None
    except Exception as exc:  # Pillow raises many types for bad data; all mean "not an image".
        raise ValueError(f"cannot decode image: {exc}") from None
    width, height = image.size
    if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE:
        limit = f"{MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}"
        raise ValueError(f"image is {width}x{height}; images above {limit} are refused")
    try:
        image.load()
        return image.convert(mode)
    except Exception as exc:
        raise ValueError(f"cannot decode image: {exc}") from None
