"""W3C trace context from the HTTP request, through Kafka, to the webhook: one prediction, one trace.

Ingest continues the caller's `traceparent` (or starts a trace) in a server span; the
`created` records it writes carry a `traceparent` header (see `inferhook.kafka.publish`);
the executor continues that trace in a consumer span and puts its own `traceparent` on
the events it emits; the dispatcher remembers the latest `traceparent` of each prediction
it projects and sends it, under a client span, on the webhook request. The trace id lives
in those headers only: nothing stores it.

The dispatcher's memory is in-process and bounded (`TraceParents`): a webhook sent by
another dispatcher, or after a restart, starts a trace of its own.

Spans are real OpenTelemetry SDK spans, so ids are made and propagated whatever the
exporter. With `INFERHOOK_TRACING_EXPORTER=none` (the default) a trace no caller sampled is
not recorded: its ids are made and propagated all the same, flagged not sampled, and a
caller's sampled `traceparent` is honoured. Recording spans that go nowhere cost a few
hundred microseconds of CPU per prediction.
"""

from __future__ import annotations

import functools
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from inferhook.settings import TracingSettings

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_PROPAGATOR = TraceContextTextMapPropagator()
_SETUP: list[TracerProvider] = []
"""The provider this process installed (at most one: OpenTelemetry allows one)."""


def setup(settings: TracingSettings, *, service: str) -> None:
    """Install the tracer provider of this process, once; later calls do nothing.

    Every service calls it when it starts (tests run several in one process: the first wins).
    """
    if _SETUP:
        return
    processor = _processor(settings)
    provider = TracerProvider(resource=Resource.create({"service.name": f"inferhook-{service}"}),
                              sampler=None if processor else ParentBased(ALWAYS_OFF))
    if processor is not None:
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    _SETUP.append(provider)
    if settings.exporter != "none":
        log.info("exporting traces to %s", settings.exporter)


def _processor(settings: TracingSettings) -> SpanProcessor | None:
    exporter: SpanExporter
    if settings.exporter == "none":
        return None
    if settings.exporter == "console":
        exporter = ConsoleSpanExporter()
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise ValueError("INFERHOOK_TRACING_EXPORTER=otlp needs the otlp extra "
                             "(pip install 'inferhook[otlp]')") from exc
        exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint or None)
    return BatchSpanProcessor(exporter)


@functools.cache
def tracer() -> trace.Tracer:
    """The tracer inferhook's spans come from (made once: getting one costs microseconds)."""
    return trace.get_tracer("inferhook")


def from_http(headers: Mapping[str, str]) -> Context:
    """The trace context an HTTP request's `traceparent` names (empty: start a trace)."""
    return _PROPAGATOR.extract(headers)


def from_kafka(headers: Sequence[tuple[str, bytes]]) -> Context:
    """The trace context a Kafka record's `traceparent` header names (empty when none)."""
    carrier = {name: value.decode("ascii", "replace") for name, value in headers
               if name in (TRACEPARENT, TRACESTATE)}
    return _PROPAGATOR.extract(carrier) if carrier else Context()


def http_headers(context: Context | None = None) -> dict[str, str]:
    """`traceparent` (and `tracestate`) of `context` (default: the current one), if it has a span."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=context)
    return carrier


def kafka_headers(context: Context | None = None) -> list[tuple[str, bytes]]:
    """The same as Kafka record headers."""
    return [(name, value.encode()) for name, value in http_headers(context).items()]


class TraceParents:
    """The latest `traceparent` seen for each prediction, the `capacity` most recent ones."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[str, bytes] = OrderedDict()

    def remember(self, prediction_id: str, headers: Sequence[tuple[str, bytes]]) -> None:
        """Keep the record's `traceparent`, if it has one."""
        for name, value in headers:
            if name == TRACEPARENT:
                self._seen[prediction_id] = value
                self._seen.move_to_end(prediction_id)
                if len(self._seen) > self.capacity:
                    self._seen.popitem(last=False)
                return

    def context(self, prediction_id: str) -> Context:
        """The prediction's trace context, or an empty one (a new trace) when unknown."""
        value = self._seen.get(prediction_id)
        return from_kafka([(TRACEPARENT, value)]) if value is not None else Context()
