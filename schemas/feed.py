"""The account event feed (`GET /v1/events`): its query, its page, its cursor, its wake-up.

The feed lists every event the read model recorded for one owner's predictions, oldest
first. An item's `id` is `schemas.events.event_id`: the event's Kafka `ce_id` and its
webhook's `webhook-id`, so webhooks, polling and Kafka can be reconciled against each other.

The cursor is opaque to clients: the (`txid`, `position`) of the last row handed out
(see store.feed for why both). It stays valid across restarts of every service.

The projector wakes long-polling readers with a NOTIFY on the prediction-change channel
whose payload is `feed_notice(owner)`; the `@` sets it apart from the per-prediction
`<id>:<status>` payloads (prediction ids never start with `@`).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from schemas.events import EventType
from schemas.topics import MODEL_NAME

FEED_NOTICE_PREFIX = "@"
FEED_TYPES = tuple(t.value for t in EventType if t is not EventType.CANCEL_REQUESTED)
"""The event types the feed can hold (cancel requests travel on the control topic only)."""


def feed_notice(owner: str) -> str:
    """The NOTIFY payload saying that `owner`'s feed has new events."""
    return f"{FEED_NOTICE_PREFIX}{owner}"


def notice_owner(payload: str) -> str | None:
    """The owner a feed notice is about, or None for any other payload."""
    return payload[len(FEED_NOTICE_PREFIX):] if payload.startswith(FEED_NOTICE_PREFIX) else None


class CursorError(ValueError):
    """A cursor this API did not hand out."""


@dataclass(frozen=True, order=True)
class Cursor:
    """A position in an owner's feed: just after the row (`txid`, `position`)."""

    txid: int = 0
    position: int = 0

    def encode(self) -> str:
        """The opaque text a client passes back as `after`."""
        return base64.urlsafe_b64encode(orjson.dumps([self.txid, self.position])).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """The position `text` stands for; CursorError when it is not one of ours."""
        try:
            txid, position = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
            raise CursorError(text) from exc
        if not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**63
                   for n in (txid, position)):
            raise CursorError(text)
        return cls(txid, position)


_TYPE = "|".join(t.replace(".", r"\.") for t in FEED_TYPES)
_MODEL = MODEL_NAME.pattern.strip("^$")
TYPES_PATTERN = rf"^({_TYPE})(,({_TYPE}))*$"
MODELS_PATTERN = rf"^{_MODEL}(,{_MODEL})*$"


class FeedQuery(BaseModel):
    """Query parameters of `GET /v1/events`."""

    model_config = ConfigDict(extra="forbid")

    after: str | None = Field(default=None, max_length=200,
                              description="Opaque cursor from a previous page's `next`; "
                                          "absent = from the oldest event kept")
    types: str | None = Field(default=None, max_length=1000, pattern=TYPES_PATTERN,
                              description="Comma-separated CloudEvents types, e.g. "
                                          "`inferhook.prediction.succeeded`; absent = all")
    models: str | None = Field(default=None, max_length=1000, pattern=MODELS_PATTERN,
                               description="Comma-separated owner/name models; absent = all")
    limit: int = Field(default=50, ge=1, le=500, description="Events per page")

    @property
    def type_list(self) -> list[str]:
        """The `types` asked for (empty: all)."""
        return sorted(set(self.types.split(","))) if self.types else []

    @property
    def model_list(self) -> list[str]:
        """The `models` asked for (empty: all)."""
        return sorted(set(self.models.split(","))) if self.models else []


class FeedEvent(BaseModel):
    """One event of the account feed."""

    id: str = Field(description="The event id: the same as its webhook's `webhook-id` and its "
                                "Kafka `ce_id`")
    type: str = Field(description="CloudEvents type, e.g. inferhook.prediction.succeeded")
    prediction_id: str
    model: str
    sequence: int = Field(description="Strictly increasing per prediction; 0 is `created`")
    time: datetime
    data: dict[str, Any] = Field(description="The event's data, as on the events topic")


class FeedPage(BaseModel):
    """Body of `GET /v1/events`: the next events, oldest first."""

    results: list[FeedEvent]
    next: str = Field(description="Cursor to pass as `after` for what comes next (also when "
                                  "this page is empty)")
    has_more: bool = Field(description="True when more events are already waiting")
