"""A short prefetch backoff for the worker's consumer, so one partition's unread records cannot
hold back every other partition on the same broker.

aiokafka's fetcher sends no fetch to a broker while any partition it leads still has fetched
records the application has not taken, until ``prefetch_backoff`` (100 ms, not a consumer
option) has passed. In a worker that reads a dozen topics, some partition almost always has
records waiting: a lane whose stream buffer is full, or one the agent has not reached yet.
So a high-priority request often waited a whole backoff per hop. Measured by ``bench.run
priority`` on the idle pipeline (p50 / p95 / p99 ms): request to sandbox 163 / 220 / 228 with
the default, 54 / 76 / 110 with 5 ms (README, Performance). Kafka and the embedded broker
alike.
"""

from __future__ import annotations

from typing import Any

from aiokafka.consumer.fetcher import Fetcher

from patches.pin import require_unchanged, tune_fetcher_on_start, tune_worker_consumers

WORKS_AROUND = "aiokafka: Fetcher's prefetch_backoff (100 ms) is not a consumer option"

# The upstream code this relies on: where the backoff is set, and where a fetch waits on it.
EXPECTED_SOURCE = {
    "Fetcher.__init__": "bf21ecb7",
    "Fetcher._proc_fetch_request": "59bf948f",
}


def tune_on_start(consumer: Any, backoff_seconds: float) -> None:
    """Sets the fetcher's backoff as soon as ``consumer.start()`` has created the fetcher."""

    def set_backoff(fetcher: Any) -> None:
        fetcher._prefetch_backoff = backoff_seconds

    tune_fetcher_on_start(consumer, "_prefetch_backoff", set_backoff)


def check_upstream() -> None:
    upstream = {
        "Fetcher.__init__": Fetcher.__init__,
        "Fetcher._proc_fetch_request": Fetcher._proc_fetch_request,
    }
    require_unchanged("patches/fetch_backoff.py", upstream, EXPECTED_SOURCE)


def install(backoff_ms: float) -> None:
    """Idempotent; raises UpstreamChanged on upstream code this was not written against."""
    check_upstream()
    tune_worker_consumers(
        "__fetch_backoff__", lambda consumer: tune_on_start(consumer, backoff_ms / 1000.0)
    )
