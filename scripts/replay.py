"""Replay a window of a topic through the pipeline, re-sending only what never got out.

    python -m scripts.replay --topic TOPIC (--since T [--until T] | --offsets P:FIRST-LAST,...)
                             [--dry-run] [--rate 50] [--again] [--json]

TOPIC is ``notification-requests`` (or its ``.low`` / ``.by-user`` twins), a lane
(``deliveries.<channel>.<priority>``) or ``deliveries.dlq``. T is ISO 8601
(``2026-12-01T12:30:00Z``), epoch seconds, or relative to now (``-15m``, ``-2h``, ``-90s``).
FIRST-LAST are inclusive offsets; ``P:FIRST-`` reads to the partition's end.

Every record is judged first (scripts/replay_plan.py) from what the topics say: the status
folded from ``delivery-events``, the delivery ledger's changelog, suppressed addresses and
unregistered tokens, and earlier replays. ``--dry-run`` prints that plan: per record ``sent``,
``expired``, ``suppressed``, ``rejected``, ``would-send`` and the reason. Without it the
``would-send`` records are re-produced, at most ``--rate`` a second, to where the pipeline
reads them: a request to its own topic with ``x-replay-of`` naming it (so the intake's dedup
takes it for a replay of that record and fans it out again; agents/intake.py), a delivery to
its lane with its attempt count reset (from the DLQ as ``scripts.dlq redrive`` does, and marked
redriven there). Preferences, suppressions and the delivery ledger then apply as to any record:
what went out is not sent again, even if the plan was made before its report came in.

Every run is logged on ``replay.audit``: one ``run`` record (dry runs too) and one ``record``
record per re-sent record, which is how a second replay of the window knows to send nothing.
Only Kafka is read and written: the same on a Kafka cluster as on the embedded broker.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import re
import secrets
import sys
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from config.settings import get_settings
from scripts.replay_plan import DeliveryCandidate, Judgement, RequestCandidate, Verdict, plan
from scripts.replay_read import REQUEST_TOPICS, Window, candidates, knowledge, read_window
from scripts.replay_send import Pace, copy_of
from streams import topics
from streams.records import CHANNELS, PRIORITIES

LANES = tuple(topics.delivery_topic(c, p) for c in CHANNELS for p in PRIORITIES)
TOPICS = (*REQUEST_TOPICS, *LANES, topics.DELIVERIES_DLQ)
_RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str, now: float) -> float:
    """ISO 8601 (naive means UTC), epoch seconds, or ``-<n><s|m|h|d>`` before ``now``."""
    if match := _RELATIVE.match(text):
        return now - float(match[1]) * _UNIT[match[2]]
    try:
        return float(text)
    except ValueError:
        pass
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=datetime.now().astimezone().tzinfo).timestamp()
    return parsed.timestamp()


def parse_offsets(text: str) -> dict[int, tuple[int, int | None]]:
    """``0:10-20,3:5-`` -> {0: (10, 20), 3: (5, None)}."""
    out: dict[int, tuple[int, int | None]] = {}
    for part in filter(None, text.split(",")):
        partition, _, span = part.partition(":")
        first, _, last = span.partition("-")
        out[int(partition)] = (int(first), int(last) if last else None)
        if last and int(last) < int(first):
            raise ValueError(f"{part}: the last offset is before the first")
    return out


def window_of(args: argparse.Namespace, now: float) -> Window:
    if args.offsets:
        return Window(offsets=parse_offsets(args.offsets))
    return Window(
        since=parse_time(args.since, now), until=parse_time(args.until, now) if args.until else None
    )


async def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    bootstrap = settings.kafka_bootstrap
    now = time.time()
    window = window_of(args, now)
    read = await read_window(bootstrap, args.topic, window)
    records, spans = read.records, read.spans
    found = candidates(args.topic, records)
    nids = {c.request.notification_id for c in found if isinstance(c, RequestCandidate)}
    nids |= {c.delivery.notification_id for c in found if isinstance(c, DeliveryCandidate)}
    judgements = plan(found, await knowledge(bootstrap, settings, nids, now), now, args.again)
    for judgement in judgements:
        print(_json_line(judgement) if args.json else _line(judgement))
    counts = Counter(j.verdict.value for j in judgements)
    ranges = " ".join(f"{p}:{s.first}-{s.last}" for p, s in sorted(spans.items()) if s.records)
    print(f"# {len(judgements)} records in {args.topic} {ranges or '(none)'}: {_counts(counts)}")
    replay_id = f"replay-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now))}-{secrets.token_hex(2)}"
    chosen = [j for j in judgements if j.sends]
    by_ref = {f"{args.topic}:{m.partition}:{m.offset}": m for m in records}
    started = time.monotonic()
    resent = 0 if args.dry_run else await resend(bootstrap, replay_id, chosen, by_ref, args)
    await audit_run(bootstrap, replay_id, args, window, spans, counts, resent)
    took = time.monotonic() - started
    logged = f"logged on {topics.REPLAY_AUDIT}"
    if args.dry_run:
        print(f"# dry run {replay_id}: {len(chosen)} would be re-sent; {logged}")
    else:
        print(
            f"# {replay_id}: re-sent {resent} of {len(chosen)} in {took:.1f}s (at most "
            f"{args.rate:g}/s); {logged}"
        )
    return 0


async def resend(
    bootstrap: str,
    replay_id: str,
    chosen: Sequence[Judgement],
    by_ref: dict[str, Any],
    args: argparse.Namespace,
) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    pace = Pace(args.rate)
    done = 0
    try:
        for judgement in chosen:
            message = by_ref[judgement.ref]
            try:
                copy = copy_of(args.topic, message, replay_id)
            except ValueError as exc:
                print(f"{judgement.ref} skipped: {exc}")  # the others still go
                continue
            await pace.wait()
            # Each copy is on the broker before its audit record says so: a crash in between
            # leaves a copy the audit does not know, which the ledger still stops from
            # reaching anyone twice.
            await producer.send_and_wait(
                copy.topic,
                key=copy.key,
                value=copy.value,
                headers=copy.headers,
                timestamp_ms=copy.timestamp_ms,
            )
            entry = {"kind": "record", "replay_id": replay_id, "to": copy.topic, "at": time.time()}
            await producer.send_and_wait(
                topics.REPLAY_AUDIT, key=judgement.ref.encode(), value=orjson.dumps(entry)
            )
            if args.topic == topics.DELIVERIES_DLQ:
                # So that ``scripts.dlq list`` shows it redriven and ``redrive --all`` skips it.
                ref = judgement.ref.split(":", 1)[1]
                await producer.send_and_wait(
                    topics.DLQ_REDRIVE_LOG,
                    key=f"{topics.DELIVERIES_DLQ}:{ref}".encode(),
                    value=orjson.dumps({"to": copy.topic, "at": time.time(), "by": replay_id}),
                )
            done += 1
    finally:
        await producer.stop()
    return done


async def audit_run(
    bootstrap: str,
    replay_id: str,
    args: argparse.Namespace,
    window: Window,
    spans: dict[int, Any],
    counts: Counter[str],
    resent: int,
) -> None:
    entry = {
        "kind": "run",
        "replay_id": replay_id,
        "at": time.time(),
        "operator": getpass.getuser(),
        "topic": args.topic,
        "window": window.describe(),
        "partitions": {str(p): [s.first, s.last, s.records] for p, s in spans.items()},
        "dry_run": args.dry_run,
        "again": args.again,
        "rate": args.rate,
        "verdicts": dict(counts),
        "resent": resent,
    }
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topics.REPLAY_AUDIT, key=replay_id.encode(), value=orjson.dumps(entry)
        )
    finally:
        await producer.stop()


def _counts(counts: Counter[str]) -> str:
    order = [v.value for v in Verdict]
    return ", ".join(f"{v} {counts[v]}" for v in order if counts[v]) or "nothing"


def _line(j: Judgement) -> str:
    return f"{j.ref:<34} {j.verdict.value:<10} {j.subject}  {j.why}"


def _json_line(j: Judgement) -> str:
    row: dict[str, Any] = {
        "record": j.ref,
        "verdict": j.verdict.value,
        "subject": j.subject,
        "why": j.why,
    }
    if j.deliveries:
        row["deliveries"] = list(j.deliveries)
    return orjson.dumps(row).decode()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.replay",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--topic",
        required=True,
        choices=TOPICS,
        metavar="TOPIC",
        help="notification-requests[.low|.by-user], deliveries.<channel>.<priority>, "
        "deliveries.dlq",
    )
    span = parser.add_mutually_exclusive_group(required=True)
    span.add_argument("--since", help="start of the time window")
    span.add_argument("--offsets", help="P:FIRST-LAST[,P:FIRST-LAST...] (inclusive)")
    parser.add_argument("--until", help="end of the time window (default: now)")
    parser.add_argument("--dry-run", action="store_true", help="report, send nothing")
    parser.add_argument("--rate", type=float, default=50.0, help="records re-sent per second")
    parser.add_argument(
        "--again", action="store_true", help="also what an earlier replay re-sent, outcome unknown"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per record")
    args = parser.parse_args(argv)
    if args.until and not args.since:
        parser.error("--until needs --since")
    if args.rate <= 0:
        parser.error("--rate must be positive")
    try:
        window_of(args, time.time())
    except ValueError as exc:
        parser.error(str(exc))
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
