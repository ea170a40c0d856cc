"""Resting partitions on the real broker: a consumer tuned by patches/resting_partitions.py names
the urgent topic's partitions in every fetch, the caught-up others only now and then, and still
reads every record of both."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.structs import TopicPartition

from patches.resting_partitions import tune_on_start

pytestmark = pytest.mark.integration

URGENT, BULK = "urgent", "bulk"
REST_MS = 300  # the default


async def _create(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(URGENT, 2, 1), NewTopic(BULK, 4, 1)], validate_only=False
        )
    finally:
        await admin.close()


def _count_named_partitions(consumer: AIOKafkaConsumer, named: Counter[str]) -> None:
    """Counts, per topic, the partitions named in each fetch the consumer sends."""
    client: Any = consumer._client
    send = client.send

    async def counting_send(node_id: int, request: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(request, FetchRequest):
            for topic, partitions in request.topics:
                named[topic] += len(partitions)
            named["fetches"] += 1
        return await send(node_id, request, *args, **kwargs)

    client.send = counting_send


async def _read_all(consumer: AIOKafkaConsumer, expected: int) -> Counter[str]:
    got: Counter[str] = Counter()
    async with asyncio.timeout(30):  # a guard against a hang, not a measured time
        while sum(got.values()) < expected:
            batches = await consumer.getmany(timeout_ms=200)
            for tp, records in batches.items():
                got[tp.topic] += len(records)
    return got


async def test_caught_up_partitions_rest_and_nothing_is_left_unread(broker: str) -> None:
    await _create(broker)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker, auto_offset_reset="earliest", fetch_max_wait_ms=20
    )
    named: Counter[str] = Counter()
    tune_on_start(consumer, frozenset({URGENT}), REST_MS)
    await consumer.start()
    producer = AIOKafkaProducer(bootstrap_servers=broker)
    await producer.start()
    try:
        _count_named_partitions(consumer, named)
        consumer.assign(
            [TopicPartition(URGENT, p) for p in range(2)]
            + [TopicPartition(BULK, p) for p in range(4)]
        )
        # Both topics empty: the urgent partitions are in every fetch, the bulk ones rest.
        await consumer.getmany(timeout_ms=1500)
        assert named["fetches"] >= 10, named
        assert named[URGENT] == 2 * named["fetches"], named
        assert named[BULK] <= named[URGENT] / 2, named

        for n in range(40):
            await producer.send(BULK, b"b%d" % n, partition=n % 4)
        for n in range(10):
            await producer.send(URGENT, b"u%d" % n, partition=n % 2)
        await producer.flush()

        assert await _read_all(consumer, 50) == {BULK: 40, URGENT: 10}
    finally:
        await producer.stop()
        await consumer.stop()
