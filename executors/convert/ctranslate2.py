"""Read the variables of a CTranslate2 `model.bin` into numpy arrays, without ctranslate2.

Layout (little-endian), spec version 6: u32 version, u16-length spec name, u32 revision,
u32 variable count, then per variable a u16-length name, u8 rank, u32 dims, u8 dtype
(0 f32, 1 i8, 2 i16, 3 i32, 4 f16; bf16 is refused), u32 byte count and the raw bytes;
then a u32 alias count and (alias, target) name pairs. Strings are NUL-terminated within
their length. Tied weights appear once, under an alias (Whisper's output projection is
its token embedding).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np

VERSION = 6
DTYPES: dict[int, np.dtype[Any]] = {0: np.dtype("<f4"), 1: np.dtype("i1"), 2: np.dtype("<i2"),
                                    3: np.dtype("<i4"), 4: np.dtype("<f2")}


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def number(self, fmt: str) -> int:
        (value,) = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return int(value)

    def text(self) -> str:
        size = self.number("H")
        self.pos += size
        return self.data[self.pos - size:self.pos].decode().rstrip("\0")

    def array(self, dims: list[int], dtype: np.dtype[Any], size: int) -> np.ndarray:
        if size != dtype.itemsize * int(np.prod(dims)):
            raise ValueError(f"variable of shape {dims} holds {size} bytes")
        self.pos += size
        return np.frombuffer(self.data, dtype, size // dtype.itemsize, self.pos - size).reshape(dims)


def load_model_bin(path: Path) -> tuple[str, dict[str, np.ndarray]]:
    """The spec name (e.g. `WhisperSpec`) and every variable by name, aliases resolved.

    Arrays are read-only views of the file's bytes. Raises ValueError for another
    version of the format or a variable whose size does not match its shape.
    """
    reader = _Reader(path.read_bytes())
    version = reader.number("I")
    if version != VERSION:
        raise ValueError(f"{path}: CTranslate2 model version {version}, expected {VERSION}")
    spec = reader.text()
    reader.number("I")  # the spec's revision
    variables: dict[str, np.ndarray] = {}
    for _ in range(reader.number("I")):
        name = reader.text()
        dims = [reader.number("I") for _ in range(reader.number("B"))]
        code = reader.number("B")
        if code not in DTYPES:
            raise ValueError(f"{path}: {name} has dtype code {code}, which is not supported")
        variables[name] = reader.array(dims, DTYPES[code], reader.number("I"))
    for _ in range(reader.number("I")):
        alias, target = reader.text(), reader.text()
        variables[alias] = variables[target]
    return spec, variables
