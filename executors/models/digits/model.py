"""Handler for inferhook/digits: image data URI -> 8x8 pixels -> digit and class probabilities."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from executors.media import decode_image

SIDE = 8
"""load_digits images are 8x8 with pixel values 0..16."""


def preprocess(input: dict[str, Any]) -> dict[str, np.ndarray]:
    """Arrays keyed by ONNX input name, each with a leading batch dimension of 1.

    Raises ValueError with a message for a user when the input cannot be used.
    """
    uri = input.get("image")
    if not isinstance(uri, str):
        raise ValueError("'image' must be a data URI string")
    image = decode_image(uri, mode="L").resize((SIDE, SIDE), Image.Resampling.BOX)
    pixels = np.asarray(image, dtype=np.float32) * np.float32(16.0 / 255.0)
    return {"pixels": pixels.reshape(1, SIDE * SIDE)}


def postprocess(outputs: dict[str, np.ndarray]) -> Any:
    """Outputs of one item keyed by ONNX output name (leading batch dim 1) -> JSON-able output."""
    digit = int(outputs["label"].reshape(-1)[0])
    probabilities = outputs["probabilities"].reshape(-1)
    return {"digit": digit, "probabilities": [round(float(p), 6) for p in probabilities]}
