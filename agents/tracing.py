"""One trace per notification, across topics and workers (OpenTelemetry, W3C trace context).

Spans: ``notify.intake`` (a request resolved or passed on), ``notify.send`` (one delivery
attempt: provider, attempt, outcome) and ``notify.status`` (an event folded into the status).
They are linked through the records themselves: every record an agent produces while a span is
current carries that span's ``traceparent`` header (agents/produce.py calls
:func:`with_trace_context`), and the agent reading it starts its span as that span's child. A
request whose producer sent a ``traceparent`` continues the producer's trace. A retry tier
re-produces a delivery in its record's own context (:meth:`Tracing.carried`), so every attempt
of a delivery hangs off the same trace.

Off by default (``NOTIFY_TRACING_EXPORTER=none``): no provider is built and ``span`` is a
``nullcontext``, so a record costs one flag check. On (``otlp``), spans are batched to an OTLP
HTTP endpoint by the SDK's BatchSpanProcessor, off the event loop's critical path, and sampled
parent-based: a producer's sampling decision is kept, a new trace is kept with
``NOTIFY_TRACING_SAMPLE_RATIO``.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from mode import Service
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from config.settings import Settings, TracingExporter

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_TRACE_HEADERS = (TRACEPARENT, TRACESTATE)
_PROPAGATOR = TraceContextTextMapPropagator()
# Spans waiting for the exporter; past it the SDK drops new ones (and logs it) rather than grow:
# an unreachable collector must not cost a worker its memory. 8x the SDK's default, for bursts.
SPAN_QUEUE = 16384

# Whether any app in this process traces: produce.send asks it per record, and the answer is
# "no" unless a Tracing was built with an exporter.
_tracing_on = False


def _text_headers(headers: Any) -> dict[str, str]:
    """The trace headers of a record (a list of pairs or a mapping, values bytes)."""
    items = headers.items() if isinstance(headers, Mapping) else headers or ()
    found: dict[str, str] = {}
    for name, value in items:
        if name in _TRACE_HEADERS:
            found[name] = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return found


def with_trace_context(headers: Any) -> Any:
    """``headers`` plus the current span's ``traceparent`` (replacing one it carried), or
    ``headers`` unchanged when nothing is traced."""
    if not _tracing_on or not trace.get_current_span().get_span_context().is_valid:
        return headers
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    items = headers.items() if isinstance(headers, Mapping) else headers or ()
    kept = [(k, v) for k, v in items if k not in _TRACE_HEADERS]
    return kept + [(k, v.encode("latin-1")) for k, v in carrier.items()]


class Tracing(Service):
    """The app's tracer, like its metrics object: one per app, a Service of the app so that
    it stops with the worker (the last batch of spans is exported then)."""

    def __init__(
        self, settings: Settings, exporter: SpanExporter | None = None, **kwargs: Any
    ) -> None:
        """``exporter``: where spans go instead of OTLP/HTTP (the cost benchmark's)."""
        global _tracing_on
        super().__init__(**kwargs)
        self.enabled = settings.tracing_exporter is not TracingExporter.NONE
        self._provider: TracerProvider | None = None
        if not self.enabled:
            self._tracer: trace.Tracer = trace.NoOpTracer()
            return
        instance = f"{socket.gethostname()}:{os.getpid()}"
        self._provider = TracerProvider(
            sampler=ParentBased(TraceIdRatioBased(settings.tracing_sample_ratio)),
            resource=Resource.create(
                {"service.name": settings.app_id, "service.instance.id": instance}
            ),
        )
        self._provider.add_span_processor(
            BatchSpanProcessor(
                exporter or OTLPSpanExporter(endpoint=settings.tracing_otlp_endpoint),
                max_queue_size=SPAN_QUEUE,
            )
        )
        self._tracer = self._provider.get_tracer("notify")
        _tracing_on = True

    def span(
        self, name: str, headers: Any, attributes: Mapping[str, str | int] | None = None
    ) -> AbstractContextManager[Span | None]:
        """A span for handling one record, the child of the span that produced it."""
        if not self.enabled:
            return nullcontext()
        parent = _PROPAGATOR.extract(_text_headers(headers))
        return self._tracer.start_as_current_span(
            name, context=parent, kind=SpanKind.CONSUMER, attributes=attributes
        )

    def carried(self, headers: Any) -> AbstractContextManager[None]:
        """The record's own trace context as the current one, with no span of its own: what
        is produced inside carries the record's ``traceparent`` on."""
        if not self.enabled:
            return nullcontext()
        return _attached(_PROPAGATOR.extract(_text_headers(headers)))

    def flush(self) -> None:
        """Export every span made so far (blocking)."""
        if self._provider is not None:
            self._provider.force_flush()

    async def on_stop(self) -> None:
        if self._provider is not None:
            # Exports what is still batched: a blocking HTTP call, kept off the loop.
            await asyncio.to_thread(self._provider.shutdown)


@contextmanager
def _attached(ctx: otel_context.Context) -> Iterator[None]:
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


def annotate(attributes: Mapping[str, str | int]) -> None:
    """Attributes on the current span (a no-op span when nothing is traced)."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(attributes)
