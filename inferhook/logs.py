"""One logging setup for every process: readable in development, JSON lines otherwise.

Each line carries the id of the prediction being handled, when there is one: code that
works on one prediction binds it (`bound_prediction`, or `bind_prediction` where the
caller resets the context, as ingest's middleware does per request), and the handler's
`PredictionContext` filter puts it on every record as `prediction_id`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import orjson

PREDICTION_ID: ContextVar[str | None] = ContextVar("inferhook_prediction_id", default=None)
"""The prediction the current task works on (each asyncio task has its own copy)."""


def bind_prediction(prediction_id: str | None) -> None:
    """Tag the following log lines of the current context with `prediction_id`."""
    PREDICTION_ID.set(prediction_id)


@contextmanager
def bound_prediction(prediction_id: str | None) -> Iterator[None]:
    """Tag log lines with `prediction_id` inside the block."""
    token = PREDICTION_ID.set(prediction_id)
    try:
        yield
    finally:
        PREDICTION_ID.reset(token)


class PredictionContext(logging.Filter):
    """Puts the bound prediction id on each record (`prediction_id`; None when unbound)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "prediction_id", None) is None:
            record.prediction_id = PREDICTION_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, prediction id and exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record), "level": record.levelname,
                 "logger": record.name, "message": record.getMessage()}
        if (prediction_id := getattr(record, "prediction_id", None)) is not None:
            entry["prediction_id"] = prediction_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


class DevFormatter(logging.Formatter):
    """Readable lines; a prediction shows as `[…` and the last 8 characters of its id `]`."""

    def __init__(self, service: str) -> None:
        super().__init__(f"%(asctime)s {service:<10} %(levelname)-7s %(name)s:%(prediction)s "
                         "%(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        prediction_id = getattr(record, "prediction_id", None)
        record.prediction = f" [{short_id(prediction_id)}]" if prediction_id else ""
        return super().format(record)


def short_id(prediction_id: str) -> str:
    """The short form of a prediction id in readable logs (its random tail)."""
    return "…" + prediction_id[-8:]


def setup_logging(*, dev: bool, service: str) -> None:
    """Configure the root logger once for this process."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(DevFormatter(service) if dev else JsonFormatter())
    handler.addFilter(PredictionContext())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    for noisy in ("aiokafka", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
