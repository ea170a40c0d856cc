"""Kafka records per delivery, by topic: what one delivery costs in produce and consume work.

    .venv/bin/python -m bench.records [--requests 2000] [--users 500] [--worker-env NOTIFY_X=V]

One worker on a fresh broker, the users loaded, then the pipeline phase's mix of requests
produced to ``notification-requests``; once every delivery has reached the sandboxes and the
worker is idle, every topic is read from its start and its records counted (the counts before
the requests are taken off). Counted by consuming, not from ListOffsets: the embedded broker
answers LATEST with the newest batch's base offset + 1 (BROKER.md). Changelog records are
produced only (one worker has no standby to read them), every other one is produced once and
consumed once by the worker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from bench import workload
from bench.common import (
    fresh_broker,
    log,
    parse_worker_env,
    produce_json,
    wait_for_count,
    wait_until_idle,
)
from bench.pipeline import received_count, running_pipeline
from bench.workload import expected_deliveries
from providers.sandboxes.stack import SandboxStack
from scripts.workload import make_users
from streams import topics

READ_TIMEOUT_SECONDS = 120.0
# librdkafka's "reached the end of a partition" (enable.partition.eof), a public constant
# with an underscore name.
PARTITION_EOF = KafkaError._PARTITION_EOF  # noqa: SLF001


def records_by_topic(bootstrap: str) -> Counter[str]:
    """Every record of every topic, counted by reading each partition to its end."""
    listed = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-records",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        partitions = [
            TopicPartition(name, p, 0) for name, t in listed.topics.items() for p in t.partitions
        ]
        consumer.assign(partitions)
        pending = {(tp.topic, tp.partition) for tp in partitions}
        counts: Counter[str] = Counter()
        deadline = time.monotonic() + READ_TIMEOUT_SECONDS
        while pending and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=1.0):
                error = message.error()
                if error is None:
                    counts[str(message.topic())] += 1
                elif error.code() == PARTITION_EOF:
                    pending.discard((str(message.topic()), int(message.partition() or 0)))
        if pending:
            raise TimeoutError(f"{len(pending)} partitions not read to their end")
        return counts
    finally:
        consumer.close()


def per_delivery(
    before: Mapping[str, int], after: Mapping[str, int], deliveries: int
) -> dict[str, float]:
    """Records each topic gained, per delivery; topics that gained none are left out."""
    gained = {name: after[name] - before.get(name, 0) for name in after}
    return {name: n / deliveries for name, n in sorted(gained.items()) if n}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.records", description=__doc__)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--worker-env", action="append", default=[], metavar="NOTIFY_X=V")
    args = parser.parse_args(argv)
    env = parse_worker_env(args.worker_env)
    workdir = Path(tempfile.mkdtemp(prefix="notify-bench-records-"))
    sandboxes = SandboxStack(workdir / "sandboxes").start()
    try:
        users = make_users(args.users, sandboxes.webhook.url("/"))
        requests = workload.workload(users, args.requests, 0)
        inapp_url = str(sandboxes.settings_overrides()["inapp_url"])
        expected = expected_deliveries(requests, {u.user_id: u for u in users}, inapp_url)
        with fresh_broker(workdir, "records") as broker:
            with running_pipeline(broker, sandboxes, users, 1, workdir, "records", env) as procs:
                before = records_by_topic(broker.bootstrap)
                log(f"records: {len(requests):,} requests -> {expected:,} deliveries expected")
                asyncio.run(
                    produce_json(broker.bootstrap, topics.REQUESTS, requests, stamp="created_at")
                )
                wait_for_count(lambda: received_count(sandboxes), expected, 60.0)
                wait_until_idle([p.pid for p in procs])
                after = records_by_topic(broker.bootstrap)
    finally:
        sandboxes.stop()
    shares = per_delivery(before, after, expected)
    for name, share in shares.items():
        print(f"{share:6.2f}  {name}")
    print(
        f"{sum(shares.values()):6.2f}  records per delivery ({len(requests):,} requests, "
        f"{expected:,} deliveries)"
    )
    print(json.dumps({"requests": len(requests), "deliveries": expected, "per_delivery": shares}))


if __name__ == "__main__":
    main()
