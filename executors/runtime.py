"""Loading a model folder into ONNX Runtime sessions and running it on a batch of inputs.

Sessions use CUDA when onnxruntime-gpu finds a GPU and CPU otherwise; which one each
session got is logged. All CUDA sessions of a process share the device's primary CUDA
context, which stays initialised for the life of the process, so a pooled executor pays
for context creation once, not on every cold model. Everything here blocks, so callers
run it in a thread pool (ORT releases the GIL), never on the event loop.

A handler module (manifest `handler`) provides either

- `preprocess(input) -> feeds` (arrays with a leading batch dimension of 1) and
  `postprocess(outputs) -> output` (one item's arrays, batch dimension 1); optionally
  `collate(list_of_feeds) -> feeds` (default: concatenate on axis 0) and `OUTPUTS`
  (the output names to fetch; default all); such models batch when `max_batch` > 1; or
- `predict(ctx, input) -> output` for models that chain sessions or carry state between
  runs (OCR, VAD, spin); these run one input at a time and may emit logs and partial
  output through `ctx`.

Either kind may define `setup(model) -> state` (run once after loading; the result is
`ctx.state`), e.g. to calibrate.
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np
import onnxruntime as ort

from executors.errors import ModelLoadError, PredictionFailed
from inferhook.catalog import CatalogEntry
from schemas.status import FailureReason

log = logging.getLogger(__name__)

MAIN = "main"
"""Session name of the manifest's `onnx.path`; `onnx.extra` adds more by name."""

Feeds = dict[str, np.ndarray]
Outcome = Any
"""What running one input gives: its output, or the PredictionFailed it ended with."""


class Emitter(Protocol):
    """Where a running prediction's log lines and partial output go (called from a thread)."""

    def log(self, line: str) -> None: ...

    def output(self, value: Any) -> None: ...


class NullEmitter:
    """Drops logs and partial output (benchmarks, batched runs)."""

    def log(self, line: str) -> None:
        """Drop the line."""

    def output(self, value: Any) -> None:
        """Drop the value."""


def _locate(entry: CatalogEntry, relative: str) -> Path:
    source = entry.manifest.onnx
    if source.package is None:
        return entry.folder / relative
    try:
        dist = metadata.distribution(source.package)
    except metadata.PackageNotFoundError as exc:
        raise ModelLoadError(f"{entry.name}: package {source.package!r} is not installed") from exc
    return Path(str(dist.locate_file(relative)))


def onnx_paths(entry: CatalogEntry) -> dict[str, Path]:
    """Every ONNX file of the model by session name: in its folder or in an installed package."""
    source = entry.manifest.onnx
    if source.path is None:
        raise ModelLoadError(f"{entry.name}: manifest names no onnx.path")
    return {MAIN: _locate(entry, source.path),
            **{name: _locate(entry, rel) for name, rel in source.extra.items()}}


def load_handler(entry: CatalogEntry) -> ModuleType:
    """Import the model's handler module from its folder and check it has what it needs."""
    path = entry.folder / entry.manifest.handler
    spec = importlib.util.spec_from_file_location(
        f"inferhook_models.{entry.name.replace('/', '.').replace('-', '_')}", path)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"{entry.name}: cannot import handler {path}")
    module = importlib.util.module_from_spec(spec)
    # Registered first, as importlib's recipe does: dataclasses (and pickling) in a handler
    # look their module up in sys.modules while it runs.
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[spec.name]
        raise ModelLoadError(f"{entry.name}: handler {path}: {exc}") from exc
    if callable(getattr(module, "predict", None)):
        return module
    for name in ("preprocess", "postprocess"):
        if not callable(getattr(module, name, None)):
            raise ModelLoadError(f"{entry.name}: handler {path} has neither predict() nor {name}()")
    return module


