"""Inspect and redrive dead letters.

    python -m scripts.dlq list    [--topic deliveries.dlq] [--limit 50] [--json]
    python -m scripts.dlq redrive [--topic deliveries.dlq] (--records 0:12,3:4 | --all)
                                  [--reason-contains TEXT] [--again]

``deliveries.dlq`` records go back to their ``deliveries.<channel>.<priority>`` lane with the
attempt count reset (the error history is kept); ``notification-requests.dlq``,
``user-control.dlq`` and ``delivery-events.dlq`` records are re-published byte for byte to the
topic they came from (after a producer or schema fix). A truncated letter (``x-dlq-truncated``:
the record was too large to copy whole) holds only a prefix and is never redriven. Every
redrive is logged on ``deliveries.dlq.redriven`` (key = ``topic:partition:offset``), and an
already-redriven record is skipped unless ``--again``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from agents.dead_letter import REASON_HEADER, SOURCE_HEADER, TRUNCATED_HEADER, LetterHeaders
from config.settings import get_settings
from config.vocabulary import DeliveryKind
from streams import topics
from streams.deliveries import parse_delivery
from streams.records import InvalidRecord

IDLE_SECONDS = 1.0
CONTROL_KIND_HEADER = "x-control-kind"  # agents.control.KIND_HEADER: the by-user record's topic


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None  # None: the source record was a tombstone
    headers: dict[str, bytes]

    @property
    def ref(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def info(self) -> LetterHeaders:
        """Its ``x-dlq-*`` headers, checked (InvalidRecord if one is not what it should be)."""
        return LetterHeaders.decode(self.headers)

    @property
    def reason(self) -> str:
        return self.headers.get(REASON_HEADER, b"").decode(errors="replace")

    @property
    def source(self) -> str:
        """``topic:partition:offset`` the record was dead-lettered from."""
        return self.headers.get(SOURCE_HEADER, b"").decode(errors="replace")


async def read_all(bootstrap: str, topic: str) -> list[Any]:
    """Every record now in ``topic``. Stops when each partition is read up to the high watermark
    its last Fetch reported (not ListOffsets, which the embedded broker gets wrong)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        await consumer.topics()  # loads the metadata that partitions_for_topic reads
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        idle_since = time.monotonic()
        while tps and time.monotonic() - idle_since < IDLE_SECONDS:
            batch = await consumer.getmany(timeout_ms=200)
            if any(batch.values()):
                idle_since = time.monotonic()
            for messages in batch.values():
                records.extend(messages)
            if await _read_to_the_end(consumer, tps):
                break
        return records
    finally:
        await consumer.stop()


