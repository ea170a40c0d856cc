"""Dead-lettering: the original bytes, untouched, plus why and where they came from.

A dead letter is the only copy of a record once its event is acked, so its failure must be
seen, and it has a fallback: a record that cannot be copied whole (larger than the producer
takes, or refused by the broker) is written as a truncated letter, with its source coordinates,
its reason, its original size and the first 64 KiB of its value.

A whole copy is not awaited: it is handed to the producer like any record (Faust flushes the
producer before it commits the source offset) and its future is watched; if it fails, the
truncated letter is written then. Awaiting each one cost a producer linger per bad record: 46
dead letters/s on one partition against 4,566/s (1,000 binary requests, embedded broker), so a
burst of garbage would have held every valid request behind it. The truncated path is rare
(oversized records) and awaited, retried a few times; only if it fails for good does
``dead_letter`` raise (or, for a late failure, log CRITICAL): the record is then lost, counted
in ``FAILURES.dead_letter_failures``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from faust.topics import Topic

from agents import produce
from agents.counters import FAILURES, RecentLetter
from config.errors import NotifyError
from streams.faust_types import Channel, Event
from streams.wire import InvalidRecord

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


class DeadLetterFailed(NotifyError):
    """Not even a truncated dead letter could be written."""


class LetterHeaders(msgspec.Struct, frozen=True):
    """What a dead letter says about itself, in its ``x-dlq-*`` headers (its value and its key
    are the record's own, or their prefixes)."""

    reason: str = ""
    source: str = ""  # topic:partition:offset
    at: float | None = None  # epoch seconds it was dead-lettered
    truncated_from: int | None = None  # a truncated letter: the original value's size in bytes

    def encode(self) -> dict[str, bytes]:
        headers = {
            # "replace": an exception message may hold lone surrogates from a decode error.
            REASON_HEADER: bounded_reason(self.reason).encode(errors="replace"),
            SOURCE_HEADER: self.source.encode(errors="replace"),
        }
        if self.at is not None:
            headers[AT_HEADER] = f"{self.at:.3f}".encode()
        if self.truncated_from is not None:
            headers[TRUNCATED_HEADER] = str(self.truncated_from).encode()
        return headers

    @classmethod
    def decode(cls, headers: Mapping[str, bytes]) -> LetterHeaders:
        """A letter's headers, each checked (a time must be a number, a size an integer);
        InvalidRecord names the one that is not."""
        values = {
            field: headers[name].decode(errors="replace")
            for field, name in _HEADER_OF.items()
            if name in headers
        }
        try:
            return msgspec.convert(values, cls, strict=False)  # "1050011" -> 1050011
        except msgspec.ValidationError as exc:
            raise InvalidRecord(f"dead letter headers: {exc}") from None


_HEADER_OF = {
    "reason": REASON_HEADER,
    "source": SOURCE_HEADER,
    "at": AT_HEADER,
    "truncated_from": TRUNCATED_HEADER,
}


def source_of(event: Event) -> str:
    message = event.message
    return f"{message.topic}:{message.partition}:{message.offset}"


def bounded_reason(reason: str) -> str:
    """Reasons quote exception messages, which may quote the record."""
    if len(reason) <= MAX_REASON_CHARS:
        return reason
    return f"{reason[:MAX_REASON_CHARS]}... ({len(reason)} characters)"


def dead_letter_headers(event: Event, reason: str) -> dict[str, bytes]:
    return LetterHeaders(reason, source_of(event), time.time()).encode()


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


def whole_copy_limit(topic: Channel) -> int:
    """The largest key + value + headers a whole copy may have on this app's producer."""
    return int(topic.app.conf.producer_max_request_size) - FRAMING_MARGIN_BYTES


@dataclass(frozen=True)
class Letter:
    """What a dead letter needs of its event, kept until its whole copy is confirmed."""

    source: str
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]  # reason, source, time

    @classmethod
    def of(cls, event: Event, reason: str) -> Letter:
        message = event.message
        return cls(source_of(event), message.key, message.value, dead_letter_headers(event, reason))


