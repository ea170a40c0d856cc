"""Dead-lettering: the original bytes, untouched, plus why and where they came from.

A dead letter is the only copy of a record once its event is acked, so it is awaited (a
failure is seen, not just logged by a callback) and it has a fallback: a record that cannot be
copied whole (larger than the producer takes, or refused by the broker) is written as a
truncated letter, with its source coordinates, its reason, its original size and the first
64 KiB of its value. Only if that fails too, after a few tries, does ``dead_letter`` raise.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

import faust
from faust.topics import Topic
from faust.types import EventT

from agents import produce
from agents.counters import FAILURES

log = logging.getLogger(__name__)

REASON_HEADER = "x-dlq-reason"
SOURCE_HEADER = "x-dlq-source"  # topic:partition:offset
AT_HEADER = "x-dlq-at"
# Present only on a truncated letter: the original value's size in bytes. Its value is then a
# prefix, its headers are dropped and its key is cut to KEY_BYTES; it cannot be redriven.
TRUNCATED_HEADER = "x-dlq-truncated"

PREFIX_BYTES = 64 * 1024
KEY_BYTES = 1024
MAX_REASON_CHARS = 1000
# Record and batch framing the producer adds on top of key, value and headers, and the
# varints it sizes them with; its own check (aiokafka's estimate_size_in_bytes against
# producer_max_request_size) then never refuses what passed ours.
FRAMING_MARGIN_BYTES = 16 * 1024
# The truncated letter is small, so a failure is the broker or the network: try a few times.
TRUNCATED_ATTEMPTS = 3
RETRY_BACKOFF_SECONDS = 0.5


class DeadLetterFailed(Exception):
    """Not even a truncated dead letter could be written."""


def source_of(event: EventT) -> str:
    message = event.message
    return f"{message.topic}:{message.partition}:{message.offset}"


def bounded_reason(reason: str) -> str:
    """Reasons quote exception messages, which may quote the record."""
    if len(reason) <= MAX_REASON_CHARS:
        return reason
    return f"{reason[:MAX_REASON_CHARS]}... ({len(reason)} characters)"


def dead_letter_headers(event: EventT, reason: str) -> dict[str, bytes]:
    return {
        # "replace": an exception message may hold lone surrogates from a decode error.
        REASON_HEADER: bounded_reason(reason).encode(errors="replace"),
        SOURCE_HEADER: source_of(event).encode(errors="replace"),
        AT_HEADER: f"{time.time():.3f}".encode(),
    }


def original_headers(headers: Any) -> list[tuple[str, bytes]]:
    """The record's own headers (e.g. ``x-control-kind``), minus any earlier ``x-dlq-*`` ones
    (a redriven record that failed again), so each letter carries one reason."""
    items: Iterable[tuple[Any, Any]] = (
        headers.items() if isinstance(headers, dict) else headers or ()
    )
    return [
        # A null header value (Kafka allows one) is kept as an empty one.
        (str(name), value if isinstance(value, bytes) else b"")
        for name, value in items
        if not str(name).startswith("x-dlq-")
    ]


def record_size(key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> int:
    return (
        len(key or b"")
        + len(value or b"")
        + sum(len(name.encode(errors="replace")) + len(v) for name, v in headers)
    )


def whole_copy_limit(topic: faust.ChannelT) -> int:
    """The largest key + value + headers a whole copy may have on this app's producer."""
    return int(topic.app.conf.producer_max_request_size) - FRAMING_MARGIN_BYTES


async def dead_letter(topic: faust.ChannelT, event: EventT, reason: str) -> None:
    """Keep the value byte for byte so a redrive republishes exactly what the producer sent;
    raises DeadLetterFailed only when not even a truncated letter could be written."""
    message = event.message
    source = source_of(event)
    headers = dead_letter_headers(event, reason)
    whole = [*headers.items(), *original_headers(message.headers)]
    size = record_size(message.key, message.value, whole)
    limit = whole_copy_limit(topic)
    log.warning("dead-lettered %s: %s", source, headers[REASON_HEADER].decode())
    if size <= limit:
        try:
            await produce.send_and_wait(topic, message.key, message.value, whole)
        except Exception as exc:
            # The broker may take less than the producer (message.max.bytes), or be away.
            log.warning(
                "dead letter of %s not written whole (%r): writing it truncated", source, exc
            )
        else:
            FAILURES.dead_letters[_name(topic)] += 1
            return
    else:
        log.warning(
            "dead letter of %s is %d bytes, over the %d a record may have: writing it truncated",
            source,
            size,
            limit,
        )
    await _write_truncated(topic, event, headers, limit)


async def _write_truncated(
    topic: faust.ChannelT, event: EventT, headers: dict[str, bytes], limit: int
) -> None:
    message = event.message
    value = message.value
    prefix_bytes = max(0, min(PREFIX_BYTES, limit - KEY_BYTES - 4096))
    key = message.key[:KEY_BYTES] if message.key is not None else None
    letter = {**headers, TRUNCATED_HEADER: str(len(value or b"")).encode()}
    prefix = value[:prefix_bytes] if value is not None else None
    error: Exception | None = None
    for attempt in range(TRUNCATED_ATTEMPTS):
        if attempt:
            await asyncio.sleep(RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1))
        try:
            await produce.send_and_wait(topic, key, prefix, letter)
        except Exception as exc:
            error = exc
            log.warning(
                "truncated dead letter of %s failed (try %d): %r",
                source_of(event),
                attempt + 1,
                exc,
            )
            continue
        FAILURES.dead_letters[_name(topic)] += 1
        FAILURES.dead_letters_truncated[_name(topic)] += 1
        return
    raise DeadLetterFailed(f"{source_of(event)}: no dead letter written: {error!r}") from error


def _name(topic: faust.ChannelT) -> str:
    # In-memory channels (functional tests) have no name and raise if asked for one.
    return topic.get_topic_name() if isinstance(topic, Topic) else "<channel>"