def providers() -> list[str]:
    """CUDA first when this onnxruntime build offers it and an NVIDIA driver is present."""
    available = set(ort.get_available_providers())
    if ctypes.util.find_library("cuda") is None:  # no driver: asking for CUDA only logs errors
        available.discard("CUDAExecutionProvider")
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def new_run_options() -> ort.RunOptions:
    """Run options for one run; set `.terminate = True` from another thread to stop it."""
    options = ort.RunOptions()
    options.log_severity_level = 4  # a terminated run is expected, not an error to log
    return options


@dataclass
class RunContext:
    """What a `predict` handler gets: the sessions, the run's options, logs and partial output."""

    model: LoadedModel
    options: ort.RunOptions
    emitter: Emitter = field(default_factory=NullEmitter)

    @property
    def state(self) -> Any:
        """What the handler's setup() returned."""
        return self.model.state

    def run(self, feeds: Feeds, outputs: list[str] | None = None, *, session: str = MAIN
            ) -> list[np.ndarray]:
        """Run one session with this run's options (stops when the run is terminated)."""
        result: list[np.ndarray] = self.model.sessions[session].run(outputs, feeds, self.options)
        return result

    def log(self, line: str) -> None:
        """Append a line to the prediction's logs."""
        self.emitter.log(line)

    def output(self, value: Any) -> None:
        """Publish the output so far (replaces the previous partial output)."""
        self.emitter.output(value)


