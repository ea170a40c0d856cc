"""Embedded-broker only: a short fetch wait for the worker's consumer.

Faust fixes ``fetch_max_wait_ms`` at 1,500 ms. Kafka answers a waiting fetch as soon as data
arrives, so there the value only matters on an idle topic; Tansu holds a fetch that found
nothing for the whole wait even when records arrive meanwhile, so every hop of the pipeline
(request -> lane -> provider) could add up to 1.5 s on the embedded broker. Installed only
with ``NOTIFY_BROKER_FLAVOR=tansu``.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer

from patches.pin import require_unchanged, tune_worker_consumers

WORKS_AROUND = "faust: fetch_max_wait_ms is fixed at 1,500 ms; Tansu holds an empty fetch that long"

# Where the consumer hands the wait to the Fetcher it builds.
EXPECTED_SOURCE = {"AIOKafkaConsumer.start": "2f1ba704"}


def install(wait_ms: int) -> None:
    """Idempotent; raises UpstreamChanged on upstream code this was not written against."""
    require_unchanged(
        "patches/tansu/fetch_wait.py",
        {"AIOKafkaConsumer.start": AIOKafkaConsumer.start},
        EXPECTED_SOURCE,
    )

    def short_wait(consumer: Any) -> None:
        if not hasattr(consumer, "_fetch_max_wait_ms"):
            raise RuntimeError("aiokafka consumer no longer has _fetch_max_wait_ms")
        consumer._fetch_max_wait_ms = wait_ms  # read by the Fetcher built in start()

    tune_worker_consumers("__tansu_fetch__", short_wait)
