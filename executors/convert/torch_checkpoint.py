"""Read the tensors of a PyTorch checkpoint into numpy arrays, without torch.

`torch.save` writes one of two formats:

- zip (PyTorch >= 1.6): `<root>/data.pkl` pickles the object with each storage as a
  persistent id `('storage', <dtype class>, key, location, numel)`; the storage's raw
  little-endian bytes are the member `<root>/data/<key>`.
- legacy: five concatenated records: a pickled magic number, protocol version and
  system info, then the object pickle (storages as persistent ids
  `('storage', <dtype class>, key, location, numel, view)`), the pickled list of storage
  keys, and for each key an int64 element count followed by the raw bytes.

Tensors in the pickle are `torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
...)` calls; they are rebuilt here as strided views of the storage arrays, copied. The
unpickler resolves only the handful of globals a state dict needs (an allowlist), so a
checkpoint cannot run code while it is read.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
"""The first pickled value of a legacy torch.save file."""

STORAGE_DTYPES: dict[str, np.dtype[Any]] = {
    "FloatStorage": np.dtype("<f4"), "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"), "BFloat16Storage": np.dtype("<u2"),
    "LongStorage": np.dtype("<i8"), "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"), "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"), "BoolStorage": np.dtype("?"),
}
"""Element type of each torch storage class (bfloat16 is read as its raw 16 bits)."""


@dataclass
class _Storage:
    """A storage named in the pickle; its bytes are attached once they have been read."""

    kind: str
    numel: int
    data: np.ndarray | None = None

    def array(self) -> np.ndarray:
        if self.data is None:
            raise ValueError("checkpoint names a storage whose data is missing")
        if self.kind == "BFloat16Storage":  # bf16 is the high half of a float32
            return (self.data.astype(np.uint32) << 16).view(np.float32)
        return self.data


@dataclass
class _Tensor:
    """A tensor as the pickle describes it: a strided window on a storage."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def materialize(self) -> np.ndarray:
        base = self.storage.array()
        if not self.size:
            return base[self.offset:self.offset + 1].reshape(()).copy()
        strides = tuple(s * base.itemsize for s in self.stride)
        view = np.lib.stride_tricks.as_strided(base[self.offset:], shape=self.size, strides=strides)
        return view.copy()


def _rebuild_tensor(storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...],
                    *_: Any) -> _Tensor:
    return _Tensor(storage, offset, tuple(size), tuple(stride))


def _rebuild_parameter(tensor: _Tensor, *_: Any) -> _Tensor:
    return tensor


@dataclass
class _StorageType:
    """Stands for a `torch.<Kind>Storage` class named in the pickle."""

    kind: str


class _Unpickler(pickle.Unpickler):
    """Unpickler that knows torch's storages and tensor rebuilders and nothing else."""

    def __init__(self, file: IO[bytes]) -> None:
        super().__init__(file)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        allowed: dict[tuple[str, str], Any] = {
            ("collections", "OrderedDict"): OrderedDict,
            ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
            ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        }
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"checkpoint refers to {module}.{name}, which is not read")
        return allowed[(module, name)]

    def persistent_load(self, pid: Any) -> _Storage:
        if not isinstance(pid, tuple) or pid[0] != "storage" or not isinstance(pid[1], _StorageType):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        kind, key, numel = pid[1].kind, str(pid[2]), int(pid[4])
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        if key not in self.storages:
            self.storages[key] = _Storage(kind, numel)
        return self.storages[key]


def _resolve(value: Any) -> Any:
    """Replace every _Tensor in nested dicts, lists and tuples by its numpy array."""
    if isinstance(value, _Tensor):
        return value.materialize()
    if isinstance(value, dict):
        return type(value)((k, _resolve(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return type(value)(_resolve(v) for v in value)
    return value


def _read_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as archive:
        (pickle_name,) = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        root = pickle_name[: -len("data.pkl")]
        unpickler = _Unpickler(io.BytesIO(archive.read(pickle_name)))
        obj = unpickler.load()
        for key, storage in unpickler.storages.items():
            dtype = STORAGE_DTYPES[storage.kind]
            storage.data = np.frombuffer(archive.read(f"{root}data/{key}"), dtype=dtype,
                                         count=storage.numel)
    return obj


def _read_legacy(path: Path) -> Any:
    with path.open("rb") as file:
        if _Unpickler(file).load() != LEGACY_MAGIC:
            raise ValueError(f"{path} is not a torch checkpoint")
        _Unpickler(file).load()  # protocol version
        _Unpickler(file).load()  # system info
        unpickler = _Unpickler(file)
        obj = unpickler.load()
        keys: list[str] = _Unpickler(file).load()
        for key in keys:
            storage = unpickler.storages[str(key)]
            dtype = STORAGE_DTYPES[storage.kind]
            count = int(np.frombuffer(file.read(8), dtype="<i8")[0])
            storage.data = np.frombuffer(file.read(count * dtype.itemsize), dtype=dtype, count=count)
    return obj


def load_checkpoint(path: Path) -> Any:
    """The object `torch.save` wrote to `path`, with every tensor as a numpy array.

    Handles both the zip and the legacy format. Raises pickle.UnpicklingError when the
    checkpoint refers to anything beyond state dicts of tensors (no code is run).
    """
    reader = _read_zip if zipfile.is_zipfile(path) else _read_legacy
    return _resolve(reader(path))
