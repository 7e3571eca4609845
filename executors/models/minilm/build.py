"""Write the example input of inferhook/minilm (the ONNX file ships in a package)."""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLE = "A man is playing a guitar on stage."


def main() -> None:
    """Write example_input.json next to this file."""
    (HERE / "example_input.json").write_text(json.dumps({"text": EXAMPLE}) + "\n")
    print(f"minilm: wrote example_input.json to {HERE}")


if __name__ == "__main__":
    main()
