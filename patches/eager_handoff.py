"""The consumer's per-message hand-off to the conductor, run inline when it does not wait.

``Consumer._drain_messages`` (faust-streaming 0.15.3) hands every fetched record to the
conductor through ``wait_first(callback(message), suspend_flow.wait())``: two coroutines, two
tasks and an ``asyncio.wait`` per record, only so that a rebalance can abandon a hand-off that
is blocked on a full stream queue. Nearly every hand-off finishes without waiting (the queue
has room), so here it is first stepped inline; only one that really suspends is raced against
``suspend_flow`` exactly as upstream does. BROKER.md measured the upstream path at about half
of a consume-only agent's time; the harness's figures are in the README's Performance section.

Every other caller of ``wait_first`` (mode and faust have several) keeps upstream behaviour.
Pinned: refuses to install on another faust version or when either upstream function changed.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Coroutine
from typing import Any

from faust.transport.consumer import Consumer
from mode import Service

from patches.pin import is_patched, require_unchanged

WORKS_AROUND = "faust 0.15.3: two tasks and an asyncio.wait per record in Consumer._drain_messages"

# sha256 (first 8 hex digits) of the upstream source this relies on, faust-streaming 0.15.3.
EXPECTED_SOURCE = {
    "Service.wait_first": "feade6a3",
    "Consumer._drain_messages": "44a25003",
}


def run_eagerly(coro: Coroutine[Any, Any, Any]) -> tuple[bool, Any]:
    """Step ``coro`` once: ``(True, None)`` if it finished without suspending, else
    ``(False, the future it is waiting on)``."""
    try:
        pending = coro.send(None)
    except StopIteration:
        return True, None
    return False, pending


async def finish(coro: Coroutine[Any, Any, Any], pending: Any) -> Any:
    """Drive a coroutine that already ran up to its first suspension, as an asyncio.Task
    would: wait for the future it yielded, step it again, until it returns."""
    while True:
        if pending is None:  # a bare ``yield`` (asyncio.sleep(0))
            await asyncio.sleep(0)
        else:
            pending._asyncio_future_blocking = False
            try:
                await asyncio.wait([pending])
            except asyncio.CancelledError:
                coro.close()
                raise
        try:
            pending = coro.send(None)
        except StopIteration as done:
            return done.value


def _on_message_code(consumer: Consumer) -> Any:
    callback = consumer.callback
    return getattr(getattr(callback, "__func__", callback), "__code__", None)


def _eager_wait_first(original: Any) -> Any:
    @functools.wraps(original)
    async def wait_first(self: Consumer, *coros: Any, timeout: Any = None) -> Any:
        handoff = coros[0] if len(coros) == 2 else None
        if handoff is None or getattr(handoff, "cr_code", None) is not _on_message_code(self):
            return await original(self, *coros, timeout=timeout)
        suspended = coros[1]
        if self.suspend_flow.is_set():
            return await original(self, *coros, timeout=timeout)
        finished, pending = run_eagerly(handoff)
        if finished:
            suspended.close()  # never awaited: close it so no "never awaited" warning
            return None
        return await original(self, finish(handoff, pending), suspended, timeout=timeout)

    wait_first.__eager_handoff__ = True  # type: ignore[attr-defined]
    return wait_first


def check_upstream() -> None:
    upstream = {
        "Service.wait_first": Service.wait_first,
        "Consumer._drain_messages": Consumer._drain_messages,
    }
    require_unchanged("patches/eager_handoff.py", upstream, EXPECTED_SOURCE)


def install() -> None:
    """Idempotent; raises if faust is not the version this was written against."""
    if is_patched(Consumer.wait_first, "__eager_handoff__"):
        return
    check_upstream()
    Consumer.wait_first = _eager_wait_first(Consumer.wait_first)  # type: ignore[method-assign]
