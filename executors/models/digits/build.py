"""Train the scikit-learn digits classifier and write model.onnx plus the example files.

Run as `python build.py` from any directory; everything is written next to this file.
Deterministic: fixed split and random_state, no downloads (load_digits ships with sklearn).
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

HERE = Path(__file__).resolve().parent
SEED = 0
EXAMPLE_LABEL = 7
EXAMPLE_SIDE = 32


def png_data_uri(pixels: np.ndarray) -> str:
    """Render 8x8 digits pixels (0..16) as a nearest-neighbour scaled grayscale PNG data URI."""
    gray = np.round(pixels.reshape(8, 8) * 255 / 16).astype(np.uint8)
    image = Image.fromarray(gray).resize((EXAMPLE_SIDE, EXAMPLE_SIDE), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def main() -> None:
    """Train, evaluate on the held-out set, convert to ONNX and write the example files."""
    digits = load_digits()
    x = digits.data.astype(np.float32)
    y = digits.target
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, random_state=SEED, stratify=y
    )
    clf = LogisticRegression(max_iter=2000, random_state=SEED)
    pipeline = Pipeline([("scale", StandardScaler()), ("clf", clf)])
    pipeline.fit(x_train, y_train)
    predicted = pipeline.predict(x_test)
    accuracy = float(np.mean(predicted == y_test))

    onnx_model = to_onnx(
        pipeline,
        initial_types=[("pixels", FloatTensorType([None, 64]))],
        options={id(clf): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    (HERE / "model.onnx").write_bytes(onnx_model.SerializeToString())

    hits = np.flatnonzero((y_test == EXAMPLE_LABEL) & (predicted == EXAMPLE_LABEL))
    if hits.size == 0:
        raise SystemExit(f"no held-out {EXAMPLE_LABEL} is classified correctly")
    example = {"image": png_data_uri(x_test[hits[0]])}
    (HERE / "example_input.json").write_text(json.dumps(example) + "\n")
    (HERE / "example_expected.json").write_text(json.dumps({"digit": EXAMPLE_LABEL}) + "\n")

    print(
        f"digits: held-out accuracy {accuracy:.4f} ({len(y_test)} images), "
        f"wrote model.onnx, example_input.json, example_expected.json to {HERE}"
    )


if __name__ == "__main__":
    main()
