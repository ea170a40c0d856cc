"""(f) The design's record shape with nothing else (bench/floor_app.py) in its own worker
process(es), on a fresh broker, over the pipeline's workload: each of its requests becomes a
floor request for as many deliveries as the pipeline makes of it, so both phases deliver the
same count, to the same sandbox, at the same fan-out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from bench.common import (
    Broker,
    create_topics,
    embedded_worker_settings,
    log,
    start_workers,
    stop_workers,
    wait_for_count,
    wait_until_idle,
)
from bench.minimal import produce_records
from bench.procstats import CpuMeter, RssSampler, cpu_seconds, memory_kb
from bench.stats import per_10k, rate, span
from bench.workload import deliveries_of
from providers.sandboxes.stack import SandboxStack
from scripts.workload import User, read_topic

FLOOR_PATH = "/bench-floor"
APP_ID = "bench-floor"
# Passed to the worker in its environment (bench/floor_app.py reads them there).
TOPICS = {
    "BENCH_FLOOR_REQUESTS": "bench-floor-requests",
    "BENCH_FLOOR_LANE": "bench-floor-lane",
    "BENCH_FLOOR_EVENTS": "bench-floor-events",
}
STATUS_CHANGELOG = f"{APP_ID}-floor_status-changelog"


def floor_requests(
    requests: Sequence[Mapping[str, Any]], users: Sequence[User], inapp_url: str
) -> list[tuple[bytes, bytes]]:
    """Each pipeline request as ``(user_id, {"id", "user_id", "deliveries"})``: as many
    deliveries as the pipeline makes of it."""
    by_user = {u.user_id: u for u in users}
    floor = []
    for i, request in enumerate(requests):
        user_id = request["user_id"]
        deliveries = deliveries_of(request, by_user[user_id], inapp_url)
        body = {"id": f"floor-{i}", "user_id": user_id, "deliveries": deliveries}
        floor.append((user_id.encode(), orjson.dumps(body)))
    return floor


def run(
    broker: Broker,
    sandboxes: SandboxStack,
    users: Sequence[User],
    requests: Sequence[Mapping[str, Any]],
    workers: int,
    workdir: Path,
    stall_timeout: float = 60.0,
    worker_env: Mapping[str, str] | None = None,
    batched: bool = False,
) -> dict[str, Any]:
    """``batched``: the floor app's take_events() shape instead of one record at a time."""
    inapp_url = str(sandboxes.settings_overrides()["inapp_url"])
    records = floor_requests(requests, users, inapp_url)
    sent_by_id = {body["id"]: body["deliveries"] for body in (orjson.loads(v) for _, v in records)}
    expected = sum(sent_by_id.values())
    asyncio.run(create_topics(broker.bootstrap, list(TOPICS.values())))
    values = embedded_worker_settings(broker.bootstrap, workdir, APP_ID)
    values["web_enabled"] = False  # nothing to view; spares a port and a server per worker
    env = {
        **(worker_env or {}),
        **TOPICS,
        "BENCH_FLOOR_SHAPE": "batched" if batched else "per-event",
        "BENCH_FLOOR_POST_URL": sandboxes.webhook.url(FLOOR_PATH),
        "BENCH_FLOOR_SIGNING_SECRET": sandboxes.webhook.secret,
    }
    sandboxes.clear()
    procs = start_workers("bench.floor_app", values, workers, workdir, "floor", env)
    try:
        pids = [w.pid for w in procs]
        broker_cpu, harness_cpu = cpu_seconds(broker.pid), time.process_time()
        meter = CpuMeter(pids).start()
        log(f"floor: {len(records):,} requests -> {expected:,} deliveries expected")
        with RssSampler(pids) as rss:
            asyncio.run(produce_records(broker.bootstrap, TOPICS["BENCH_FLOOR_REQUESTS"], records))
            complete = wait_for_count(
                lambda: len(sandboxes.webhook.received), expected, stall_timeout
            )
            wait_until_idle(pids)
        cpu = meter.stop()
        broker_cpu = cpu_seconds(broker.pid) - broker_cpu
        harness_cpu = time.process_time() - harness_cpu
        # Every notification folded to the end: the status table's changelog ends, for each,
        # in a value counting all its deliveries as sent (an agent that fell behind, or a
        # batch that lost a write, leaves some short).
        folded = _folded_notifications(broker.bootstrap, sent_by_id)
        vmhwm = [(memory_kb(p) or 0) / 1024 for p in pids]
    finally:
        stop_workers(procs)
    received = [r for r in sandboxes.webhook.received if r["address"] == FLOOR_PATH]
    arrivals = [r["received_at"] for r in received]
    elapsed = span(arrivals)
    delivery_ids = {r["delivery_id"] for r in received}
    return {
        "requests": len(records),
        "expected_deliveries": expected,
        "delivered": len(received),
        "distinct_deliveries": len(delivery_ids),
        "notifications_folded": folded,
        "complete": complete and len(delivery_ids) >= expected and folded == len(records),
        "workers": workers,
        "shape": "batched" if batched else "per-event",
        "worker_env": dict(worker_env or {}),
        "first_to_last_delivery_seconds": elapsed,
        "deliveries_per_second": rate(len(received), elapsed),
        "worker_cpu_seconds": cpu,
        "worker_cpu_seconds_per_10k_deliveries": per_10k(cpu, len(received)),
        "peak_worker_rss_mb_sampled_sum": rss.peak_kb / 1024,
        "peak_worker_rss_mb_vmhwm": vmhwm,
        "broker_cpu_seconds": broker_cpu,
        # The sandboxes + producer + poll loop: it does the same work in every run, so it shows
        # how fast the machine was (README, Performance, second sitting).
        "harness_cpu_seconds": harness_cpu,
    }


def _folded_notifications(bootstrap: str, sent_by_id: Mapping[str, int]) -> int:
    """How many notifications the status changelog shows with every delivery sent, read from
    the start until all are (or 30 s have passed)."""
    latest: dict[str, int] = {}
    read = 0

    def all_folded(messages: list[Any]) -> bool:
        nonlocal read
        for message in messages[read:]:
            # Faust's JSON codec: the key a JSON string, the value the status dict.
            latest[orjson.loads(message.key)] = orjson.loads(message.value)["sent"]
        read = len(messages)
        return _done(latest, sent_by_id) == len(sent_by_id)

    asyncio.run(read_topic(bootstrap, STATUS_CHANGELOG, all_folded, timeout=30))
    done = _done(latest, sent_by_id)
    log(f"floor: {done:,} of {len(sent_by_id):,} notifications folded with every delivery sent")
    return done


def _done(latest: Mapping[str, int], sent_by_id: Mapping[str, int]) -> int:
    return sum(1 for nid, sent in latest.items() if sent == sent_by_id.get(nid))
