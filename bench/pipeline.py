"""(c) The whole pipeline: requests on ``notification-requests`` -> worker(s) -> the provider
sandboxes, with throughput counted where the notifications arrive."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from bench.common import (
    BENCH_RATE_LIMIT,
    Broker,
    embedded_worker_settings,
    log,
    produce_json,
    start_workers,
    stop_workers,
    wait_for_count,
    wait_until_idle,
)
from bench.procstats import CpuMeter, RssSampler, cpu_seconds, memory_kb
from bench.stats import per_10k, rate, span, summarize_groups
from bench.workload import expected_deliveries
from config.settings import Settings
from providers.sandboxes.stack import SandboxStack
from scripts.create_topics import create_topics
from scripts.worker_process import WorkerProcess
from scripts.workload import User, read_topic, setup_users, wait_for_users
from streams import topics


def received_count(sandboxes: SandboxStack) -> int:
    """Cheap progress counter: list lengths, read without a round trip to the sandbox loop
    (``received()`` copies and sorts everything, too slow to poll during a run)."""
    return sum(len(s.received) for s in sandboxes.sandboxes.values())


def settings_values(env: Mapping[str, str]) -> dict[str, str]:
    """``NOTIFY_*`` variables as Settings field values (Settings parses them)."""
    return {k.removeprefix("NOTIFY_").lower(): v for k, v in env.items() if k.startswith("NOTIFY_")}


def pipeline_settings(
    broker: Broker, sandboxes: SandboxStack, workdir: Path, app_id: str
) -> dict[str, Any]:
    values = embedded_worker_settings(broker.bootstrap, workdir, app_id)
    values.update(sandboxes.settings_overrides())
    values["rate_limit_per_user"] = BENCH_RATE_LIMIT
    return values


@contextmanager
def running_pipeline(
    broker: Broker,
    sandboxes: SandboxStack,
    users: Sequence[User],
    workers: int,
    workdir: Path,
    name: str,
    extra_env: Mapping[str, str] | None = None,
    web_headers: Mapping[str, str] | None = None,
) -> Iterator[list[WorkerProcess]]:
    """Topics, ``workers`` worker processes, and every user loaded through the control topics
    and visible in the tables (so no request is resolved before its user exists).
    ``extra_env`` (``NOTIFY_*`` variables) is for A/B runs of one setting; ``web_headers``
    carry an API key when ``extra_env`` configures keys."""
    values = pipeline_settings(broker, sandboxes, workdir, f"notify-bench-{name}")
    # The topics are created with the workers' settings: NOTIFY_PARTITIONS=4 means 4 each.
    values.update(settings_values(extra_env or {}))
    asyncio.run(create_topics(Settings(**values)))
    procs = start_workers("app", values, workers, workdir, name, extra_env)
    try:
        asyncio.run(setup_users(broker.bootstrap, users))
        # The /users/ view answers from whichever worker owns the user (table_route).
        asyncio.run(wait_for_users(procs[0].web_url, users, timeout=300, headers=web_headers))
        sandboxes.clear()
        yield procs
    finally:
        stop_workers(procs)
        # RocksDB directories only matter to a running worker; the logs next to them stay.
        shutil.rmtree(values["data_dir"], ignore_errors=True)


def read_events(bootstrap: str, expected: int) -> list[dict[str, Any]]:
    """``delivery-events`` from the start, once ``expected`` are there (or after 60 s)."""
    messages = asyncio.run(
        read_topic(bootstrap, topics.DELIVERY_EVENTS, lambda ms: len(ms) >= expected, 60)
    )
    return [orjson.loads(m.value) for m in messages]


def event_counts(decoded: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Statuses and rejection reasons in ``delivery-events``: proves nothing was rate-limited
    and shows failures, which would otherwise pass for lower throughput."""
    reasons = Counter(e.get("reason") or "" for e in decoded if e["status"] == "rejected")
    failures = Counter(e.get("reason") or "" for e in decoded if e["status"] == "failed")
    return {
        "events": len(decoded),
        "by_status": dict(Counter(e["status"] for e in decoded)),
        "rejected_reasons": dict(reasons),
        "rate_limited": reasons.get("rate_limited", 0),
        "failed_reasons": dict(failures.most_common(5)),
    }


def latencies_by_priority(
    received: Sequence[Mapping[str, Any]], requests: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, float]]:
    """created_at (stamped at send) -> received_at at the sandbox, in ms, per priority."""
    return summarize_groups(
        (
            requests[r["notification_id"]]["priority"],
            (r["received_at"] - requests[r["notification_id"]]["created_at"]) * 1000,
        )
        for r in received
        if r.get("notification_id") in requests
    )


