"""(d) Priority isolation: a large low-priority backlog drains while a trickle of high-priority
requests arrives; how long do the high ones take, and how long does the backlog take?

Two ways to queue the backlog (``via``):
- ``deliveries``: valid delivery records straight onto ``deliveries.<in_app|webhook>.low``, as
  the intake agent would have produced them: isolates the per-priority deliver lanes.
- ``requests``: low-priority requests on ``notification-requests`` that fan out to in_app and
  webhook: the realistic campaign path, where high requests share the intake agent's
  partitions (and its FIFO order) with the backlog before they reach their own lane.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from bench.common import Broker, log, produce_json, stream_buffer_peaks, wait_for_count
from bench.pipeline import (
    event_counts,
    intake_latencies,
    read_events,
    received_count,
    running_pipeline,
)
from bench.procstats import measure_run
from bench.stats import rate, summarize, summarize_groups
from bench.workload import (
    backlog_deliveries,
    backlog_requests,
    expected_deliveries,
    high_requests,
)
from providers.sandboxes.stack import SandboxStack
from scripts.workload import User
from streams import topics

# The campaign as requests: on the public topic, or written straight to the low one.
REQUEST_VIAS = ("requests", "low-topic")


async def produce_backlog(bootstrap: str, records: list[dict[str, Any]], via: str) -> None:
    if via in REQUEST_VIAS:
        topic = topics.REQUESTS_LOW if via == "low-topic" else topics.REQUESTS
        await produce_json(bootstrap, topic, records, stamp="created_at")
        return
    # Delivery records go to their lane's topic; the deliver agent reads requested_at as the
    # request time, so it is stamped like created_at.
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_topic.setdefault(record["_topic"], []).append(record)
    for topic, values in by_topic.items():
        bodies = [{k: v for k, v in r.items() if k != "_topic"} for r in values]
        await produce_json(bootstrap, topic, bodies, stamp="requested_at")


async def send_paced(
    bootstrap: str,
    requests: list[dict[str, Any]],
    pause: Callable[[int], float],
    topic: str = topics.REQUESTS,
) -> None:
    """Send requests one at a time (no batching delay), stamping created_at at send, sleeping
    ``pause(i)`` seconds after the i-th."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    try:
        for i, request in enumerate(requests):
            request["created_at"] = time.time()
            await producer.send_and_wait(
                topic, key=request["user_id"].encode(), value=orjson.dumps(request)
            )
            await asyncio.sleep(pause(i))
    finally:
        await producer.stop()


def spread_over_drain(
    sandboxes: SandboxStack, target: int, total: int, expected_rate: float
) -> Callable[[int], float]:
    """Pause after the i-th of ``total`` sends so that they spread over the backlog's remaining
    drain time, re-estimated from observed progress each time (the drain rate is not known in
    advance: it depends on the machine and on what else runs on it)."""
    started = time.monotonic()
    at_start = received_count(sandboxes)

    def pause(i: int) -> float:
        done = received_count(sandboxes)  # counts a few high deliveries too: close enough
        elapsed = time.monotonic() - started
        progress = done - at_start
        observed = progress / elapsed if progress and elapsed > 1 else expected_rate
        remaining = max(0.0, (target - done) / max(observed, 1.0))
        return min(5.0, max(0.005, remaining / max(1, total - i - 1)))

    return pause


def latencies(
    received: Sequence[dict[str, Any]], requests: dict[str, dict[str, Any]]
) -> list[float]:
    return [
        (r["received_at"] - requests[r["notification_id"]]["created_at"]) * 1000
        for r in received
        if r.get("notification_id") in requests
    ]


def after_accept(
    events: Sequence[dict[str, Any]], received: Sequence[dict[str, Any]]
) -> list[float]:
    """ms from each notification's ``accepted`` event to each of its sandbox arrivals."""
    accepted = {e["notification_id"]: e["at"] for e in events if e["status"] == "accepted"}
    return [
        (r["received_at"] - accepted[r["notification_id"]]) * 1000
        for r in received
        if r["notification_id"] in accepted
    ]


