"""Write the example input of inferhook/piper-joe (the ONNX voice ships in a package).

The expected output holds the sentence the example speaks; the example test checks the
audio's format and loudness, and the speech round trip test has Whisper read it back.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLE = "The quick brown fox jumps over the lazy dog."


def main() -> None:
    """Write example_input.json and example_expected.json next to this file."""
    (HERE / "example_input.json").write_text(json.dumps({"text": EXAMPLE}) + "\n")
    (HERE / "example_expected.json").write_text(json.dumps({"text": EXAMPLE, "sample_rate": 22050}) + "\n")
    print(f"piper: wrote example_input.json, example_expected.json to {HERE}")


if __name__ == "__main__":
    main()
