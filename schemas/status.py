"""Prediction lifecycle: pending → started → succeeded | failed | canceled."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Where a prediction is in its lifecycle."""

    PENDING = "pending"
    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    def is_terminal(self) -> bool:
        """True for the final states; no event moves a prediction out of one."""
        return self in TERMINAL


TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELED})


class FailureReason(StrEnum):
    """Machine-readable reason carried by a `failed` (or `canceled`) prediction."""

    INPUT_INVALID = "input_invalid"
    MODEL_ERROR = "model_error"
    TIMED_OUT = "timed_out"
    EXPIRED_IN_QUEUE = "expired_in_queue"
    ENQUEUE_FAILED = "enqueue_failed"
    CANCELED_BY_USER = "canceled_by_user"
    DEADLINE = "deadline"
    INFRASTRUCTURE = "infrastructure"
    """Every attempt was lost to the infrastructure (executor crash, kill, a model that
    would not load) and the manifest's `max_retries` are spent."""
