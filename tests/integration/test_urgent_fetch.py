"""The urgent fetch loop on the real broker (patches/urgent_fetch.py): an urgent record is
fetched and read while unread bulk records hold the consumer's own fetch loop back, over a
connection of its own, and every record of both topics is read once."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from patches import fetch_backoff, urgent_fetch

pytestmark = pytest.mark.integration

URGENT, BULK = "urgent-lane", "bulk-lane"
URGENT_TPS = [TopicPartition(URGENT, p) for p in range(2)]
BULK_TPS = [TopicPartition(BULK, p) for p in range(2)]
# aiokafka sends no fetch to a broker while records it fetched from there wait unread, until
# this backoff has passed: long enough that only a loop of its own can fetch the urgent record.
HOLD_BACK_S = 120.0


async def _create(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(URGENT, 2, 1), NewTopic(BULK, 2, 1)], validate_only=False
        )
    finally:
        await admin.close()


async def _until(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout  # a guard against a hang, not a measured time
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the bulk records were never fetched")
        await asyncio.sleep(0.02)


async def test_an_urgent_record_is_read_while_bulk_records_wait_unread(broker: str) -> None:
    await _create(broker)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker, auto_offset_reset="earliest", fetch_max_wait_ms=20
    )
    fetch_backoff.tune_on_start(consumer, HOLD_BACK_S)
    urgent_fetch.tune_on_start(consumer, frozenset({URGENT}))
    await consumer.start()
    producer = AIOKafkaProducer(bootstrap_servers=broker)
    await producer.start()
    try:
        consumer.assign(URGENT_TPS + BULK_TPS)
        for n in range(20):
            await producer.send(BULK, b"b%d" % n, partition=n % 2)
        await producer.flush()
        fetched: Any = consumer._fetcher._records
        await _until(lambda: any(tp in fetched for tp in BULK_TPS))

        await producer.send_and_wait(URGENT, b"password reset", partition=1)
        async with asyncio.timeout(30):
            urgent = await consumer.getmany(*URGENT_TPS, timeout_ms=20_000)

        assert {tp: [r.value for r in rs] for tp, rs in urgent.items()} == {
            URGENT_TPS[1]: [b"password reset"]
        }
        assert any(tp in fetched for tp in BULK_TPS)  # the bulk records still wait unread
        client: Any = consumer._client
        assert any(group == urgent_fetch.URGENT_CONNECTIONS for _, group in client._conns)

        got: Counter[str] = Counter()
        async with asyncio.timeout(30):
            while got[BULK] < 20:
                for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                    got[tp.topic] += len(records)
        await producer.send_and_wait(URGENT, b"second", partition=0)
        async with asyncio.timeout(30):
            while got[URGENT] < 1:
                for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                    got[tp.topic] += len(records)
        assert got == {BULK: 20, URGENT: 1}
    finally:
        await producer.stop()
        await consumer.stop()
