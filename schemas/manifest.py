"""The model manifest: `manifest.yaml` in each model folder.

A model folder holds the manifest, a Python module with `preprocess`/`postprocess`
(named by `handler`), and the ONNX file (`onnx.path`, relative to the folder, built at
set-up by `onnx.build` when given, or found inside an installed package).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.tasks import TaskKind
from schemas.topics import MODEL_NAME


class OnnxSource(BaseModel):
    """Where the ONNX file comes from."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = None
    """File relative to the model folder."""
    build: str | None = None
    """Script in the model folder that writes `path` (run by `inferhook models build`)."""
    package: str | None = None
    """Installed distribution that ships the file; `path` is then relative to its root."""
    extra: dict[str, str] = Field(default_factory=dict)
    """Further ONNX files by session name, found like `path` (OCR chains `det` then `rec`)."""


class Batching(BaseModel):
    """Dynamic batching limits; max_batch 1 means the model runs one input at a time."""

    model_config = ConfigDict(extra="forbid")

    max_batch: int = Field(default=1, ge=1, le=1024)
    max_delay_ms: float = Field(default=2.0, ge=0, le=1000)


class ModelManifest(BaseModel):
    """Everything the services need to know about one model."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=MODEL_NAME.pattern)
    version: str = "1"
    description: str = ""
    kinds: list[TaskKind] = Field(default_factory=list)
    """Task kinds of the async API (`/v1/async/<kind>`) the model serves, e.g. [embeddings]."""
    onnx: OnnxSource
    handler: str = "model.py"
    """Python file in the folder with preprocess(input) and postprocess(outputs)."""
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] = Field(default_factory=dict)
    example_input: dict[str, Any] | None = None
    example_input_file: str | None = None
    """JSON file in the folder holding the example input (for inputs made at set-up)."""
    batching: Batching = Field(default_factory=Batching)
    max_run_seconds: float = Field(default=60.0, gt=0)
    """A run longer than this is stopped and ends `failed` with reason `timed_out`."""
    queue_deadline_seconds: float = Field(default=3600.0, gt=0)
    """A request dequeued later than this after its creation ends `failed`/`expired_in_queue`."""
    max_queue_depth: int | None = Field(default=None, ge=1)
    """Predictions of this model that may be pending at once (every owner and priority);
    creates beyond it get 429. None: unbounded. INFERHOOK_API_QUEUE_DEPTH_LIMITS overrides."""
    max_retries: int = Field(default=2, ge=0, le=20)
    """Runs lost to infrastructure (executor crash or kill, a model that would not load) are
    run again up to this many times; then the prediction fails `infrastructure`."""
    min_replicas: int = Field(default=0, ge=0, le=64)
    """Executor processes the supervisor keeps running for this model even when it is idle
    (0: scaled to zero after `idle_seconds`, started again on the first request)."""
    max_replicas: int = Field(default=1, ge=1, le=64)
    """Executor processes the supervisor may run for this model while its backlog grows."""
    idle_seconds: float = Field(default=300.0, ge=0)
    """How long the model's queue must be empty before the supervisor stops its executors
    down to `min_replicas`."""
