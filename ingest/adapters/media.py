"""Images and audio in requests: data URIs made and checked before anything is accepted.

Ingest checks that media decodes (headers, not every pixel or sample: that is the
executor's work) so that an undecodable file gets a 422 and creates nothing.
"""

from __future__ import annotations

import io
import wave

from PIL import Image

from inferhook import datauri
from ingest.errors import Unprocessable
from schemas.api import ProblemItem

Loc = tuple[str | int, ...]

WAV_SAMPLE_WIDTHS = (1, 2, 4)
"""Bytes per sample of the PCM WAV files the audio models read (8, 16 and 32-bit)."""


def refuse(loc: Loc, message: str) -> Unprocessable:
    """A 422 naming one field of the body."""
    return Unprocessable(message, [ProblemItem(loc=["body", *loc], msg=message)])


def data_uri(media_type: str, data: bytes) -> str:
    """`data:<media_type>;base64,<data>`."""
    return datauri.encode(media_type, data)


def decode_data_uri(uri: str, loc: Loc) -> tuple[str, bytes]:
    """The media type and bytes of a base64 data URI; 422 at `loc` when it is not one."""
    try:
        return datauri.decode(uri)
    except ValueError as exc:
        raise refuse(loc, f"expected a base64 data URI (data:<type>;base64,<data>): {exc}") from exc


def check_image(data: bytes, loc: Loc) -> str:
    """The media type of an image file; 422 at `loc` when Pillow cannot read it."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
            name = image.format or "octet-stream"
            return Image.MIME.get(name, f"image/{name.lower()}")
    except Exception as exc:  # Pillow raises many types for bad data; all mean "not an image"
        raise refuse(loc, f"not an image in a supported format: {exc}") from exc


def check_image_uri(uri: str, loc: Loc) -> None:
    """422 at `loc` unless `uri` is an image data URI whose image Pillow can read."""
    media_type, data = decode_data_uri(uri, loc)
    if not media_type.startswith("image/"):
        raise refuse(loc, f"expected an image data URI, got {media_type}")
    check_image(data, loc)


def check_wav(data: bytes, loc: Loc) -> None:
    """422 at `loc` unless `data` is a PCM WAV file (8, 16 or 32-bit) with audio in it."""
    try:
        with wave.open(io.BytesIO(data)) as wav:
            width, frames = wav.getsampwidth(), wav.getnframes()
    except (wave.Error, EOFError) as exc:
        raise refuse(loc, f"audio could not be decoded: not a PCM WAV file ({exc})") from exc
    if width not in WAV_SAMPLE_WIDTHS:
        raise refuse(loc, f"{8 * width}-bit WAV is not supported (8, 16 or 32-bit PCM)")
    if frames == 0:
        raise refuse(loc, "the WAV file holds no audio")
