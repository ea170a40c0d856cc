"""Embedded-broker only: a short fetch wait for the worker's consumer.

Faust fixes ``fetch_max_wait_ms`` at 1,500 ms. Kafka answers a waiting fetch as soon as data
arrives, so there the value only matters on an idle topic; Tansu holds a fetch that found
nothing for the whole wait even when records arrive meanwhile, so every hop of the pipeline
(request -> lane -> provider) could add up to 1.5 s on the embedded broker. Installed only
with ``NOTIFY_BROKER_FLAVOR=tansu``; pinned to the faust version whose internals it touches.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

from streams.faust_pin import is_patched, require_supported_faust


def install(wait_ms: int) -> None:
    require_supported_faust("tansu_fetch")
    thread_cls: Any = faust_aiokafka.AIOKafkaConsumerThread
    original = thread_cls._create_worker_consumer
    if is_patched(original, "__tansu_fetch__"):
        return

    def _create_worker_consumer(self: Any, *args: Any, **kwargs: Any) -> Any:
        consumer = original(self, *args, **kwargs)
        if not hasattr(consumer, "_fetch_max_wait_ms"):
            raise RuntimeError("aiokafka consumer no longer has _fetch_max_wait_ms")
        consumer._fetch_max_wait_ms = wait_ms  # read by the Fetcher built in start()
        return consumer

    _create_worker_consumer.__tansu_fetch__ = True  # type: ignore[attr-defined]
    _create_worker_consumer.__wrapped__ = original  # type: ignore[attr-defined]
    thread_cls._create_worker_consumer = _create_worker_consumer
