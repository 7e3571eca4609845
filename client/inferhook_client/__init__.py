"""Python client for inferhook, the webhook-first asynchronous inference service.

    from inferhook_client import Client
    with Client() as client:                 # INFERHOOK_URL, INFERHOOK_API_KEY
        print(client.predictions.run("inferhook/spin", {"milliseconds": 5}))

`AsyncClient` is the same with `await`. Creates carry an automatic Idempotency-Key, so they
are retried safely; `verify_webhook` checks deliveries; `inferhook_client.receivers` and
`inferhook_client.kafka` hold receiver helpers and a Kafka event reader.
"""

from inferhook_client.async_client import AsyncClient
from inferhook_client.errors import (
    APIConnectionError,
    APIError,
    Conflict,
    InferhookError,
    InferhookTimeout,
    NotFound,
    PredictionCanceled,
    PredictionError,
    PredictionFailed,
    RateLimited,
    ServerError,
    Unauthorized,
    ValidationError,
    WebhookVerificationError,
)
from inferhook_client.models import Event, ModelInfo, Prediction, Status
from inferhook_client.retry import RetryPolicy
from inferhook_client.sync_client import Client
from inferhook_client.webhooks import Delivery, verify_delivery, verify_webhook

__all__ = [
    "APIConnectionError", "APIError", "AsyncClient", "Client", "Conflict", "Delivery", "Event",
    "InferhookError", "InferhookTimeout", "ModelInfo", "NotFound", "Prediction",
    "PredictionCanceled", "PredictionError", "PredictionFailed", "RateLimited", "RetryPolicy",
    "ServerError", "Status", "Unauthorized", "ValidationError", "WebhookVerificationError",
    "verify_delivery", "verify_webhook",
]
