"""What tracing costs per delivery, with nothing else: the spans and ``traceparent`` headers one
delivery and its share of a request make (agents/tracing.py), timed in a loop, off and on. On,
spans go through the SDK's BatchSpanProcessor to an exporter that encodes each batch as OTLP
protobuf (what the OTLP/HTTP exporter sends) and drops it, so everything but the network write
is counted; CPU is the whole process's (the batch thread included).

    .venv/bin/python -m bench.tracing_cost [--deliveries N]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from agents.tracing import Tracing, annotate, with_trace_context
from config.settings import Settings, TracingExporter

# The bench's mix: 1-3 channels per request, so about two deliveries per request.
DELIVERIES_PER_REQUEST = 2
PRODUCER_HEADERS = [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]


class EncodingExporter(SpanExporter):
    """Encodes a batch as the OTLP exporter would, then drops it."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        encode_spans(spans).SerializeToString()
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


def one_delivery(tracing: Tracing, request_share: bool, producer: object) -> None:
    """The intake span (per request), one send span with its event, one status fold."""
    headers: object = producer
    if request_share:
        with tracing.span("notify.intake", producer):
            annotate({"notify.notification_id": "n1", "notify.outcome": "accepted"})
            headers = with_trace_context(None)  # the lane record
            with_trace_context(None)  # the accepted event
    with tracing.span("notify.send", headers):
        annotate({"notify.delivery_id": "n1:push:1", "notify.provider": "apns"})
        annotate({"notify.outcome": "sent"})
        event_headers = with_trace_context(None)
    with tracing.span("notify.status", event_headers):
        annotate({"notify.status": "sent"})


def run(tracing: Tracing, count: int, producer: object = PRODUCER_HEADERS) -> float:
    """CPU µs per delivery."""
    started = time.process_time()
    for i in range(count):
        one_delivery(tracing, i % DELIVERIES_PER_REQUEST == 0, producer)
    return (time.process_time() - started) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=50_000)
    args = parser.parse_args()
    off = Tracing(Settings())
    print(f"off: {run(off, args.deliveries):.2f} us CPU per delivery")
    exporter = EncodingExporter()
    on = Tracing(
        Settings(tracing_exporter=TracingExporter.OTLP, tracing_sample_ratio=1.0), exporter
    )
    started = time.process_time()
    per = run(on, args.deliveries)
    on.flush()
    total = (time.process_time() - started) / args.deliveries * 1e6
    print(
        f"on, every trace sampled: {per:.2f} us CPU per delivery in the loop, "
        f"{total:.2f} with the batch exported ({exporter.spans} spans encoded)"
    )
    # The default: requests without a traceparent, 10 % of their traces kept.
    sampled = Tracing(Settings(tracing_exporter=TracingExporter.OTLP), EncodingExporter())
    started = time.process_time()
    run(sampled, args.deliveries, producer=None)
    sampled.flush()
    total = (time.process_time() - started) / args.deliveries * 1e6
    print(f"on, new traces at the default ratio 0.1: {total:.2f} us CPU per delivery, exported")


if __name__ == "__main__":
    main()
