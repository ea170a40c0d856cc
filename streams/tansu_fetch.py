"""Embedded-broker only: a short fetch wait for the worker's consumer.

Faust fixes ``fetch_max_wait_ms`` at 1,500 ms. Kafka answers a waiting fetch as soon as data
arrives, so there the value only matters on an idle topic; Tansu holds a fetch that found
nothing for the whole wait even when records arrive meanwhile, so every hop of the pipeline
(request -> lane -> provider) could add up to 1.5 s on the embedded broker. Installed only
with ``NOTIFY_BROKER_FLAVOR=tansu``; pinned to the faust version whose internals it touches.
"""

from __future__ import annotations

from typing import Any

from streams.faust_pin import require_supported_faust, tune_worker_consumers


def install(wait_ms: int) -> None:
    require_supported_faust("tansu_fetch")

    def short_wait(consumer: Any) -> None:
        if not hasattr(consumer, "_fetch_max_wait_ms"):
            raise RuntimeError("aiokafka consumer no longer has _fetch_max_wait_ms")
        consumer._fetch_max_wait_ms = wait_ms  # read by the Fetcher built in start()

    tune_worker_consumers("__tansu_fetch__", short_wait)
