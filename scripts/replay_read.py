"""Reading a replay window, and what the pipeline knows about it, from the topics.

Only Kafka is read (no worker, no web view), so a plan can be made while the workers are down
or being fixed, and everything here behaves the same on a Kafka cluster as on the embedded
broker:

- a time window starts at ``offsets_for_times(since)`` on each partition. Tansu answers a
  timestamp later than its newest record with offset 0 (Kafka answers None; BROKER.md), so
  every record read is also checked against the window's own bounds: a window in the future is
  empty on both;
- a window ends at the first record at or after ``until``, or at the partition's high
  watermark as its last Fetch reported it, never ListOffsets(LATEST), which the embedded broker
  gets wrong when the last batch holds several records.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from agents.request_origin import REPLAY_OF_HEADER, REQUEST_OF_HEADER
from config.settings import Settings
from config.vocabulary import DeviceAction, SuppressionAction
from scripts.dlq import read_all
from scripts.replay_plan import (
    Candidate,
    DeliveryCandidate,
    Knowledge,
    ReplayCopy,
    RequestCandidate,
    Unreadable,
)
from streams import topics
from streams.deliveries import parse_delivery, parse_event
from streams.records import InvalidRecord, parse_device, parse_request, parse_suppression
from tables.status import NotificationState, fold

REPLAY_ID_HEADER = "x-replay-id"
REQUEST_TOPICS = (
    topics.REQUESTS,
    topics.REQUESTS_HIGH,
    topics.REQUESTS_NORMAL,
    topics.REQUESTS_LOW,
    topics.REQUESTS_BY_USER,
)
IDLE_SECONDS = 2.0  # a partition that answers no fetch for this long counts as read


@dataclass(frozen=True)
class Window:
    """Records to replay: a time range (epoch seconds) or explicit first-last offsets."""

    since: float | None = None
    until: float | None = None
    offsets: Mapping[int, tuple[int, int | None]] | None = None  # partition -> first, last

    def describe(self) -> str:
        if self.offsets is not None:
            return ",".join(
                f"{p}:{first}-{'' if last is None else last}"
                for p, (first, last) in sorted(self.offsets.items())
            )
        return f"{_iso(self.since) if self.since else 'start'} .. {_iso(self.until) or 'now'}"


def _iso(at: float | None) -> str:
    return "" if at is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


@dataclass(frozen=True)
class Span:
    """What was read of one partition: offsets first..last (inclusive), and how many."""

    first: int | None
    last: int | None
    records: int


@dataclass(frozen=True)
class WindowRecords:
    records: list[Any]  # aiokafka ConsumerRecords, by partition and offset
    spans: dict[int, Span]
    partitions: int  # the topic's partition count (a request's home partition depends on it)


async def read_window(bootstrap: str, topic: str, window: Window) -> WindowRecords:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        await consumer.topics()  # loads the metadata partitions_for_topic reads
        every = sorted(consumer.partitions_for_topic(topic) or ())
        wanted = every if window.offsets is None else [p for p in every if p in window.offsets]
        tps = [TopicPartition(topic, p) for p in wanted]
        if not tps:
            return WindowRecords([], {}, len(every))
        consumer.assign(tps)
        stops = await _position(consumer, tps, window)
        records, spans = await _read(consumer, [tp for tp in tps if tp in stops], stops, window)
        records.sort(key=lambda m: (m.partition, m.offset))  # fetches arrive in any order
        return WindowRecords(records, spans, len(every))
    finally:
        await consumer.stop()


async def _position(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], window: Window
) -> dict[TopicPartition, int | None]:
    """Seeks each partition to the window's first offset; returns its stop (exclusive; None:
    the high watermark). A partition with nothing at or after ``since`` is left out."""
    stops: dict[TopicPartition, int | None] = {}
    if window.offsets is not None:
        for tp in tps:
            first, last = window.offsets[tp.partition]
            consumer.seek(tp, first)
            stops[tp] = None if last is None else last + 1
        return stops
    if window.since is None:
        await consumer.seek_to_beginning(*tps)
        return dict.fromkeys(tps)
    found = await consumer.offsets_for_times({tp: int(window.since * 1000) for tp in tps})
    for tp in tps:
        at = found.get(tp)
        if at is not None:
            consumer.seek(tp, at.offset)
            stops[tp] = None
    return stops


async def _read(
    consumer: AIOKafkaConsumer,
    tps: list[TopicPartition],
    stops: dict[TopicPartition, int | None],
    window: Window,
) -> tuple[list[Any], dict[int, Span]]:
    since_ms = None if window.since is None else window.since * 1000
    until_ms = None if window.until is None else window.until * 1000
    records: list[Any] = []
    spans = {tp.partition: Span(None, None, 0) for tp in tps}
    open_tps = set(tps)
    idle_since = time.monotonic()
    while open_tps and time.monotonic() - idle_since < IDLE_SECONDS:
        batch = await consumer.getmany(*open_tps, timeout_ms=200)
        if any(batch.values()):
            idle_since = time.monotonic()
        for tp, messages in batch.items():
            for m in messages:
                stop = stops.get(tp)
                if (stop is not None and m.offset >= stop) or (
                    until_ms is not None and m.timestamp >= until_ms
                ):
                    open_tps.discard(tp)
                    break
                if since_ms is not None and m.timestamp < since_ms:
                    continue  # before the window (see the module's note on Tansu)
                span = spans[tp.partition]
                first = m.offset if span.first is None else span.first
                spans[tp.partition] = Span(first, m.offset, span.records + 1)
                records.append(m)
        for tp in list(open_tps):
            highwater = consumer.highwater(tp)
            position = await consumer.position(tp)
            stop = stops.get(tp)
            if highwater is not None and (
                position >= highwater or (stop is not None and position >= stop)
            ):
                open_tps.discard(tp)
    return records, spans


def candidates(topic: str, records: Iterable[Any]) -> list[Candidate]:
    """Each record as what the plan judges: a request, a delivery, a replay's copy or junk."""
    out: list[Candidate] = []
    for m in records:
        ref = f"{topic}:{m.partition}:{m.offset}"
        headers = {k: bytes(v) for k, v in (m.headers or ())}
        # A dead letter keeps its record's headers: one marked is a replayed delivery that
        # failed again, a new failure, not a copy.
        if REPLAY_OF_HEADER in headers and topic != topics.DELIVERIES_DLQ:
            out.append(ReplayCopy(ref, headers[REPLAY_OF_HEADER].decode(errors="replace")))
            continue
        try:
            if topic in REQUEST_TOPICS:
                request = parse_request(m.value, default_created_at=m.timestamp / 1000)
                origin = headers.get(REQUEST_OF_HEADER)
                out.append(RequestCandidate(ref, request, origin.decode() if origin else ref))
            else:
                out.append(DeliveryCandidate(ref, parse_delivery(m.value)))
        except InvalidRecord as exc:
            out.append(Unreadable(ref, str(exc)))
    return out


