"""`-i key=value` parsing of `inferhook predict`: JSON when it parses, `@file` as a data URI."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from cli.inputs import parse_inputs


def test_values_are_json_when_they_parse_else_text() -> None:
    assert parse_inputs(["n=3", "x=1.5", "flag=true", "tags=[1, 2]", "name=seven", "empty=",
                         "eq=a=b"]) == {"n": 3, "x": 1.5, "flag": True, "tags": [1, 2],
                                        "name": "seven", "empty": "", "eq": "a=b"}


def test_at_file_becomes_a_data_uri_with_its_media_type(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_bytes(b"\x89PNG")
    (tmp_path / "blob").write_bytes(b"\x00\x01")
    got = parse_inputs(["image=@x.png", "raw=@blob"], base=tmp_path)
    assert got["image"] == "data:image/png;base64," + base64.b64encode(b"\x89PNG").decode()
    assert got["raw"].startswith("data:application/octet-stream;base64,")


def test_bad_pairs_and_missing_files_are_named() -> None:
    with pytest.raises(ValueError, match="key=value"):
        parse_inputs(["novalue"])
    with pytest.raises(ValueError, match="no such file"):
        parse_inputs(["image=@/nonexistent.png"])