@dataclass
class LoadedModel:
    """A model ready to run: its sessions, handler, and what loading it cost."""

    entry: CatalogEntry
    sessions: dict[str, ort.InferenceSession]
    handler: ModuleType
    provider: str
    load_seconds: float
    size_bytes: int
    state: Any = None
    phases: dict[str, float] = field(default_factory=dict)
    """Seconds each part of the load took: `session` (ORT reads, optimises and allocates
    every session), `handler` (importing the handler module), `setup` (its setup())."""

    @property
    def name(self) -> str:
        """The model's `owner/name`."""
        return self.entry.name

    @property
    def session(self) -> ort.InferenceSession:
        """The main session."""
        return self.sessions[MAIN]

    @property
    def max_batch(self) -> int:
        """How many inputs one run may take (1 for `predict` handlers)."""
        if self._custom is not None:
            return 1
        return self.entry.manifest.batching.max_batch

    @property
    def _custom(self) -> Callable[[RunContext, dict[str, Any]], Any] | None:
        predict = getattr(self.handler, "predict", None)
        return predict if callable(predict) else None

    @classmethod
    def load(cls, entry: CatalogEntry, *, intra_op_threads: int = 1,
             provider_names: list[str] | None = None) -> LoadedModel:
        """Create the sessions and run the handler's setup (blocking); on `provider_names`
        when given (bench.gpu_check compares CUDA and CPU), else on `providers()`."""
        paths = onnx_paths(entry)
        for path in paths.values():
            if not path.exists():
                raise ModelLoadError(f"{entry.name}: {path} is missing; run `inferhook models build`")
        started = time.perf_counter()
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        sessions: dict[str, ort.InferenceSession] = {}
        phases: dict[str, float] = {}
        for name, path in paths.items():
            try:
                sessions[name] = ort.InferenceSession(str(path), sess_options=options,
                                                      providers=provider_names or providers())
            except Exception as exc:  # ORT raises its own untyped errors
                raise ModelLoadError(f"{entry.name}: {path}: {exc}") from exc
        phases["session"] = time.perf_counter() - started
        handler = load_handler(entry)
        phases["handler"] = time.perf_counter() - started - phases["session"]
        provider = sessions[MAIN].get_providers()[0]
        size = sum(path.stat().st_size for path in paths.values())
        model = cls(entry, sessions, handler, provider, 0.0, size, phases=phases)
        setup = getattr(handler, "setup", None)
        if callable(setup):
            try:
                model.state = setup(model)
            except Exception as exc:
                raise ModelLoadError(f"{entry.name}: setup failed: {exc}") from exc
        model.load_seconds = time.perf_counter() - started
        phases["setup"] = model.load_seconds - phases["session"] - phases["handler"]
        log.info("loaded %s on %s (%d intra-op threads) in %.3fs", entry.name, provider,
                 intra_op_threads, model.load_seconds)
        return model

    def preprocess(self, payload: dict[str, Any]) -> Feeds:
        """One input's feeds; PredictionFailed(input_invalid) when the input is unusable."""
        try:
            feeds: Feeds = self.handler.preprocess(payload)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise PredictionFailed(FailureReason.INPUT_INVALID, str(exc) or type(exc).__name__) from exc
        return feeds

    def collate(self, items: list[Feeds]) -> Feeds:
        """Feeds of several inputs as one batch (the handler's collate, or concatenation)."""
        collate = getattr(self.handler, "collate", None)
        if callable(collate):
            batch: Feeds = collate(items)
            return batch
        return {name: np.concatenate([item[name] for item in items], axis=0) for name in items[0]}

    def output_names(self) -> list[str]:
        """The outputs fetched for batched models."""
        wanted: list[str] | None = getattr(self.handler, "OUTPUTS", None)
        return list(wanted) if wanted else [o.name for o in self.session.get_outputs()]

    def run_feeds(self, feeds: Feeds, options: ort.RunOptions | None = None) -> dict[str, np.ndarray]:
        """One raw session run on already collated feeds (the benchmark's baseline)."""
        names = self.output_names()
        return dict(zip(names, self.session.run(names, feeds, options), strict=True))

    def run_batch(self, inputs: list[dict[str, Any]], options: ort.RunOptions | None = None,
                  emitters: list[Emitter] | None = None) -> list[Outcome]:
        """Run several inputs: one outcome per input, in order (blocking).

        A bad input fails only itself; when a whole batched run fails, the inputs are
        retried one by one so a poison input cannot fail its neighbours.
        """
        options = options or new_run_options()
        custom = self._custom
        if custom is not None:
            sinks = emitters or [NullEmitter() for _ in inputs]
            return [self._guard(partial(custom, RunContext(self, options, sink), payload))
                    for payload, sink in zip(inputs, sinks, strict=True)]
        outcomes: list[Outcome] = [None] * len(inputs)
        ready: list[tuple[int, Feeds]] = []
        for index, payload in enumerate(inputs):
            try:
                ready.append((index, self.preprocess(payload)))
            except PredictionFailed as failure:
                outcomes[index] = failure
        if not ready:
            return outcomes
        try:
            results = self._run_ready([feeds for _, feeds in ready], options)
        except PredictionFailed as failure:
            if len(ready) == 1 or options.terminate:
                results = [failure] * len(ready)
            else:
                results = [self._guard(partial(self._run_one, feeds, options)) for _, feeds in ready]
        for (index, _), result in zip(ready, results, strict=True):
            outcomes[index] = result
        return outcomes

    def _run_ready(self, items: list[Feeds], options: ort.RunOptions) -> list[Outcome]:
        try:
            outputs = self.run_feeds(self.collate(items) if len(items) > 1 else items[0], options)
        except Exception as exc:  # a model that breaks fails these predictions, not the executor
            raise PredictionFailed(FailureReason.MODEL_ERROR, f"{type(exc).__name__}: {exc}") from exc
        outcomes: list[Outcome] = []
        for row in range(len(items)):
            one = {name: array[row:row + 1] for name, array in outputs.items()}
            outcomes.append(self._guard(partial(self.handler.postprocess, one)))
        return outcomes

    def _run_one(self, feeds: Feeds, options: ort.RunOptions) -> Outcome:
        return self._run_ready([feeds], options)[0]

    @staticmethod
    def _guard(call: Callable[[], Any]) -> Outcome:
        try:
            return call()
        except PredictionFailed as failure:
            return failure
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            return PredictionFailed(FailureReason.INPUT_INVALID, str(exc) or type(exc).__name__)
        except Exception as exc:
            return PredictionFailed(FailureReason.MODEL_ERROR, f"{type(exc).__name__}: {exc}")


def run_direct(model: LoadedModel, inputs: list[dict[str, Any]]) -> list[Outcome]:
    """Serve a batch without Kafka: preprocess, one run, postprocess (for bench/)."""
    return model.run_batch(inputs)
