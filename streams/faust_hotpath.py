"""Two per-message costs in faust-streaming 0.15.3 removed, and a monitor that records nothing.

Profiles of the pipeline put most of a worker's time in Faust's per-event machinery (BROKER.md):

* ``Consumer._drain_messages`` hands every fetched message to the conductor through
  ``wait_first(callback(message), suspend_flow.wait())``: two coroutines, tasks and an
  ``asyncio.wait`` per message, only so that a rebalance can abandon a hand-off blocked on a
  full stream queue. Here the hand-off is first run inline; only if it really has to wait is
  the rest of it raced against ``suspend_flow`` exactly as upstream does.
* ``Topic.send()`` asks ``app.maybe_start_producer()`` for the producer on every send; its
  ``@stampede`` wrapper yields to the loop several times per call even when the producer has
  long been running. Here a started producer is returned directly.

Both are upstream inefficiencies worth reporting. The patches are pinned: ``install()`` checks
the faust version and a hash of each function it wraps, and raises on any difference, so an
upgrade fails at start-up instead of running changed code through stale assumptions.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
from collections.abc import Coroutine
from typing import Any

import faust
from faust.sensors.monitor import Monitor
from faust.topics import Topic
from faust.transport.consumer import Consumer
from mode import Service

SUPPORTED_FAUST = "0.15.3"
# sha256 of the upstream source each patch relies on (faust-streaming 0.15.3).
EXPECTED_SOURCE = {
    "Service.wait_first": "feade6a3",
    "Consumer._drain_messages": "44a25003",
    "Topic._get_producer": "93292ab6",
}


def source_digest(function: Any) -> str:
    """Of the upstream function, also once our wrapper (functools.wraps) has replaced it."""
    upstream = inspect.unwrap(function)
    return hashlib.sha256(inspect.getsource(upstream).encode()).hexdigest()[:8]


async def _finish(coro: Coroutine[Any, Any, Any], pending: Any) -> Any:
    """Drive a coroutine that already ran up to its first suspension, like asyncio.Task would:
    wait for the future it yielded, then step it again, until it returns."""
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


def _run_eagerly(coro: Coroutine[Any, Any, Any]) -> tuple[bool, Any]:
    """Step ``coro`` once: (True, None) if it finished without suspending, else (False, what it
    is waiting on)."""
    try:
        pending = coro.send(None)
    except StopIteration:
        return True, None
    return False, pending


def _patched_wait_first(original: Any) -> Any:
    @functools.wraps(original)
    async def wait_first(self: Consumer, *coros: Any, timeout: Any = None) -> Any:
        # Only the drain loop's hand-off is taken on the fast path; every other caller of
        # wait_first (there are several in mode and faust) keeps upstream behaviour.
        handoff = coros[0] if len(coros) == 2 else None
        if handoff is None or getattr(handoff, "cr_code", None) is not _on_message_code(self):
            return await original(self, *coros, timeout=timeout)
        suspended = coros[1]
        if self.suspend_flow.is_set():
            return await original(self, *coros, timeout=timeout)
        finished, pending = _run_eagerly(handoff)
        if finished:
            suspended.close()  # never awaited: close it so no "never awaited" warning
            return None
        return await original(self, _finish(handoff, pending), suspended, timeout=timeout)

    return wait_first


def _on_message_code(consumer: Consumer) -> Any:
    callback = consumer.callback
    return getattr(getattr(callback, "__func__", callback), "__code__", None)


def _patched_get_producer(original: Any) -> Any:
    @functools.wraps(original)
    async def _get_producer(self: Topic) -> Any:
        app = self.app
        if not app.in_transaction:
            producer = app.producer
            if producer.started:
                return producer
        return await original(self)

    return _get_producer


class QuietMonitor(Monitor):
    """Keeps Faust's rebalance and commit bookkeeping but records nothing per message: the
    per-event hooks below run several times for every record and nothing here reads them."""

    def on_message_in(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_stream_event_in(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_stream_event_out(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_message_out(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_table_get(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_table_set(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_send_initiated(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_send_completed(self, *args: Any, **kwargs: Any) -> None:
        return None


def check_upstream() -> None:
    if faust.__version__ != SUPPORTED_FAUST:
        raise RuntimeError(
            f"faust_hotpath targets faust-streaming {SUPPORTED_FAUST}, found {faust.__version__}"
        )
    for name, function in (
        ("Service.wait_first", Service.wait_first),
        ("Consumer._drain_messages", Consumer._drain_messages),
        ("Topic._get_producer", Topic._get_producer),
    ):
        if source_digest(function) != EXPECTED_SOURCE[name]:
            raise RuntimeError(f"faust {name} changed upstream; re-check faust_hotpath")


def install() -> None:
    """Idempotent."""
    if getattr(Consumer.wait_first, "__hotpath__", False):
        return
    check_upstream()
    wait_first = _patched_wait_first(Consumer.wait_first)
    wait_first.__hotpath__ = True  # type: ignore[attr-defined]
    Consumer.wait_first = wait_first  # type: ignore[method-assign]
    Topic._get_producer = _patched_get_producer(Topic._get_producer)  # type: ignore[method-assign]
