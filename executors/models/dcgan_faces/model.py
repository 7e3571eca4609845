"""Handler for inferhook/dcgan-faces: {n, seed} -> latent vectors -> DCGAN generator -> PNG data URIs.

The latent vectors are standard normal draws from numpy's PCG64 seeded with `seed`, so a
seed always gives the same faces (on any machine with the same numpy). Without a seed one
is drawn at random and returned, so any result can be made again.
"""

from __future__ import annotations

import base64
import io
import secrets
from typing import Any

import numpy as np
from PIL import Image

LATENT = 100
MAX_IMAGES = 16
MAX_SEED = 2**32 - 1


def latents(n: int, seed: int) -> np.ndarray:
    """(n, 100, 1, 1) float32 standard normal draws for `seed`."""
    return np.random.default_rng(seed).standard_normal((n, LATENT, 1, 1), dtype=np.float32)


def png_data_uri(image: np.ndarray) -> str:
    """A (3, H, W) image in [-1, 1] as an 8-bit RGB PNG data URI."""
    pixels = np.clip(np.round((image.transpose(1, 2, 0) + 1.0) * 127.5), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _int(input: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = input.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"'{name}' must be an integer from {low} to {high}")
    return value


def predict(ctx: Any, input: dict[str, Any]) -> dict[str, Any]:
    """n generated 64x64 faces as PNG data URIs, with the seed that made them."""
    n = _int(input, "n", 1, 1, MAX_IMAGES)
    seed = _int(input, "seed", secrets.randbelow(MAX_SEED + 1), 0, MAX_SEED)
    (images,) = ctx.run({"z": latents(n, seed)})
    return {"images": [png_data_uri(image) for image in images], "seed": seed}
