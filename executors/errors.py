"""Errors of the executor.

    ExecutorError
    ├── ModelLoadError   the ONNX file or handler could not be loaded (the executor stops)
    ├── PredictionFailed one prediction failed; carries the machine-readable reason
    └── JobStateError    a job was moved against its state table (a bug in the executor)
"""

from __future__ import annotations

from schemas.status import FailureReason


class ExecutorError(Exception):
    """Base of executor errors."""


class ModelLoadError(ExecutorError):
    """A model could not be loaded; the message names the model and the file."""


class PredictionFailed(ExecutorError):
    """One prediction failed; the executor carries on."""

    def __init__(self, reason: FailureReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class JobStateError(ExecutorError):
    """A job was asked to move from its state to one its table does not allow."""
