"""Write the example input of inferhook/ocr: three lines of text rendered with Pillow's own font.

The ONNX files ship in rapidocr-onnxruntime; the font is the one Pillow embeds
(ImageFont.load_default), so nothing is downloaded.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
LINES = ["Invoice 2024-118", "Total due: 42.50 EUR", "Thank you for your order"]


def render() -> Image.Image:
    """Black text on white, one line per entry of LINES."""
    font = ImageFont.load_default(size=36)
    image = Image.new("RGB", (760, 90 + 80 * len(LINES)), "white")
    draw = ImageDraw.Draw(image)
    for index, line in enumerate(LINES):
        draw.text((40, 40 + 80 * index), line, fill="black", font=font)
    return image


def main() -> None:
    """Write example_input.json and example_expected.json next to this file."""
    buffer = io.BytesIO()
    render().save(buffer, format="PNG")
    uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    (HERE / "example_input.json").write_text(json.dumps({"image": uri}) + "\n")
    (HERE / "example_expected.json").write_text(json.dumps({"lines": LINES}) + "\n")
    print(f"ocr: wrote example_input.json, example_expected.json to {HERE}")


if __name__ == "__main__":
    main()
