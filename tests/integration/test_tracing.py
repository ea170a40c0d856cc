"""One trace per notification, across worker processes, over the real OTLP/HTTP protocol.

Two workers export their spans (NOTIFY_TRACING_EXPORTER=otlp) to a receiver in this test that
decodes the OTLP protobuf as a collector would. Requests are produced with a W3C
``traceparent`` header (sampled) and without one, with the sample ratio for new traces at 0:
every traced request's spans (intake, each send, the status folds) continue the producer's
trace id, and the untraced ones leave no span.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from providers.sandboxes.stack import SandboxStack
from scripts.worker_process import WorkerProcess
from scripts.workload import make_users, setup_users
from scripts.workload import wait_for_users as users_loaded
from streams import topics
from tests.integration.pipeline_harness import expected_deliveries

pytestmark = pytest.mark.integration

TRACED = 16


@dataclass(frozen=True)
class ReceivedSpan:
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    instance: str
    attributes: dict[str, Any]


class OtlpReceiver:
    """``POST /v1/traces`` with an ExportTraceServiceRequest, as an OpenTelemetry collector
    takes it; keeps every span."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        lock = threading.Lock()
        spans = self.spans

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                with lock:
                    spans.extend(decode(request))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def decode(request: ExportTraceServiceRequest) -> Iterator[ReceivedSpan]:
    for resource_spans in request.resource_spans:
        resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
        for scope in resource_spans.scope_spans:
            for span in scope.spans:
                attributes = {
                    a.key: a.value.string_value or a.value.int_value for a in span.attributes
                }
                yield ReceivedSpan(
                    span.trace_id.hex(),
                    span.span_id.hex(),
                    span.parent_span_id.hex(),
                    span.name,
                    resource["service.instance.id"],
                    attributes,
                )


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver()
    yield server
    server.stop()


async def produce_with_headers(
    bootstrap: str, records: list[tuple[dict[str, Any], list[tuple[str, bytes]]]]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(
                topics.REQUESTS,
                key=value["user_id"].encode(),
                value=orjson.dumps(value),
                headers=headers,
            )
            for value, headers in records
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def test_a_notifications_spans_share_one_trace_across_workers(
    broker: str,
    sandboxes: SandboxStack,
    workers: Callable[..., WorkerProcess],
    receiver: OtlpReceiver,
    tmp_path: Path,
) -> None:
    tracing = {
        "tracing_exporter": "otlp",
        "tracing_otlp_endpoint": receiver.endpoint,
        "tracing_sample_ratio": 0.0,  # only what a producer asked to trace
        "rate_limit_per_user": 1000,
    }
    first = workers(**tracing)
    workers(**tracing, data_dir=tmp_path / "second-data")
    users = make_users(24, sandboxes.webhook.url("/"), first=9100, opt_out_rate=0.0)
    asyncio.run(setup_users(broker, users))
    asyncio.run(users_loaded(first.web_url, users))

    producer_spans: dict[str, tuple[str, str]] = {}  # notification id -> (trace id, span id)
    records = []
    for i in range(2 * TRACED):
        user = users[i % len(users)]
        nid = f"traced-{i}" if i < TRACED else f"plain-{i}"
        request: dict[str, Any] = {
            "notification_id": nid,
            "user_id": user.user_id,
            "priority": ("high", "normal")[i % 2],
            "channels": ["webhook", "email"],
            "title": "Hi",
            "body": "Hello",
        }
        headers: list[tuple[str, bytes]] = []
        if i < TRACED:
            trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
            producer_spans[nid] = (trace_id, span_id)
            headers = [("traceparent", f"00-{trace_id}-{span_id}-01".encode())]
        records.append((request, headers))
    asyncio.run(produce_with_headers(broker, records))
    expected = expected_deliveries(
        [r for r, _ in records], {u.user_id: u for u in users}, sandboxes.webhook.url("/inbox")
    )
    sandboxes.wait_for(lambda got: len(got) >= sum(expected.values()), timeout=120)

    def spans_of(trace_id: str) -> list[ReceivedSpan]:
        return [s for s in list(receiver.spans) if s.trace_id == trace_id]

    def sent(found: list[ReceivedSpan]) -> set[str]:
        """Delivery ids with a successful send span (a busy sandbox may fail an attempt first:
        its retry is another send span of the same trace)."""
        return {
            str(s.attributes["notify.delivery_id"])
            for s in found
            if s.name == "notify.send" and s.attributes.get("notify.outcome") == "sent"
        }

    def complete(nid: str) -> bool:
        found = spans_of(producer_spans[nid][0])
        return len(sent(found)) == 2 and any(s.name == "notify.status" for s in found)

    deadline = time.monotonic() + 90
    while not all(complete(nid) for nid in producer_spans):
        if time.monotonic() > deadline:
            missing = {
                nid: Counter(s.name for s in spans_of(trace_id))
                for nid, (trace_id, _) in producer_spans.items()
                if not complete(nid)
            }
            raise AssertionError(f"{len(receiver.spans)} spans; incomplete traces: {missing}")
        time.sleep(0.5)

    instances: set[frozenset[str]] = set()
    for nid, (trace_id, producer_span) in producer_spans.items():
        found = spans_of(trace_id)
        by_id = {s.span_id: s for s in found}
        intakes = [s for s in found if s.name == "notify.intake"]
        # The first intake span continues the producer's span; a normal request is passed on
        # to its own topic and resolved by a second intake span, the first one's child. (A
        # record read again after the group's first rebalance gives its reader's span, with the
        # same parent: at least once.)
        assert {s.parent_id for s in intakes if s.parent_id not in by_id} == {producer_span}
        resolved = [s for s in intakes if s.attributes.get("notify.outcome") == "accepted"]
        assert resolved, intakes
        assert all(s.attributes["notify.notification_id"] == nid for s in intakes)
        resolved_ids = {s.span_id for s in resolved}
        sends = [s for s in found if s.name == "notify.send"]
        assert {s.attributes["notify.channel"] for s in sends} == {"webhook", "email"}
        # A first attempt continues the intake's span; a retry, the attempt before it. (A copy
        # read twice has a span too, without a provider: the ledger or the first copy answered.)
        for send in sends:
            if send.attributes["notify.attempt"] == 0:
                assert send.parent_id in resolved_ids
            else:
                assert by_id[send.parent_id].name == "notify.send"
        # Status folds hang off the span that produced their event (intake or a send).
        statuses = [s for s in found if s.name == "notify.status"]
        assert statuses and all(s.parent_id in by_id for s in statuses)
        instances.add(frozenset(s.instance for s in found))

    # Each notification's status is folded by whichever worker owns its notification id's
    # partition: over 16 traces, some cross from one worker process to the other.
    assert any(len(names) == 2 for names in instances), instances
    # Nothing was traced for requests that did not ask (sample ratio 0 for new traces).
    assert not [
        s
        for s in receiver.spans
        if str(s.attributes.get("notify.notification_id", "")).startswith("plain-")
    ]
