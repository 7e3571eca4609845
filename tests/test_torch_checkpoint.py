"""executors.convert.torch_checkpoint: torch.save files read without torch, and nothing else run.

The checkpoints here are written the way torch.save writes them (same pickle opcodes, same
persistent ids, same file layouts), with stand-ins for torch's classes registered under
torch's module names while pickling. The real checkpoints are read by the model builds.
"""

from __future__ import annotations

import io
import os
import pickle
import sys
import types
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from executors.convert.torch_checkpoint import LEGACY_MAGIC, load_checkpoint


@dataclass
class Storage:
    kind: str
    key: str
    data: np.ndarray


def _rebuild_tensor_v2(*args: Any) -> None:
    raise AssertionError("only pickled, never called")


class FloatStorage:
    pass


class HalfStorage:
    pass


STORAGE_CLASSES = {"FloatStorage": FloatStorage, "HalfStorage": HalfStorage}


@dataclass
class Tensor:
    storage: Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_tensor_v2, (self.storage, self.offset, self.size, self.stride, False, OrderedDict()))


class TorchPickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, *, legacy: bool) -> None:
        super().__init__(file, protocol=2)
        self.legacy = legacy

    def persistent_id(self, obj: Any) -> Any:
        if not isinstance(obj, Storage):
            return None
        pid = ("storage", STORAGE_CLASSES[obj.kind], obj.key, "cpu", obj.data.size)
        return (*pid, None) if self.legacy else pid


@pytest.fixture
def fake_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch and torch._utils as pickle looks them up, holding the stand-ins."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    for cls in STORAGE_CLASSES.values():
        cls.__module__ = "torch"
        setattr(torch, cls.__name__, cls)
    _rebuild_tensor_v2.__module__ = "torch._utils"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)


def state_dict() -> tuple[dict[str, Any], list[Storage], dict[str, np.ndarray]]:
    """Two tensors sharing a storage (one transposed, one at an offset) and a half tensor."""
    shared = Storage("FloatStorage", "0", np.arange(10, dtype="<f4"))
    half = Storage("HalfStorage", "1", np.array([1.5, -2.0], dtype="<f2"))
    obj: dict[str, Any] = {"net": OrderedDict([
        ("weight_t", Tensor(shared, 0, (3, 2), (1, 3))),
        ("bias", Tensor(shared, 6, (4,), (1,))),
        ("scale", Tensor(half, 0, (2,), (1,))),
    ]), "epoch": 3}
    expected: dict[str, np.ndarray] = {"weight_t": np.arange(6, dtype=np.float32).reshape(2, 3).T,
                "bias": np.array([6, 7, 8, 9], dtype=np.float32),
                "scale": np.array([1.5, -2.0], dtype=np.float16)}
    return obj, [shared, half], expected


def save_zip(path: Path, obj: Any, storages: list[Storage]) -> None:
    buffer = io.BytesIO()
    TorchPickler(buffer, legacy=False).dump(obj)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ckpt/data.pkl", buffer.getvalue())
        archive.writestr("ckpt/byteorder", "little")
        for storage in storages:
            archive.writestr(f"ckpt/data/{storage.key}", storage.data.tobytes())


def save_legacy(path: Path, obj: Any, storages: list[Storage]) -> None:
    buffer = io.BytesIO()
    for header in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}):
        pickle.dump(header, buffer, protocol=2)
    TorchPickler(buffer, legacy=True).dump(obj)
    pickle.dump([s.key for s in storages], buffer, protocol=2)
    for storage in storages:
        buffer.write(np.array([storage.data.size], dtype="<i8").tobytes())
        buffer.write(storage.data.tobytes())
    path.write_bytes(buffer.getvalue())


@pytest.mark.parametrize("save", [save_zip, save_legacy])
def test_tensors_come_back_as_arrays(fake_torch: None, tmp_path: Path, save: Any) -> None:
    obj, storages, expected = state_dict()
    path = tmp_path / "checkpoint.pt"
    save(path, obj, storages)
    loaded = load_checkpoint(path)
    assert loaded["epoch"] == 3
    assert list(loaded["net"]) == list(expected)
    for name, array in expected.items():
        assert loaded["net"][name].dtype == array.dtype
        assert np.array_equal(loaded["net"][name], array), name


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps({"w": Exploit()}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="system"):
        load_checkpoint(path)
    assert not marker.exists()
