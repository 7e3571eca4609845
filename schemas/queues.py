"""Body of `GET /v1/queues`: how much work waits for each served model."""

from __future__ import annotations

from pydantic import BaseModel, Field

from schemas.priority import Priority


class PriorityDepth(BaseModel):
    """One model's waiting and running predictions of one priority (one request topic)."""

    priority: Priority
    pending: int = Field(ge=0, description="Predictions of this priority accepted and not yet started")
    started: int = Field(ge=0, description="Predictions of this priority loading or running now")


class QueueDepth(BaseModel):
    """One model's waiting and running predictions, counted across every owner."""

    model: str = Field(description="owner/name of a served model")
    pending: int = Field(ge=0, description="Predictions accepted and not yet started")
    started: int = Field(ge=0, description="Predictions an executor is loading or running now")
    priorities: list[PriorityDepth] = Field(
        description="The same counts by priority: interactive, default, batch (every one listed)")


class QueueList(BaseModel):
    """Every served model's queue depth, in catalog order (models with nothing queued included)."""

    results: list[QueueDepth]
