"""Webhook delivery states and the bodies of the webhook visibility routes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from schemas.events import event_id


def webhook_id(prediction_id: str, sequence: int) -> str:
    """The Standard Webhooks message id of one event: the same on every retry and replay,
    and the same as the event's Kafka `ce_id` and feed id (schemas.events.event_id)."""
    return event_id(prediction_id, sequence)


def endpoint_of(url: str) -> str:
    """`scheme://host:port` of a webhook URL: the unit of concurrency caps and breakers."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{parts.hostname}:{port}"


class DeliveryState(StrEnum):
    """Where one webhook message (one outbox row) stands."""

    PENDING = "pending"
    """Waiting for its first attempt or a retry, or in flight."""
    DELIVERED = "delivered"
    """A 2xx came back."""
    FAILED = "failed"
    """Retries used up, or the endpoint answered 410 Gone; `redeliver` sends it again."""
    SUPERSEDED = "superseded"
    """Not sent (again): a newer state of the same prediction replaced it."""
    SKIPPED = "skipped"
    """Not sent: its endpoint was disabled; `POST …/endpoints/{id}/recover` sends it."""


class WebhookAttempt(BaseModel):
    """One HTTP attempt of one delivery."""

    attempt: int = Field(description="1 for the first attempt of this delivery")
    time: datetime = Field(description="When the attempt started")
    status_code: int | None = Field(description="HTTP status, or null when no response came")
    latency_ms: float
    error: str | None = None
    response: str = Field(default="", description="The first 4 KiB of the response body")


class WebhookDelivery(BaseModel):
    """One webhook message of a prediction, with its attempts (newest last)."""

    webhook_id: str = Field(description="The `webhook-id` header; the same on every attempt")
    prediction_id: str
    event_type: str
    sequence: int = Field(description="The event's sequence number within its prediction")
    url: str
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime | None = Field(description="When pending: when it is next due")
    created_at: datetime
    finished_at: datetime | None = None
    last_status: int | None = None
    last_error: str | None = None
    attempt_log: list[WebhookAttempt] = Field(default_factory=list)
    endpoint_id: str | None = Field(default=None, description="The account endpoint it went "
                                                              "to; null for a prediction's webhook")


class WebhookDeliveryList(BaseModel):
    """Body of `GET /v1/predictions/{id}/webhooks` and `GET /v1/webhooks/deliveries`."""

    results: list[WebhookDelivery]
    next: str | None = Field(default=None, description="URL of the next (older) page, if any")


class WebhookSigningKeys(BaseModel):
    """Body of the secret routes: what webhooks to the caller are signed with."""

    key: str = Field(description="The current `whsec_…` secret")
    previous_key: str | None = Field(
        default=None, description="After a rotation: the old secret, still signing until "
                                   "previous_key_expires_at")
    previous_key_expires_at: datetime | None = None
    public_key: str | None = Field(
        default=None, description="`whpk_…` ed25519 key verifying `v1a` signatures, when on")


class DeliveryQuery(BaseModel):
    """Query of `GET /v1/webhooks/deliveries`."""

    model_config = {"extra": "forbid"}

    status: DeliveryState | None = Field(default=None, description="Only deliveries in this state")
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, description="From the `next` URL of a page")