async def knowledge(
    bootstrap: str, settings: Settings, notification_ids: set[str], now: float
) -> Knowledge:
    return Knowledge(
        statuses=await statuses(bootstrap, notification_ids),
        ledger=await ledger_sends(bootstrap, f"{settings.app_id}-delivery_ledger-changelog", now),
        suppressed=await suppressed(bootstrap),
        replayed=await replayed(bootstrap),
        ledger_seconds=settings.dedup_ttl_seconds,
    )


async def statuses(bootstrap: str, notification_ids: set[str]) -> dict[str, NotificationState]:
    """The status of each notification, folded from its events exactly as the status agent
    does: a status read here is the one ``GET /notifications/<id>/`` answers."""
    folded: dict[str, NotificationState] = {}
    for m in await read_all(bootstrap, topics.DELIVERY_EVENTS):
        try:
            event = parse_event(m.value)
        except InvalidRecord:
            continue  # the status agent dead-letters it too
        if event.notification_id in notification_ids:
            folded[event.notification_id] = fold(folded.get(event.notification_id), event)
    return folded


async def ledger_sends(bootstrap: str, changelog: str, now: float) -> dict[str, str]:
    """delivery id -> provider for every unexpired send in the ledger's changelog (the last
    value of each ``<user_id>#<bucket>`` key holds that bucket's whole contents)."""
    buckets: dict[bytes, Any] = {}
    for m in await read_all(bootstrap, changelog):
        buckets[m.key or b""] = None if m.value is None else _json(m.value)
    sends: dict[str, str] = {}
    for bucket in buckets.values():
        for delivery_id, entry in (bucket if isinstance(bucket, dict) else {}).items():
            if isinstance(entry, dict) and float(entry.get("exp", 0)) > now:
                sends[delivery_id] = str(entry.get("provider") or "unknown")
    return sends


async def suppressed(bootstrap: str) -> frozenset[tuple[str, str]]:
    """(user, address) pairs suppressed now, and (user, token) pairs unregistered now."""
    gone: set[tuple[str, str]] = set()
    for m in await read_all(bootstrap, topics.SUPPRESSIONS):
        try:
            s = parse_suppression(m.value)
        except InvalidRecord:
            continue
        (gone.discard if s.action == SuppressionAction.LIFT else gone.add)((s.user_id, s.address))
    for m in await read_all(bootstrap, topics.DEVICES):
        try:
            d = parse_device(m.value)
        except InvalidRecord:
            continue
        pair = (d.user_id, d.token)
        (gone.add if d.action == DeviceAction.UNREGISTER else gone.discard)(pair)
    return frozenset(gone)


async def replayed(bootstrap: str) -> dict[str, float]:
    """Source ref -> when a replay last re-sent it, from the audit topic."""
    at: dict[str, float] = {}
    for m in await read_all(bootstrap, topics.REPLAY_AUDIT):
        entry = _json(m.value)
        if isinstance(entry, dict) and entry.get("kind") == "record" and m.key:
            ref = m.key.decode(errors="replace")
            at[ref] = max(at.get(ref, 0.0), float(entry.get("at", 0.0)))
    return at


def _json(raw: bytes | None) -> Any:
    try:
        return orjson.loads(raw or b"null")
    except orjson.JSONDecodeError:
        return None
