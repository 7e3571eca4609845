"""Account webhook endpoints: their API bodies, event types and which events they receive."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from schemas.events import EventType
from schemas.topics import MODEL_NAME
from schemas.webhooks import DeliveryState, WebhookDelivery

TEST_EVENT = "webhook.test"
"""The type of the event `POST /v1/webhooks/endpoints/{id}/test` sends."""


class EndpointEvent(StrEnum):
    """Operational events about an endpoint, sent to the owner's other endpoints that
    subscribe to them and written to the Kafka event topic."""

    FAILING = "inferhook.endpoint.failing"
    """Every attempt has failed for half of INFERHOOK_WEBHOOK_DISABLE_AFTER."""
    DISABLED = "inferhook.endpoint.disabled"
    """Every attempt has failed for INFERHOOK_WEBHOOK_DISABLE_AFTER: deliveries are skipped."""
    RECOVERED = "inferhook.endpoint.recovered"
    """An attempt succeeded after a failing warning or a disable."""


ENDPOINT_EVENT_PREFIX = b"inferhook.endpoint."


def is_endpoint_event(headers: Sequence[tuple[str, bytes]]) -> bool:
    """Whether a record of the event topic is an `inferhook.endpoint.*` event (keyed and
    subjected by the endpoint id, not a prediction's: the projector passes over it)."""
    return any(name == "ce_type" and value.startswith(ENDPOINT_EVENT_PREFIX)
               for name, value in headers)


SUBSCRIBABLE = sorted([t.value for t in EventType if t is not EventType.CANCEL_REQUESTED]
                      + [e.value for e in EndpointEvent])
"""Event types an endpoint may name in `event_types`."""


class Payload(StrEnum):
    """What the body of a prediction event's delivery holds."""

    FULL = "full"
    """The prediction object, as GET returns it (thin above INFERHOOK_WEBHOOK_MAX_PAYLOAD_BYTES)."""
    THIN = "thin"
    """`{id, type, status, urls}`: fetch the prediction when you need it."""


def matches(event_type: str, model: str | None, *, event_types: list[str],
            models: list[str]) -> bool:
    """Whether an endpoint with these filters receives the event (empty filter = all;
    `models` only filters prediction events, which have a model)."""
    if event_types and event_type not in event_types:
        return False
    return model is None or not models or model in models


def thin_body(prediction_id: str, event_type: str, status: str, urls: dict[str, str]) -> bytes:
    """The thin payload of a prediction event (JSON bytes, stable key order)."""
    return orjson.dumps({"id": prediction_id, "type": event_type, "status": status, "urls": urls})


class _Filters(BaseModel):
    event_types: list[str] | None = Field(
        default=None, max_length=64,
        description=f"CloudEvents types to receive (empty: all). One of: {', '.join(SUBSCRIBABLE)}")
    models: list[str] | None = Field(
        default=None, max_length=64,
        description="Models (owner/name) whose predictions' events to receive (empty: all)")

    def problems(self) -> list[tuple[list[str | int], str]]:
        """(location, message) of every unknown event type or malformed model name."""
        found: list[tuple[list[str | int], str]] = []
        for i, t in enumerate(self.event_types or []):
            if t not in SUBSCRIBABLE:
                found.append((["event_types", i], f"unknown event type {t!r}"))
        for i, m in enumerate(self.models or []):
            if not MODEL_NAME.match(m):
                found.append((["models", i], f"{m!r} is not an owner/name model name"))
        return found


class EndpointCreate(_Filters):
    """Body of `POST /v1/webhooks/endpoints`."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"url": "https://example.com/hooks", "event_types": ["inferhook.prediction.succeeded"]},
        {"url": "https://example.com/hooks", "models": ["inferhook/digits"], "ordered": True,
         "rate_limit": 10, "payload": "thin"},
    ]})

    url: str = Field(max_length=2048, description="http(s) URL that receives signed webhooks")
    description: str = Field(default="", max_length=1024)
    rate_limit: int | None = Field(default=None, ge=1, le=10_000,
                                   description="Deliveries per second at most (excess waits)")
    ordered: bool = Field(default=False, description="Per prediction, event n+1 is sent only "
                                                     "after n was delivered or failed for good")
    payload: Payload = Payload.FULL
    disabled: bool = False


class EndpointUpdate(_Filters):
    """Body of `PATCH /v1/webhooks/endpoints/{id}`: the fields to change."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"disabled": False}, {"event_types": [], "rate_limit": None}]})

    url: str | None = Field(default=None, max_length=2048)
    description: str | None = Field(default=None, max_length=1024)
    rate_limit: int | None = Field(default=None, ge=1, le=10_000)
    ordered: bool | None = None
    payload: Payload | None = None
    disabled: bool | None = Field(default=None, description="false re-enables a disabled endpoint")


class Endpoint(BaseModel):
    """An account webhook endpoint as the API shows it."""

    id: str
    url: str
    description: str
    event_types: list[str]
    models: list[str]
    rate_limit: int | None
    ordered: bool
    payload: Payload
    disabled: bool
    disabled_at: datetime | None = None
    disabled_reason: str | None = None
    failing_since: datetime | None = Field(
        default=None, description="First failed attempt since the last success")
    created_at: datetime
    updated_at: datetime


class EndpointCreated(Endpoint):
    """Body of a create: the endpoint and its signing secret."""

    secret: str = Field(description="The `whsec_…` secret its webhooks are signed with")


class EndpointList(BaseModel):
    """Body of `GET /v1/webhooks/endpoints`."""

    results: list[Endpoint]
    next: str | None = Field(default=None, description="URL of the next page, if any")


class EndpointDeleted(BaseModel):
    """Body of `DELETE /v1/webhooks/endpoints/{id}`."""

    id: str
    deleted: bool = True


class EndpointSecret(BaseModel):
    """Body of the endpoint secret routes."""

    key: str
    previous_key: str | None = None
    previous_key_expires_at: datetime | None = None


class RecoverRequest(BaseModel):
    """Body of `POST /v1/webhooks/endpoints/{id}/recover`."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"since": "2026-11-30T00:00:00Z"}]})

    since: datetime
    until: datetime | None = None


class Recovered(BaseModel):
    """Body of a recover: how many failed or skipped deliveries were queued again."""

    requeued: int


class EndpointQuery(BaseModel):
    """Query of `GET /v1/webhooks/endpoints`."""

    model_config = {"extra": "forbid"}

    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, description="From the `next` URL of a page")


class EndpointDeliveryQuery(BaseModel):
    """Query of `GET /v1/webhooks/endpoints/{id}/deliveries`."""

    model_config = {"extra": "forbid"}

    status: DeliveryState | None = Field(default=None, description="Only deliveries in this state")
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, description="From the `next` URL of a page")


class EndpointDeliveryList(BaseModel):
    """Body of `GET /v1/webhooks/endpoints/{id}/deliveries`: newest first, with attempts."""

    results: list[WebhookDelivery]
    next: str | None = None


def operational_body(event: str, endpoint_id: str, url: str, at: datetime,
                     failing_since: datetime | None) -> dict[str, Any]:
    """The data of an `inferhook.endpoint.*` event."""
    return {"type": event, "endpoint_id": endpoint_id, "url": url, "time": at.isoformat(),
            "failing_since": failing_since.isoformat() if failing_since else None}
