"""(a) The raw limit: a plain aiokafka producer, then a plain consumer, over the same records on
a fresh broker. Whatever the pipeline does, it cannot move records faster than this."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.common import PRODUCER_LINGER_MS, create_topics
from bench.procstats import cpu_seconds
from bench.stats import rate

TOPIC = "bench-raw"


async def produce_consume(
    bootstrap: str,
    records: Sequence[tuple[bytes, bytes]],
    partitions: int = 8,
    broker_pid: int | None = None,
) -> dict[str, Any]:
    """Produce every (key, value) record, wait for all acks, then read them all back."""
    await create_topics(bootstrap, [TOPIC], partitions)
    broker_cpu = cpu_seconds(broker_pid) if broker_pid else 0.0

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=PRODUCER_LINGER_MS)
    await producer.start()
    try:
        started = time.perf_counter()
        futures = [await producer.send(TOPIC, key=k, value=v) for k, v in records]
        await asyncio.gather(*futures)
        produce_seconds = time.perf_counter() - started
    finally:
        await producer.stop()

    # No group: a group join on Tansu waits half a session timeout, which is not reading speed.
    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        seen = 0
        started = time.perf_counter()
        while seen < len(records):
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            seen += sum(len(messages) for messages in batch.values())
        consume_seconds = time.perf_counter() - started
    finally:
        await consumer.stop()

    size = sum(len(k) + len(v) for k, v in records) / max(1, len(records))
    return {
        "records": len(records),
        "partitions": partitions,
        "avg_record_bytes": round(size, 1),
        "producer": {"linger_ms": PRODUCER_LINGER_MS, "compression": None},
        "produce_seconds": produce_seconds,
        "produce_per_second": rate(len(records), produce_seconds),
        "consume_seconds": consume_seconds,
        "consume_per_second": rate(seen, consume_seconds),
        "broker_cpu_seconds": (cpu_seconds(broker_pid) - broker_cpu) if broker_pid else None,
    }
