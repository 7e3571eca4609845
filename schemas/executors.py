"""Body of `GET /v1/executors`: who serves each model now, and its backlog, as Kafka shows it."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ModelExecutors(BaseModel):
    """One model's executors and backlog (from the executors consumer group)."""

    model: str = Field(description="owner/name of a served model")
    executors: int = Field(ge=0, description="Executor processes consuming its requests now "
                                             "(0: scaled to zero; the next request starts one)")
    backlog: int = Field(ge=0, description="Requests accepted and not finished by an executor "
                                           "(waiting or running), the number scaling is based on")


class ExecutorList(BaseModel):
    """Every served model, in catalog order (models with no executor included)."""

    results: list[ModelExecutors]
