"""The producer buffer's flush (patches/bounded_flush.py) waits for exactly what the buffer
held when it was called: not less (upstream gives up after 0.1 s without a send) and not more
(upstream waits for every write made meanwhile, which under load never ends).

A real Faust app's ``ProducerBuffer`` runs its own task; the writes in it are stand-ins whose
publish waits until the test lets it go, so every case decides when a write reaches "the
producer"."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import faust
import pytest
from faust.transport.producer import ProducerBuffer

from patches import bounded_flush

bounded_flush.install()
UPSTREAM_FLUSH: Callable[[ProducerBuffer], Awaitable[None]] = ProducerBuffer.flush.__wrapped__  # type: ignore[attr-defined]
# Long enough for upstream's 0.1 s give-up to pass; only a safety net for a hang otherwise.
SETTLE_SECONDS = 0.3


class Producer:
    """Where the stand-in writes go: each publish takes one permit, in buffer order."""

    def __init__(self) -> None:
        self.permits = asyncio.Semaphore(0)
        self.published: list[int] = []
        self.fail_on: int | None = None

    def allow(self, writes: int) -> None:
        for _ in range(writes):
            self.permits.release()


class Write:
    """A buffer entry as the buffer's task reads it: ``.message.channel.publish_message``."""

    def __init__(self, producer: Producer, number: int) -> None:
        self.producer = producer
        self.number = number

    @property
    def message(self) -> Write:
        return self

    @property
    def channel(self) -> Write:
        return self

    async def publish_message(self, fut: object, wait: bool = False) -> None:
        await self.producer.permits.acquire()
        if self.number == self.producer.fail_on:
            raise RuntimeError(f"write {self.number} refused")
        self.producer.published.append(self.number)


@pytest.fixture
def producer() -> Producer:
    return Producer()


@pytest.fixture
async def buffer(producer: Producer) -> AsyncIterator[Any]:
    app = faust.App("bounded-flush-test", broker="kafka://127.0.0.1:1")
    buffer: Any = app.producer.buffer
    await buffer.start()
    yield buffer
    producer.fail_on = None
    producer.allow(1_000)  # whatever a case left waiting goes through, so the buffer stops
    if not buffer.should_stop:
        with contextlib.suppress(RuntimeError):  # the failed write's, raised again at stop
            await asyncio.wait_for(buffer.stop(), SETTLE_SECONDS * 3)


def put(buffer: Any, producer: Producer, numbers: range) -> None:
    for number in numbers:
        buffer.put(Write(producer, number))


async def settled(task: asyncio.Task[None]) -> bool:
    done, _ = await asyncio.wait({task}, timeout=SETTLE_SECONDS)
    return bool(done)


async def test_a_flush_waits_for_every_write_it_found(buffer: Any, producer: Producer) -> None:
    put(buffer, producer, range(3))
    flush = asyncio.ensure_future(buffer.flush())
    assert not await settled(flush)  # nothing published: upstream returned by now (below)
    producer.allow(3)
    await asyncio.wait_for(flush, SETTLE_SECONDS)
    assert producer.published == [0, 1, 2]


async def test_control_upstream_returns_with_writes_unsent(buffer: Any, producer: Producer) -> None:
    put(buffer, producer, range(3))
    flush = asyncio.ensure_future(UPSTREAM_FLUSH(buffer))
    assert await settled(flush)
    assert producer.published == []  # a commit would go on past three unsent writes
    producer.allow(3)


async def test_writes_made_after_it_began_do_not_hold_it(buffer: Any, producer: Producer) -> None:
    put(buffer, producer, range(3))
    flush = asyncio.ensure_future(buffer.flush())
    await asyncio.sleep(0)
    put(buffer, producer, range(3, 6))  # the agents go on writing tables
    producer.allow(3)
    await asyncio.wait_for(flush, SETTLE_SECONDS)
    assert producer.published == [0, 1, 2]  # 3 to 5 still in the buffer or its task
    producer.allow(3)
    await asyncio.wait_for(buffer.flush(), SETTLE_SECONDS)
    assert producer.published == list(range(6))


async def test_control_upstream_chases_writes_made_meanwhile(buffer: Any) -> None:
    """Upstream returns only once the buffer is empty: while every write is followed by a new
    one, it publishes all of them, the ones made after it began too."""
    producer = Producer()
    put(buffer, producer, range(3))
    flush = asyncio.ensure_future(UPSTREAM_FLUSH(buffer))
    for number in range(3, 40):
        put(buffer, producer, range(number, number + 1))
        producer.allow(1)
        await asyncio.sleep(0.01)
    assert not flush.done()
    producer.allow(3)
    await asyncio.wait_for(flush, 2.0)
    assert producer.published == list(range(40))


async def test_a_write_that_fails_fails_the_flush_waiting_for_it(
    buffer: Any, producer: Producer
) -> None:
    producer.fail_on = 1
    put(buffer, producer, range(3))
    flush = asyncio.ensure_future(buffer.flush())
    producer.allow(3)
    with pytest.raises(RuntimeError, match="write 1 refused"):
        await asyncio.wait_for(flush, SETTLE_SECONDS)
    assert producer.published == [0]
    with pytest.raises(RuntimeError, match="write 1 refused"):  # and so does every later one
        await asyncio.wait_for(buffer.flush(), SETTLE_SECONDS)
    assert producer.published == [0]


async def test_at_stop_what_is_left_is_sent_in_order(buffer: Any, producer: Producer) -> None:
    put(buffer, producer, range(2))
    producer.allow(1)
    await asyncio.sleep(0.01)  # the buffer's task published 0 and holds 1
    put(buffer, producer, range(2, 5))
    stopping = asyncio.ensure_future(buffer.stop())  # its task ends after write 1
    await asyncio.sleep(0.01)
    producer.allow(4)
    await asyncio.wait_for(stopping, SETTLE_SECONDS * 3)
    assert producer.published == [0, 1, 2, 3, 4]
    assert buffer.size == 0
