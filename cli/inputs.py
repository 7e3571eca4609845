"""Turning `-i key=value` / `-i image=@file.png` arguments into a prediction input."""

from __future__ import annotations

import base64
import json
import mimetypes
from pathlib import Path
from typing import Any


def data_uri(path: Path) -> str:
    """The file as a `data:<media type>;base64,…` URI (media type guessed from its name)."""
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{media_type};base64,{base64.b64encode(path.read_bytes()).decode()}"


def parse_value(text: str, base: Path | None = None) -> Any:
    """`@file` → a data URI; JSON when it parses (numbers, booleans, lists, objects); else the text."""
    if text.startswith("@"):
        path = Path(text[1:]).expanduser()
        if base is not None and not path.is_absolute():
            path = base / path
        if not path.is_file():
            raise ValueError(f"no such file: {path}")
        return data_uri(path)
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_inputs(pairs: list[str], base: Path | None = None) -> dict[str, Any]:
    """`["key=value", …]` as an input object; ValueError naming a pair without `=`."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"-i takes key=value, not {pair!r}")
        out[key] = parse_value(value, base)
    return out
