"""The producer buffer's flush waits for what the buffer held when it was called, and for
nothing after.

Faust awaits ``producer.flush()`` before every offset commit, so that the table changelog
writes made for the records being committed reach the broker first. ``ProducerBuffer.flush``
(faust-streaming 0.15.3, ``flush_atmost(None)``) instead waits until the buffer is empty, one
message at a time, each with its own ``asyncio.wait_for``. While agents keep writing tables,
it is never empty: measured in ``bench.run storm`` with the CPU ceilings off, commits took
4-38 s each (README, Performance, eleventh sitting). Faust's drain loop also commits inline
every ``broker_commit_every`` acks, so for those seconds no record of any topic, urgent ones
included, was handed to an agent. Upstream also gives up after 0.1 s without a send and lets
the commit go on with writes still unsent: a commit past a write the broker never got.

Here each buffer counts what goes in (``put``) and what its task has published
(``_send_pending``). ``flush`` notes the count of what went in and returns once that many are
published: no write that a committed record made is left behind (a record's table writes are
in the buffer before it is acked, and its offset is read before the flush begins), and no
write made after the flush began delays it. A publish that fails (its task stops there) fails
the flushes waiting and every later one, so no commit goes past it. Once the buffer is stopping,
its task takes no more, so ``flush`` sends what is left itself, in order.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from faust.transport.producer import ProducerBuffer

from patches.pin import is_patched, require_unchanged

WORKS_AROUND = (
    "faust 0.15.3: ProducerBuffer.flush waits for writes made after it began, gives up in 0.1 s"
)

EXPECTED_SOURCE = {
    "ProducerBuffer.flush": "26fbebb1",
    "ProducerBuffer.put": "bf26dfbc",
    "ProducerBuffer._send_pending": "4a9d5f93",
    "ProducerBuffer._handle_pending": "78d64803",
}


class FlushMarks:
    """What one buffer took in and published, and the flushes waiting for a count."""

    __slots__ = ("failure", "published", "taken", "waiting")

    def __init__(self) -> None:
        self.taken = 0
        self.published = 0
        # A write that failed: every flush after it fails too (its task has stopped).
        self.failure: BaseException | None = None
        # (count to reach, future): appended in count order, so woken from the left.
        self.waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def wait_until_published(self, count: int) -> None:
        """Returns once ``count`` writes are published; raises a write's failure."""
        if self.failure is not None:
            raise self.failure
        if self.published >= count:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append((count, future))
        await future

    def on_published(self) -> None:
        self.published += 1
        while self.waiting and self.waiting[0][0] <= self.published:
            _, future = self.waiting.popleft()
            if not future.done():
                future.set_result(None)

    def on_failed(self, error: BaseException) -> None:
        self.failure = error
        while self.waiting:
            _, future = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)


def marks_of(buffer: ProducerBuffer) -> FlushMarks:
    marks: FlushMarks | None = getattr(buffer, "_flush_marks", None)
    if marks is None:
        marks = FlushMarks()
        buffer._flush_marks = marks  # type: ignore[attr-defined]
    return marks


def is_threaded(buffer: ProducerBuffer) -> bool:
    """With ``producer_threaded`` the buffer's messages go to another thread's queue, which
    this does not count: upstream's flush stays."""
    return bool(buffer.app is not None and buffer.app.conf.producer_threaded)


def _counting_put(original: Callable[[ProducerBuffer, Any], None]) -> Any:
    @functools.wraps(original)
    def put(self: ProducerBuffer, fut: Any) -> None:
        original(self, fut)
        marks_of(self).taken += 1

    return put


def _counting_send(original: Callable[[ProducerBuffer, Any], Awaitable[None]]) -> Any:
    @functools.wraps(original)
    async def _send_pending(self: ProducerBuffer, fut: Any) -> None:
        try:
            await original(self, fut)
        except BaseException as error:
            marks_of(self).on_failed(error)
            raise
        marks_of(self).on_published()

    return _send_pending


def _bounded_flush(original: Callable[[ProducerBuffer], Awaitable[None]]) -> Any:
    @functools.wraps(original)
    async def flush(self: ProducerBuffer) -> None:
        if is_threaded(self):
            await original(self)
            return
        marks = marks_of(self)
        if self.should_stop:
            # The buffer's task ends after the write it holds (if it holds one): once that one
            # is published, the rest is sent here, in order.
            await marks.wait_until_published(marks.taken - self.pending.qsize())
            await send_what_is_left(self)
            return
        await marks.wait_until_published(marks.taken)

    flush.__bounded_flush__ = True  # type: ignore[attr-defined]
    return flush


async def send_what_is_left(buffer: ProducerBuffer) -> None:
    """What upstream's flush did before ``flush_atmost``: takes each write from the buffer and
    publishes it, one after the other."""
    while True:
        try:
            fut = buffer.pending.get_nowait()
        except asyncio.QueueEmpty:
            return
        await buffer._send_pending(fut)  # a failure raises here


def check_upstream() -> None:
    upstream = {
        "ProducerBuffer.flush": ProducerBuffer.flush,
        "ProducerBuffer.put": ProducerBuffer.put,
        "ProducerBuffer._send_pending": ProducerBuffer._send_pending,
        "ProducerBuffer._handle_pending": ProducerBuffer._handle_pending.fun,
    }
    require_unchanged("patches/bounded_flush.py", upstream, EXPECTED_SOURCE)


def install() -> None:
    """Idempotent; raises UpstreamChanged on upstream code this was not written against."""
    if is_patched(ProducerBuffer.flush, "__bounded_flush__"):
        return
    check_upstream()
    ProducerBuffer.put = _counting_put(ProducerBuffer.put)  # type: ignore[method-assign]
    ProducerBuffer._send_pending = _counting_send(ProducerBuffer._send_pending)  # type: ignore[method-assign]
    ProducerBuffer.flush = _bounded_flush(ProducerBuffer.flush)  # type: ignore[method-assign]
