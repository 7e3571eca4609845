"""Handler for inferhook/ocr: PP-OCRv4 text detection (DB) then recognition (CTC) per line.

Detection gives a text probability map; connected regions above 0.3 (dilated a little)
with a mean score above 0.5 become line boxes, grown by the DB "unclip" distance. Each
box is cropped from the original image, resized to height 48 and recognised; the CTC
output is decoded greedily with the character list stored in the recognition model's
metadata. Each recognised line is published as partial output.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from executors.media import decode_image

MAX_SIDE = 960
DET_THRESHOLD = 0.3
BOX_THRESHOLD = 0.5
UNCLIP_RATIO = 1.6
REC_HEIGHT = 48
MIN_CONFIDENCE = 0.5


def setup(model: Any) -> list[str]:
    """The recognition alphabet: CTC blank, the model's characters, and a space."""
    characters: str = model.sessions["rec"].get_modelmeta().custom_metadata_map["character"]
    return ["", *characters.splitlines(), " "]


def _normalize(image: Image.Image) -> np.ndarray:
    """RGB image -> (1, 3, H, W) BGR floats in [-1, 1], as PaddleOCR trains them."""
    array = np.asarray(image, dtype=np.float32)[:, :, ::-1] / 255.0
    return ((array - 0.5) / 0.5).transpose(2, 0, 1)[None].copy()


def detect(ctx: Any, image: Image.Image) -> list[tuple[float, float, float, float, float]]:
    """Line boxes (x0, y0, x1, y1, score) in image pixels, top to bottom, left to right."""
    width, height = image.size
    scale = min(1.0, MAX_SIDE / max(width, height))
    w32, h32 = (max(32, round(side * scale / 32) * 32) for side in (width, height))
    (probability,) = ctx.run({"x": _normalize(image.resize((w32, h32)))})
    prob = probability[0, 0]
    mask = ndimage.binary_dilation(prob > DET_THRESHOLD, structure=np.ones((2, 2)))
    labels, _ = ndimage.label(mask)
    boxes = []
    for index, region in enumerate(ndimage.find_objects(labels), start=1):
        if region is None:
            continue
        rows, cols = region
        score = float(prob[region][labels[region] == index].mean())
        h, w = rows.stop - rows.start, cols.stop - cols.start
        if score < BOX_THRESHOLD or min(h, w) < 3:
            continue
        grow = w * h * UNCLIP_RATIO / (2 * (w + h))
        sx, sy = width / w32, height / h32
        boxes.append((max(0.0, (cols.start - grow) * sx), max(0.0, (rows.start - grow) * sy),
                      min(float(width), (cols.stop + grow) * sx),
                      min(float(height), (rows.stop + grow) * sy), score))
    return sorted(boxes, key=lambda b: (round(b[1] / 10), b[0]))


def recognize(ctx: Any, crop: Image.Image) -> tuple[str, float]:
    """Text and mean character confidence of one line image."""
    width = max(8, round(REC_HEIGHT * crop.width / max(1, crop.height)))
    (scores,) = ctx.run({"x": _normalize(crop.resize((width, REC_HEIGHT)))}, session="rec")
    best, confidence = scores[0].argmax(axis=1), scores[0].max(axis=1)
    keep = (best != 0) & np.concatenate([[True], best[1:] != best[:-1]])
    alphabet: list[str] = ctx.state
    text = "".join(alphabet[i] for i in best[keep] if i < len(alphabet))
    return text, float(confidence[keep].mean()) if keep.any() else 0.0


def predict(ctx: Any, input: dict[str, Any]) -> dict[str, Any]:
    """Text lines with boxes [x0, y0, x1, y1] and confidences, top to bottom."""
    uri = input.get("image")
    if not isinstance(uri, str):
        raise ValueError("'image' must be a data URI string")
    image = decode_image(uri, mode="RGB")
    lines: list[dict[str, Any]] = []
    for x0, y0, x1, y1, _ in detect(ctx, image):
        text, confidence = recognize(ctx, image.crop((round(x0), round(y0), round(x1), round(y1))))
        if not text.strip() or confidence < MIN_CONFIDENCE:
            continue
        lines.append({"text": text, "confidence": round(confidence, 4),
                      "box": [round(x0), round(y0), round(x1), round(y1)]})
        ctx.log(f"line {len(lines)}: {text}")
        ctx.output({"lines": list(lines)})
    return {"lines": lines, "text": "\n".join(line["text"] for line in lines)}
