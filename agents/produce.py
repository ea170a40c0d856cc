"""Producing records from agents: straight to the app's producer.

``Topic.send()`` runs every record through Faust's send machinery (a FutureMessage, callbacks,
sensors, and ``maybe_start_producer()``, whose ``@stampede`` wrapper yields to the loop several
times per call). Handing the bytes to the producer directly did 74,000-81,000 sends/s here
against ~27,000 through ``Topic.send()`` (BROKER.md); every stage of the pipeline sends at least
one record per event, so this is on the hot path.

At-least-once is unchanged: Faust flushes the producer before it commits offsets
(``Consumer._commit_offsets``), so a record handed over before its event is acked is on the
broker before the committed offset passes that event.

Failures are counted (``agents.counters.FAILURES.produce_failures``, by topic). A record the
producer refuses outright (``MessageSizeTooLargeError`` for a record over
``producer_max_request_size``, checked synchronously by aiokafka before it is queued) raises
out of ``send`` as Faust's ``ProducerSendError``: the caller's safe-handling wrapper
(agents/safe.py) dead-letters the event it came from. A failure after the producer's own
retries only resolves the future, long after the agent moved on: it is logged and counted, and
the worker commits nothing more and stops (``patches/commit_guard.stop_committing``), so that
its restart reads the event again and produces the record again.
``send_pending`` and ``send_and_wait`` are for the rare records whose failure the caller must
see and act on (dead letters).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from faust.topics import Topic

from agents.counters import FAILURES
from agents.tracing import with_trace_context
from patches import commit_guard
from streams.faust_types import Channel

log = logging.getLogger(__name__)

Headers = Mapping[str, bytes] | list[tuple[str, bytes]]


async def send(
    channel: Channel,
    key: bytes | None,
    value: bytes | None,
    headers: Headers | None = None,
    timestamp: float | None = None,
    partition: int | None = None,
) -> None:
    """``timestamp`` (seconds) for a record passed on: it keeps its original time.
    ``partition`` only for a record that must not go where its key hashes (a broadcast)."""
    headers = with_trace_context(headers)
    if not isinstance(channel, Topic):
        # In-memory channels (functional tests, agent-to-agent channels) have no producer.
        await channel.send(
            key=key, value=value, headers=headers, timestamp=timestamp, partition=partition
        )
        return
    producer = channel.app.producer
    topic = channel.get_topic_name()
    try:
        pending = await producer.send(topic, key, value, partition, timestamp, headers or None)
    except Exception:
        FAILURES.produce_failures[topic] += 1
        raise
    if isinstance(pending, asyncio.Future):
        pending.add_done_callback(_reporter(topic))


async def send_pending(
    channel: Channel,
    key: bytes | None,
    value: bytes | None,
    headers: Headers | None = None,
) -> asyncio.Future[Any] | None:
    """Like ``send``, but hands back the producer's future (None for an in-memory channel), for
    a caller that must act on a late failure itself (dead letters). A refusal at send time is
    counted here, as in ``send``; a late failure is the caller's to count."""
    if not isinstance(channel, Topic):
        await channel.send(key=key, value=value, headers=headers)
        return None
    topic = channel.get_topic_name()
    try:
        pending = await channel.app.producer.send(topic, key, value, None, None, headers or None)
    except Exception:
        FAILURES.produce_failures[topic] += 1
        raise
    return pending if isinstance(pending, asyncio.Future) else None


async def send_and_wait(
    channel: Channel,
    key: bytes | None,
    value: bytes | None,
    headers: Headers | None = None,
) -> None:
    """Like ``send``, but returns only once the broker has the record and raises if it never
    will: one linger and a round trip per call, so only for records that are rare and must not
    fail unseen."""
    if not isinstance(channel, Topic):
        await channel.send(key=key, value=value, headers=headers)
        return
    topic = channel.get_topic_name()
    try:
        pending = await channel.app.producer.send(topic, key, value, None, None, headers or None)
        await pending
    except Exception:
        FAILURES.produce_failures[topic] += 1
        raise


Reporter = Callable[["asyncio.Future[object]"], None]
# One done-callback per topic, built once: the hot path only looks it up.
_reporters: dict[str, Reporter] = {}


def _reporter(topic: str) -> Reporter:
    reporter = _reporters.get(topic)
    if reporter is None:

        def reporter(pending: asyncio.Future[object]) -> None:
            _report_failure(topic, pending)

        _reporters[topic] = reporter
    return reporter


def _report_failure(topic: str, pending: asyncio.Future[object]) -> None:
    if pending.cancelled():
        FAILURES.produce_failures[topic] += 1
        log.error("a record for %s was cancelled before the broker acknowledged it", topic)
        return
    error = pending.exception()
    if error is not None:
        FAILURES.produce_failures[topic] += 1
        # The producer already retried for its delivery timeout; nothing in this process can
        # resend it now, and the event that produced it may already be acked: commit nothing
        # more and restart, so the event is read and its record produced again.
        log.error("producing a record to %s failed after the producer's retries: %r", topic, error)
        commit_guard.stop_committing(f"a record for {topic} was lost by the producer: {error!r}")