def run(
    broker: Broker,
    sandboxes: SandboxStack,
    users: Sequence[User],
    backlog: int,
    trickle: int,
    workers: int,
    workdir: Path,
    via: str = "deliveries",
    expected_rate: float = 500.0,
    stall_timeout: float = 60.0,
) -> dict[str, Any]:
    by_user = {u.user_id: u for u in users}
    inapp_url = str(sandboxes.settings_overrides()["inapp_url"])
    if via in REQUEST_VIAS:
        records, backlog_expected = backlog_requests(users, backlog, inapp_url)
    else:
        records, backlog_expected = backlog_deliveries(users, backlog, inapp_url), backlog
    idle = high_requests(users, 30, "idle")
    idle_by_id = {r["notification_id"]: r for r in idle}
    highs = high_requests(users, trickle, "high")
    idle_expected = expected_deliveries(idle, by_user, inapp_url)
    high_expected = expected_deliveries(highs, by_user, inapp_url)

    with running_pipeline(broker, sandboxes, users, workers, workdir, f"priority-{via}") as procs:
        # Baseline: the same kind of request on the idle pipeline, one at a time.
        log(f"priority: {len(idle)} high requests on the idle pipeline")
        asyncio.run(send_paced(broker.bootstrap, idle, lambda i: 0.05))
        wait_for_count(lambda: received_count(sandboxes), idle_expected, stall_timeout)

        log(f"priority: {backlog_expected:,} low deliveries (via {via}), then {trickle} high")
        target = idle_expected + backlog_expected
        started = time.time()

        async def backlog_then_trickle() -> None:
            await produce_backlog(broker.bootstrap, records, via)
            pause = spread_over_drain(sandboxes, target, len(highs), expected_rate)
            await send_paced(broker.bootstrap, highs, pause)

        measured = measure_run(
            [p.pid for p in procs],
            broker.pid,
            backlog_then_trickle,
            lambda: wait_for_count(
                lambda: received_count(sandboxes), target + high_expected, stall_timeout
            ),
        )
        complete, finished = measured.complete, measured.finished
        cpu_seconds_by_process = measured.cpu_seconds_by_process
        received = sandboxes.received()
        # One event per request (accepted or rejected) and one per delivery (sent or failed).
        produced_requests = len(idle) + len(highs) + (len(records) if via in REQUEST_VIAS else 0)
        events = read_events(
            broker.bootstrap, produced_requests + idle_expected + backlog_expected + high_expected
        )
        buffer_peaks = stream_buffer_peaks(procs)

    backlog_arrivals = [
        r["received_at"] for r in received if str(r.get("notification_id")).startswith("backlog-")
    ]
    drained_at = max(backlog_arrivals, default=started)
    highs_by_id = {r["notification_id"]: r for r in highs}
    # "During the drain": sent before the backlog's last delivery arrived.
    in_drain = {k: r for k, r in highs_by_id.items() if r["created_at"] < drained_at}
    high_received = [r for r in received if r.get("notification_id") in in_drain]
    return {
        "via": via,
        "workers": workers,
        "backlog_deliveries": backlog_expected,
        "backlog_records_produced": len(records),
        "backlog_delivered": len(backlog_arrivals),
        "complete": complete,
        "backlog_drain_seconds": drained_at - started,
        "backlog_deliveries_per_second": rate(len(backlog_arrivals), drained_at - started),
        "peak_worker_rss_mb_sampled_sum": measured.peak_worker_rss_kb / 1024,
        "stream_buffer_peak_records": buffer_peaks,
        "cpu_seconds_during_phase": cpu_seconds_by_process,
        "phase_seconds": finished - started,
        "delivery_events": event_counts(events),
        "high_requests": len(highs),
        "high_requests_sent_during_drain": len(in_drain),
        "high_expected_deliveries": high_expected,
        "high_delivered": sum(r.get("notification_id") in highs_by_id for r in received),
        "high_latency_ms_during_drain": summarize(latencies(high_received, in_drain)),
        "high_latency_ms_during_drain_by_channel": summarize_groups(
            (in_drain[r["notification_id"]]["channels"][0], latency)
            for r, latency in zip(high_received, latencies(high_received, in_drain), strict=True)
        ),
        # Where the high requests' time went: up to the intake agent's "accepted" event, and
        # from there (their own lane) to the sandbox.
        "high_intake_latency_ms_during_drain": intake_latencies(
            events, in_drain, group=lambda r: "high"
        )["all"],
        "high_lane_latency_ms_during_drain": summarize(after_accept(events, high_received)),
        "high_latency_ms_all": summarize(latencies(received, highs_by_id)),
        "idle_high_latency_ms": summarize(latencies(received, idle_by_id)),
        "idle_high_intake_latency_ms": intake_latencies(events, idle_by_id, group=lambda r: "high")[
            "all"
        ],
        "idle_high_lane_latency_ms": summarize(
            after_accept(events, [r for r in received if r.get("notification_id") in idle_by_id])
        ),
    }