async def _read_to_the_end(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> bool:
    for tp in tps:
        highwater = consumer.highwater(tp)
        if highwater is None or await consumer.position(tp) < highwater:
            return False
    return True


def dead_letters(topic: str, records: Iterable[Any]) -> list[DeadLetter]:
    return [
        DeadLetter(
            topic,
            r.partition,
            r.offset,
            r.key,
            r.value,
            {k: bytes(v) for k, v in (r.headers or ())},
        )
        for r in records
    ]


def select(
    letters: Sequence[DeadLetter],
    refs: set[str] | None,
    reason_contains: str | None,
    redriven: set[str],
    again: bool,
) -> list[DeadLetter]:
    """Pure: the dead letters an operator's filters pick."""
    return [
        d
        for d in letters
        if (refs is None or d.ref in refs)
        and (reason_contains is None or reason_contains in d.reason)
        and (again or f"{d.topic}:{d.ref}" not in redriven)
    ]


def redrive_target(letter: DeadLetter) -> tuple[str, bytes | None, bytes | None]:
    """Pure: (topic, key, value) to re-publish a dead letter to."""
    truncated_from = letter.info.truncated_from
    if truncated_from is not None or TRUNCATED_HEADER in letter.headers:
        # Only a prefix was kept (the record was too large to copy): nothing to re-publish.
        raise InvalidRecord(f"{letter.ref}: truncated from {truncated_from} bytes")
    if letter.topic == topics.DELIVERIES_DLQ:
        delivery = parse_delivery(letter.value)
        fresh = msgspec.structs.replace(delivery, attempt=0, not_before=0.0)
        lane = (
            topics.CALLBACKS
            if delivery.kind is DeliveryKind.CALLBACK
            else topics.delivery_topic(delivery.channel, delivery.priority)
        )
        return (
            lane,
            letter.key,
            fresh.to_json(),
        )
    source_topic = letter.source.rsplit(":", 2)[0]
    if not source_topic:
        raise InvalidRecord(f"{letter.ref}: no x-dlq-source header, nowhere to send it")
    if source_topic == topics.REQUESTS_BY_USER:
        source_topic = topics.REQUESTS
    if source_topic == topics.CONTROL_BY_USER and CONTROL_KIND_HEADER in letter.headers:
        # A whole letter keeps the record's headers: the kind names the control topic.
        source_topic = letter.headers[CONTROL_KIND_HEADER].decode(errors="replace")
    return source_topic, letter.key, letter.value


def summary(letter: DeadLetter) -> dict[str, Any]:
    try:
        info = letter.info
    except InvalidRecord as exc:
        return {"record": letter.ref, "unreadable": str(exc)}
    row: dict[str, Any] = {"record": letter.ref, "reason": info.reason, "source": info.source}
    if info.truncated_from is not None:
        row["truncated_from_bytes"] = info.truncated_from
    if letter.topic == topics.DELIVERIES_DLQ:
        try:
            d = parse_delivery(letter.value)
        except InvalidRecord as exc:
            row["unreadable"] = str(exc)
        else:
            row.update(
                delivery_id=d.delivery_id,
                channel=d.channel,
                priority=d.priority,
                attempts=d.attempt,
                errors=[e["error"] for e in d.errors][-3:],
            )
    else:
        row["value"] = (letter.value or b"")[:160].decode(errors="replace")
    return row


async def redriven_refs(bootstrap: str) -> set[str]:
    return {r.key.decode() for r in await read_all(bootstrap, topics.DLQ_REDRIVE_LOG) if r.key}


async def redrive(bootstrap: str, letters: Sequence[DeadLetter]) -> list[str]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    done = []
    try:
        for letter in letters:
            try:
                topic, key, value = redrive_target(letter)
            except InvalidRecord as exc:
                done.append(f"{letter.ref} skipped: {exc}")  # the others still go
                continue
            await producer.send_and_wait(
                topic, key=key, value=value, headers=[("x-redriven-from", letter.ref.encode())]
            )
            await producer.send_and_wait(
                topics.DLQ_REDRIVE_LOG,
                key=f"{letter.topic}:{letter.ref}".encode(),
                value=orjson.dumps({"to": topic, "at": time.time()}),
            )
            done.append(f"{letter.ref} -> {topic}")
    finally:
        await producer.stop()
    return done


async def run(args: argparse.Namespace) -> int:
    bootstrap = get_settings().kafka_bootstrap
    letters = dead_letters(args.topic, await read_all(bootstrap, args.topic))
    redriven = await redriven_refs(bootstrap)
    if args.command == "list":
        for letter in letters[-args.limit :]:
            row = summary(letter)
            row["redriven"] = f"{letter.topic}:{letter.ref}" in redriven
            print(orjson.dumps(row).decode() if args.json else _line(row))
        print(f"# {len(letters)} dead letters in {args.topic}", file=sys.stderr)
        return 0
    refs = None if args.all else set(filter(None, (args.records or "").split(",")))
    if refs is not None and not refs:
        print("redrive needs --records P:O[,P:O...] or --all", file=sys.stderr)
        return 2
    chosen = select(letters, refs, args.reason_contains, redriven, args.again)
    for line in await redrive(bootstrap, chosen):
        print(line)
    print(f"# redrove {len(chosen)} of {len(letters)}", file=sys.stderr)
    return 0


def _line(row: dict[str, Any]) -> str:
    what = row.get("delivery_id") or row.get("value", "")
    flag = " (redriven)" if row["redriven"] else ""
    return f"{row['record']:>8}  {what}  {row['reason']}{flag}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.dlq",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["list", "redrive"])
    parser.add_argument(
        "--topic",
        default=topics.DELIVERIES_DLQ,
        choices=[
            topics.DELIVERIES_DLQ,
            topics.REQUESTS_DLQ,
            topics.CONTROL_DLQ,
            topics.DELIVERY_EVENTS_DLQ,
        ],
    )
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--records", help="comma-separated partition:offset list")
    parser.add_argument("--all", action="store_true")
    parser.add_argument("--reason-contains")
    parser.add_argument("--again", action="store_true", help="also redrive what was redriven")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
