"""(e) Storm: urgent traffic first in every burst. Everything that can crowd a password reset
at once: a backlog queued on the low lanes, a campaign of low requests and a burst of normal
requests, each produced in one go, while high requests are paced through all of it.

Two ways in (``via``):
- ``public``: every request on ``notification-requests``, as a producer that knows no other
  topic sends them; high requests then share the intake's FIFO partitions with both bursts.
- ``priority-topics``: each priority on its own request topic (``.high``, ``.normal``,
  ``.low``), as producers may write them; no burst shares a partition with a high request.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.common import Broker, log, produce_json, stream_buffer_peaks, wait_for_count
from bench.pipeline import (
    event_counts,
    intake_latencies,
    read_events,
    received_count,
    running_pipeline,
)
from bench.priority import after_accept, latencies, produce_backlog, send_paced, spread_over_drain
from bench.procstats import measure_run
from bench.stats import rate, summarize
from bench.workload import (
    backlog_deliveries,
    expected_deliveries,
    high_requests,
    low_request_burst,
    normal_request_burst,
)
from providers.sandboxes.stack import SandboxStack
from scripts.workload import User
from streams import topics

VIAS = ("public", "priority-topics")
# Notification id prefixes: each group's arrivals are told apart by them.
GROUPS = {"backlog": "backlog-", "low_requests": "storm-low-", "normal_requests": "storm-normal-"}


def request_topics(via: str) -> dict[str, str]:
    """priority -> the topic its requests are produced to."""
    if via == "public":
        return {p: topics.REQUESTS for p in ("high", "normal", "low")}
    return {
        "high": topics.REQUESTS_HIGH,
        "normal": topics.REQUESTS_NORMAL,
        "low": topics.REQUESTS_LOW,
    }


def drain(
    received: Sequence[Mapping[str, Any]], prefix: str, expected: int, started: float
) -> dict[str, Any]:
    """One group's arrivals: how many, when the last came, and the rate from the storm's start."""
    arrivals = [
        r["received_at"] for r in received if str(r.get("notification_id")).startswith(prefix)
    ]
    last = max(arrivals, default=started)
    return {
        "expected": expected,
        "delivered": len(arrivals),
        "drain_seconds": last - started,
        "deliveries_per_second": rate(len(arrivals), last - started),
    }


def run(
    broker: Broker,
    sandboxes: SandboxStack,
    users: Sequence[User],
    sizes: Mapping[str, int],
    trickle: int,
    workers: int,
    workdir: Path,
    via: str = "public",
    expected_rate: float = 700.0,
    stall_timeout: float = 60.0,
    worker_env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    by_user = {u.user_id: u for u in users}
    inapp_url = str(sandboxes.settings_overrides()["inapp_url"])
    backlog = backlog_deliveries(users, sizes["backlog"], inapp_url)
    low = low_request_burst(users, sizes["low_requests"], "storm-low")
    normal = normal_request_burst(users, sizes["normal_requests"], "storm-normal")
    highs = high_requests(users, trickle, "storm-high")
    expected = {
        "backlog": len(backlog),
        "low_requests": expected_deliveries(low, by_user, inapp_url),
        "normal_requests": expected_deliveries(normal, by_user, inapp_url),
    }
    high_expected = expected_deliveries(highs, by_user, inapp_url)
    target = sum(expected.values())
    to = request_topics(via)

    with running_pipeline(
        broker, sandboxes, users, workers, workdir, f"storm-{via}", worker_env
    ) as procs:
        log(f"storm via {via}: {expected} deliveries expected, {trickle} high paced through")
        started = time.time()

        async def storm() -> None:
            async def bursts() -> None:
                await produce_backlog(broker.bootstrap, backlog, "deliveries")
                await produce_json(broker.bootstrap, to["low"], low, stamp="created_at")
                await produce_json(broker.bootstrap, to["normal"], normal, stamp="created_at")

            pause = spread_over_drain(sandboxes, target, len(highs), expected_rate)
            await asyncio.gather(bursts(), send_paced(broker.bootstrap, highs, pause, to["high"]))

        measured = measure_run(
            [p.pid for p in procs],
            broker.pid,
            storm,
            lambda: wait_for_count(
                lambda: received_count(sandboxes), target + high_expected, stall_timeout
            ),
        )
        complete, finished = measured.complete, measured.finished
        cpu_seconds_by_process = measured.cpu_seconds_by_process
        received = sandboxes.received()
        produced_requests = len(low) + len(normal) + len(highs)
        events = read_events(broker.bootstrap, produced_requests + target + high_expected)
        buffer_peaks = stream_buffer_peaks(procs)

    drains = {g: drain(received, prefix, expected[g], started) for g, prefix in GROUPS.items()}
    last_other = started + max(d["drain_seconds"] for d in drains.values())
    highs_by_id = {r["notification_id"]: r for r in highs}
    # "During the storm": sent before the last backlog, low or normal delivery arrived.
    in_storm = {k: r for k, r in highs_by_id.items() if r["created_at"] < last_other}
    high_received = [r for r in received if r.get("notification_id") in in_storm]
    return {
        "via": via,
        "workers": workers,
        "worker_env": dict(worker_env or {}),
        "sizes": dict(sizes),
        "complete": complete,
        "drains": drains,
        "storm_seconds": last_other - started,
        "deliveries_per_second_overall": rate(
            sum(d["delivered"] for d in drains.values()), last_other - started
        ),
        "peak_worker_rss_mb_sampled_sum": measured.peak_worker_rss_kb / 1024,
        "stream_buffer_peak_records": buffer_peaks,
        "cpu_seconds_during_phase": cpu_seconds_by_process,
        "phase_seconds": finished - started,
        "delivery_events": event_counts(events),
        "high_requests": len(highs),
        "high_requests_sent_during_storm": len(in_storm),
        "high_expected_deliveries": high_expected,
        "high_delivered": sum(r.get("notification_id") in highs_by_id for r in received),
        "high_latency_ms": summarize(latencies(high_received, in_storm)),
        "high_intake_latency_ms": intake_latencies(events, in_storm, group=lambda r: "high")["all"],
        "high_lane_latency_ms": summarize(after_accept(events, high_received)),
        "high_latency_ms_all": summarize(latencies(received, highs_by_id)),
        "high_slowest": slowest(high_received, in_storm, events, started),
        "longest_gap_between_deliveries": longest_gap(received, started),
    }


def longest_gap(received: Sequence[Mapping[str, Any]], started: float) -> dict[str, float]:
    """The longest time no sandbox received anything, and when in the storm it began: a gap
    far above the drain's spacing means a stall of everything (the worker, the broker or the
    harness that hosts the sandboxes), not a slow urgent path."""
    arrivals = sorted(r["received_at"] for r in received)
    gaps = [(later - earlier, earlier) for earlier, later in itertools.pairwise(arrivals)]
    if not gaps:
        return {"seconds": 0.0, "began_at_s": 0.0}
    seconds, began = max(gaps)
    return {"seconds": seconds, "began_at_s": began - started}


def slowest(
    received: Sequence[Mapping[str, Any]],
    requests: Mapping[str, Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
    started: float,
    count: int = 5,
) -> list[dict[str, float | None]]:
    """The slowest high deliveries, each with when in the storm its request was sent and its
    split at the intake's ``accepted`` event: what a max alone cannot say (a start-up stall,
    one slow hop, a pause that hit several at once)."""
    accepted = {e["notification_id"]: e["at"] for e in events if e["status"] == "accepted"}
    rows = []
    for r in received:
        created = requests[r["notification_id"]]["created_at"]
        at = accepted.get(r["notification_id"])
        rows.append(
            {
                "sent_at_s": created - started,
                "total_ms": (r["received_at"] - created) * 1000,
                "intake_ms": None if at is None else (at - created) * 1000,
                "lane_ms": None if at is None else (r["received_at"] - at) * 1000,
            }
        )
    rows.sort(key=lambda row: -(row["total_ms"] or 0.0))
    return rows[:count]