async def dead_letter(topic: Channel, event: Event, reason: str) -> None:
    """Keep the value byte for byte so a redrive republishes exactly what the producer sent;
    raises DeadLetterFailed only when not even a truncated letter could be written."""
    letter = Letter.of(event, reason)
    whole = [*letter.headers.items(), *original_headers(event.message.headers)]
    size = record_size(letter.key, letter.value, whole)
    limit = whole_copy_limit(topic)
    reason_text = letter.headers[REASON_HEADER].decode()
    log.warning("dead-lettered %s: %s", letter.source, reason_text)
    FAILURES.recent_dead_letters.append(
        RecentLetter(time.time(), topic_name(topic), letter.source, reason_text)
    )
    if size <= limit:
        try:
            pending = await produce.send_pending(topic, letter.key, letter.value, whole)
        except Exception as exc:  # refused at once (ProducerSendError), or no producer
            log.warning(
                "dead letter of %s not written whole (%r): writing it truncated", letter.source, exc
            )
        else:
            watch(pending, topic, letter)
            return
    else:
        log.warning(
            "dead letter of %s is %d bytes, over the %d a record may have: writing it truncated",
            letter.source,
            size,
            limit,
        )
    await write_truncated(topic, letter)


# Late fallbacks in progress: the loop keeps only weak references to tasks.
_fallbacks: set[asyncio.Task[None]] = set()


def watch(pending: asyncio.Future[Any] | None, topic: Channel, letter: Letter) -> None:
    """Counts the whole copy once the broker has it; writes the truncated letter if it fails
    (the broker's message.max.bytes may be below the producer's limit, or it timed out)."""
    if pending is None:  # an in-memory channel: already delivered
        FAILURES.dead_letters[topic_name(topic)] += 1
        return

    def done(future: asyncio.Future[Any]) -> None:
        error = None if future.cancelled() else future.exception()
        if not future.cancelled() and error is None:
            FAILURES.dead_letters[topic_name(topic)] += 1
            return
        FAILURES.produce_failures[topic_name(topic)] += 1
        log.warning("dead letter of %s failed (%r): writing it truncated", letter.source, error)
        task = asyncio.ensure_future(_fall_back(topic, letter))
        _fallbacks.add(task)
        task.add_done_callback(_fallbacks.discard)

    pending.add_done_callback(done)


async def _fall_back(topic: Channel, letter: Letter) -> None:
    try:
        await write_truncated(topic, letter)
    except Exception:
        log.critical("LOST %s: it could not be dead-lettered", letter.source, exc_info=True)


async def write_truncated(topic: Channel, letter: Letter) -> None:
    """Awaited and retried: this letter is small, so a failure is the broker or the network."""
    limit = whole_copy_limit(topic)
    prefix_bytes = max(0, min(PREFIX_BYTES, limit - KEY_BYTES - 4096))
    key = letter.key[:KEY_BYTES] if letter.key is not None else None
    headers = {**letter.headers, TRUNCATED_HEADER: str(len(letter.value or b"")).encode()}
    prefix = letter.value[:prefix_bytes] if letter.value is not None else None
    error: Exception | None = None
    for attempt in range(TRUNCATED_ATTEMPTS):
        if attempt:
            await asyncio.sleep(RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1))
        try:
            await produce.send_and_wait(topic, key, prefix, headers)
        except Exception as exc:
            error = exc
            log.warning(
                "truncated dead letter of %s failed (try %d): %r", letter.source, attempt + 1, exc
            )
            continue
        FAILURES.dead_letters[topic_name(topic)] += 1
        FAILURES.dead_letters_truncated[topic_name(topic)] += 1
        return
    FAILURES.dead_letter_failures[topic_name(topic)] += 1
    raise DeadLetterFailed(f"{letter.source}: no dead letter written: {error!r}") from error


def topic_name(topic: Channel) -> str:
    # In-memory channels (functional tests) have no name and raise if asked for one.
    return topic.get_topic_name() if isinstance(topic, Topic) else "<channel>"