def intake_latencies(
    events: Sequence[Mapping[str, Any]],
    requests: Mapping[str, Mapping[str, Any]],
    group: Callable[[Mapping[str, Any]], str] = lambda r: str(r["priority"]),
) -> dict[str, dict[str, float]]:
    """created_at -> the intake agent's ``accepted`` event (its ``at``), in ms, per group.

    Splits a delivery's latency into the part spent before the intake agent had resolved and
    fanned out the request (shared, FIFO per partition, whatever the priority) and the part
    after it (the priority's own deliver lane)."""
    return summarize_groups(
        (
            group(requests[e["notification_id"]]),
            (e["at"] - requests[e["notification_id"]]["created_at"]) * 1000,
        )
        for e in events
        if e["status"] == "accepted" and e["notification_id"] in requests
    )


def run(
    broker: Broker,
    sandboxes: SandboxStack,
    users: Sequence[User],
    requests: list[dict[str, Any]],
    workers: int,
    workdir: Path,
    stall_timeout: float = 60.0,
    worker_env: Mapping[str, str] | None = None,
    pace: float = 0.0,
) -> dict[str, Any]:
    """``worker_env``: ``NOTIFY_*`` settings for the workers (A/B runs of one setting).
    ``pace``: requests per second offered (0: all at once, the workers' full speed)."""
    by_user = {u.user_id: u for u in users}
    inapp_url = str(sandboxes.settings_overrides()["inapp_url"])
    expected = expected_deliveries(requests, by_user, inapp_url)
    with running_pipeline(
        broker, sandboxes, users, workers, workdir, "pipeline", worker_env
    ) as procs:
        pids = [w.pid for w in procs]
        rss_before = [(memory_kb(p, "VmRSS") or 0) / 1024 for p in pids]
        meter = CpuMeter(pids).start()
        broker_cpu, harness_cpu = cpu_seconds(broker.pid), time.process_time()
        log(f"pipeline: {len(requests):,} requests -> {expected:,} deliveries expected")
        with RssSampler(pids) as rss:
            started, produced = asyncio.run(
                produce_json(
                    broker.bootstrap,
                    topics.REQUESTS,
                    requests,
                    stamp="created_at",
                    per_second=pace,
                )
            )
            complete = wait_for_count(
                lambda: received_count(sandboxes),
                expected,
                stall_timeout,
                on_progress=_progress(expected),
            )
            settle = wait_until_idle(pids)
        cpu = meter.stop()
        broker_cpu = cpu_seconds(broker.pid) - broker_cpu
        harness_cpu = time.process_time() - harness_cpu
        vmhwm = [(memory_kb(p) or 0) / 1024 for p in pids]
        events = read_events(broker.bootstrap, len(requests) + expected)

    by_id = {r["notification_id"]: r for r in requests}
    received = [r for r in sandboxes.received() if r.get("notification_id") in by_id]
    arrivals = [r["received_at"] for r in received]
    first_to_last = span(arrivals)
    end_to_end = (max(arrivals) - started) if arrivals else 0.0
    return {
        "requests": len(requests),
        "expected_deliveries": expected,
        "delivered": len(received),
        "complete": complete and len(received) >= expected,
        "sandbox_rejected": sum(len(s.rejected) for s in sandboxes.sandboxes.values()),
        "by_sandbox": dict(Counter(r["sandbox"] for r in received)),
        "workers": workers,
        "worker_env": dict(worker_env or {}),
        "rate_limit_per_user": BENCH_RATE_LIMIT,
        "pace_requests_per_second": pace,
        "produce_seconds": produced - started,
        "produce_start_to_first_delivery_seconds": (min(arrivals) - started) if arrivals else None,
        "first_to_last_delivery_seconds": first_to_last,
        "produce_start_to_last_delivery_seconds": end_to_end,
        "deliveries_per_second": rate(len(received), first_to_last),
        "deliveries_per_second_end_to_end": rate(len(received), end_to_end),
        "requests_per_second_end_to_end": rate(len(requests), end_to_end),
        "latency_ms_by_priority": latencies_by_priority(received, by_id),
        "intake_latency_ms_by_priority": intake_latencies(events, by_id),
        "worker_cpu_seconds": cpu,
        "worker_cpu_seconds_per_10k_deliveries": per_10k(cpu, len(received)),
        "worker_cpu_seconds_per_10k_requests": per_10k(cpu, len(requests)),
        "worker_rss_mb_before": rss_before,
        "peak_worker_rss_mb_sampled_sum": rss.peak_kb / 1024,
        "peak_worker_rss_mb_vmhwm": vmhwm,
        "broker_cpu_seconds": broker_cpu,
        "harness_cpu_seconds": harness_cpu,  # sandboxes + producer + this poll loop
        "settle_seconds_after_last_delivery": settle,
        "delivery_events": event_counts(events),
    }


def _progress(expected: int) -> Any:
    """Log progress at most every 5 s, so a long run shows it is alive."""
    last = [0.0]

    def report(count: int) -> None:
        if time.monotonic() - last[0] >= 5:
            last[0] = time.monotonic()
            log(f"  {count:,}/{expected:,} delivered")

    return report
