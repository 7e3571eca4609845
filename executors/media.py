"""Decoding of media inputs sent as `data:` URIs (RFC 2397), base64 only: images and WAV audio.

The URI itself is parsed by inferhook.datauri (one rule for every service).
"""

from __future__ import annotations

import io
import wave

import numpy as np
from PIL import Image, UnidentifiedImageError

from inferhook.datauri import decode as decode_data_uri
from inferhook.datauri import encode as encode_data_uri

__all__ = ["decode_audio", "decode_data_uri", "decode_image"]

MAX_IMAGE_SIDE = 4096
"""Largest width or height decode_image accepts (against decompression bombs)."""


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


MAX_AUDIO_SECONDS = 600.0
"""Longest audio decode_audio accepts."""


def decode_audio(uri: str, rate: int = 16000) -> np.ndarray:
    """Decode a WAV `data:` URI (PCM 8/16/32-bit) to mono float32 samples at `rate` Hz.

    Channels are averaged; other sample rates are resampled linearly. Raises ValueError
    for anything that is not such a WAV file, or one longer than MAX_AUDIO_SECONDS.
    """
    media_type, data = decode_data_uri(uri)
    if not media_type.startswith("audio/"):
        raise ValueError(f"expected an audio data URI, got media type {media_type!r}")
    try:
        with wave.open(io.BytesIO(data)) as wav:
            channels, width, source_rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            frames = wav.getnframes()
            if frames > MAX_AUDIO_SECONDS * source_rate:
                raise ValueError(f"audio is longer than {MAX_AUDIO_SECONDS:g}s")
            raw = wav.readframes(frames)
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"not a PCM WAV file: {exc}") from None
    dtypes = {1: (np.uint8, 128.0, 128.0), 2: (np.int16, 0.0, 32768.0), 4: (np.int32, 0.0, 2.0**31)}
    if width not in dtypes:
        raise ValueError(f"{8 * width}-bit WAV is not supported (8, 16 or 32-bit PCM)")
    dtype, offset, scale = dtypes[width]
    samples = (np.frombuffer(raw, dtype=dtype).astype(np.float32) - offset) / scale
    samples = samples[: len(samples) // channels * channels].reshape(-1, channels).mean(axis=1)
    if source_rate != rate and len(samples):
        duration = len(samples) / source_rate
        target = np.arange(round(duration * rate)) / rate
        samples = np.interp(target, np.arange(len(samples)) / source_rate, samples)
    result: np.ndarray = samples.astype(np.float32)
    return result


def encode_wav(samples: np.ndarray, rate: int) -> str:
    """Mono audio as a 16-bit PCM WAV data URI: int16 samples as they are, floats in [-1, 1]
    (clipped) scaled to int16."""
    if samples.dtype != np.int16:
        samples = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.astype("<i2").tobytes())
    return encode_data_uri("audio/wav", buffer.getvalue())
