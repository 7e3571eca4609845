"""Write the example files of inferhook/all-minilm-l6-v2 (the ONNX file ships in a package)."""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEXTS = ["A man is playing a guitar on stage.", "Someone performs music with a guitar.",
         "The central bank raised interest rates again."]


def main() -> None:
    """Write example_input.json and example_expected.json next to this file."""
    (HERE / "example_input.json").write_text(json.dumps({"texts": TEXTS}) + "\n")
    expected = {"closest_pair": [0, 1], "dimensions": 384}
    (HERE / "example_expected.json").write_text(json.dumps(expected) + "\n")
    print(f"minilm-l6: wrote example_input.json, example_expected.json to {HERE}")


if __name__ == "__main__":
    main()
