"""Loading a model folder into an ONNX Runtime session and running it.

Sessions use CUDA when onnxruntime-gpu finds a GPU and CPU otherwise; which one each
session got is logged. `run` blocks, so callers run it in a thread pool (ORT releases
the GIL), never on the event loop.
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import logging
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnxruntime as ort

from executors.errors import ModelLoadError, PredictionFailed
from inferhook.catalog import CatalogEntry
from schemas.status import FailureReason

log = logging.getLogger(__name__)


def onnx_path(entry: CatalogEntry) -> Path:
    """Where the model's ONNX file is: in its folder, or inside an installed package."""
    source = entry.manifest.onnx
    if source.path is None:
        raise ModelLoadError(f"{entry.name}: manifest names no onnx.path")
    if source.package is None:
        return entry.folder / source.path
    try:
        dist = metadata.distribution(source.package)
    except metadata.PackageNotFoundError as exc:
        raise ModelLoadError(f"{entry.name}: package {source.package!r} is not installed") from exc
    return Path(str(dist.locate_file(source.path)))


def load_handler(entry: CatalogEntry) -> ModuleType:
    """Import the model's handler module (preprocess/postprocess) from its folder."""
    path = entry.folder / entry.manifest.handler
    spec = importlib.util.spec_from_file_location(
        f"inferhook_models.{entry.name.replace('/', '.').replace('-', '_')}", path)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"{entry.name}: cannot import handler {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in ("preprocess", "postprocess"):
        if not callable(getattr(module, name, None)):
            raise ModelLoadError(f"{entry.name}: handler {path} has no {name}()")
    return module


def providers() -> list[str]:
    """CUDA first when this onnxruntime build offers it and an NVIDIA driver is present."""
    available = set(ort.get_available_providers())
    if ctypes.util.find_library("cuda") is None:  # no driver: asking for CUDA only logs errors
        available.discard("CUDAExecutionProvider")
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


@dataclass
class LoadedModel:
    """A model ready to run: its session, handler and how long loading took."""

    entry: CatalogEntry
    session: ort.InferenceSession
    handler: ModuleType
    provider: str
    load_seconds: float

    @classmethod
    def load(cls, entry: CatalogEntry, *, intra_op_threads: int = 1) -> LoadedModel:
        """Create the session (blocking)."""
        path = onnx_path(entry)
        if not path.exists():
            raise ModelLoadError(f"{entry.name}: {path} is missing; run `inferhook models build`")
        started = time.perf_counter()
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(str(path), sess_options=options, providers=providers())
        except Exception as exc:  # ORT raises its own untyped errors
            raise ModelLoadError(f"{entry.name}: {path}: {exc}") from exc
        handler = load_handler(entry)
        provider = session.get_providers()[0]
        seconds = time.perf_counter() - started
        log.info("loaded %s on %s in %.3fs", entry.name, provider, seconds)
        return cls(entry, session, handler, provider, seconds)

    def predict(self, payload: dict[str, Any]) -> Any:
        """Preprocess, run and postprocess one input (blocking)."""
        try:
            feeds = self.handler.preprocess(payload)
        except (ValueError, KeyError, TypeError) as exc:
            raise PredictionFailed(FailureReason.INPUT_INVALID, str(exc) or type(exc).__name__) from exc
        try:
            names = [o.name for o in self.session.get_outputs()]
            arrays: list[np.ndarray] = self.session.run(names, feeds)
            return self.handler.postprocess(dict(zip(names, arrays, strict=True)))
        except Exception as exc:  # a model that breaks fails this prediction, not the executor
            raise PredictionFailed(FailureReason.MODEL_ERROR, f"{type(exc).__name__}: {exc}") from exc
