"""The demo: broker (embedded unless NOTIFY_KAFKA_BOOTSTRAP is set), provider sandboxes, one
worker, a few hundred notifications through ``notification-requests``, and what arrived."""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import orjson

from config.settings import Settings
from providers.sandboxes.stack import SandboxStack
from scripts.create_topics import create_topics
from scripts.embedded_broker import EmbeddedBroker, free_port
from scripts.worker_process import WorkerProcess, settings_env
from scripts.workload import (
    RequestMix,
    json_records,
    make_users,
    produce,
    read_topic,
    setup_users,
    wait_for_users,
)
from streams import topics

USERS = 60
REQUESTS = 300


def bad_requests(user_id: str) -> list[tuple[str, bytes | None, bytes]]:
    """A truncated record, a schema-invalid one and a replay: what real producers get wrong."""
    key = user_id.encode()
    duplicate = {
        "notification_id": "demo-dup",
        "idempotency_key": "order-1-shipped",
        "user_id": user_id,
        "title": "Shipped",
        "body": "Order 1 shipped",
    }
    return [
        (topics.REQUESTS, key, b'{"notification_id": "cut-off",'),
        (
            topics.REQUESTS,
            key,
            orjson.dumps(
                {
                    "notification_id": "x",
                    "user_id": user_id,
                    "title": "t",
                    "body": "b",
                    "priority": "urgent",
                }
            ),
        ),
        (topics.REQUESTS, key, orjson.dumps(duplicate)),
        (topics.REQUESTS, key, orjson.dumps({**duplicate, "notification_id": "demo-dup-2"})),
    ]


def report(
    received: list[dict[str, Any]],
    events: list[dict[str, Any]],
    dead: int,
    requests: dict[str, dict[str, Any]],
    elapsed: float,
) -> str:
    lines = [f"\n== {len(received)} messages reached the provider sandboxes in {elapsed:.1f}s"]
    for sandbox, count in sorted(Counter(r["sandbox"] for r in received).items()):
        lines.append(f"   {sandbox:8} {count:5}")
    lanes = Counter(
        (r["sandbox"], requests[r["notification_id"]]["priority"])
        for r in received
        if r["notification_id"] in requests
    )
    lines.append(
        "   by priority: "
        + ", ".join(
            f"{p}={sum(c for (_, pr), c in lanes.items() if pr == p)}"
            for p in ("high", "normal", "low")
        )
    )
    latencies = sorted(
        (r["received_at"] - requests[r["notification_id"]]["created_at"]) * 1000
        for r in received
        if r["notification_id"] in requests
    )
    if latencies:
        p95 = latencies[int(len(latencies) * 0.95) - 1]
        lines.append(
            f"   request -> sandbox latency: p50 {statistics.median(latencies):.0f} ms, "
            f"p95 {p95:.0f} ms (includes the initial burst queue)"
        )
    statuses = Counter(e["status"] for e in events)
    lines.append(f"== delivery events: {dict(statuses)}")
    reasons = Counter(e["reason"] for e in events if e["status"] == "rejected")
    lines.append(f"== rejected by resolve: {dict(reasons)}")
    lines.append(f"== dead-lettered malformed requests: {dead}")
    lines.append("== a few of the messages received:")
    for r in received[:: max(1, len(received) // 6)][:6]:
        lines.append(f"   [{r['sandbox']}] {str(r['address'])[:24]:24} {r['title']}: {r['body']}")
    return "\n".join(lines)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="notify-demo-"))
    external = os.environ.get("NOTIFY_KAFKA_BOOTSTRAP")
    with ExitStack() as stack:
        if external:
            bootstrap, flavor = external, os.environ.get("NOTIFY_BROKER_FLAVOR", "kafka")
            print(f"using the Kafka cluster at {bootstrap}")
        else:
            broker = EmbeddedBroker(log_path=work / "broker.log")
            bootstrap, flavor = stack.enter_context(broker), "tansu"
            print(f"embedded broker (Tansu) on {bootstrap}")
        sandboxes = SandboxStack(work / "sandboxes").start()
        stack.callback(sandboxes.stop)
        values: dict[str, Any] = {
            "kafka_bootstrap": bootstrap,
            "broker_flavor": flavor,
            "app_id": "notify-demo",
            "data_dir": work / "data",
            "web_port": free_port(),
            "partitions": 8,
            **sandboxes.settings_overrides(),
        }
        if flavor == "tansu":  # the embedded broker holds joins for half the session timeout
            values.update(session_timeout_seconds=2.0, heartbeat_interval_seconds=0.5)
        asyncio.run(create_topics(Settings(**values)))
        print(f"sandboxes up; received messages: http://127.0.0.1:{sandboxes.inspect_port}/")
        worker = WorkerProcess(settings_env(values), work / "worker.log").start()
        stack.callback(worker.stop)
        print(f"worker ready (log: {work / 'worker.log'}, tables: {worker.web_url}/users/<id>/)")

        users = make_users(USERS, sandboxes.webhook.url("/"))
        asyncio.run(setup_users(bootstrap, users))
        asyncio.run(wait_for_users(worker.web_url, users))
        requests = RequestMix(users, prefix="demo").make(REQUESTS)
        started = time.time()
        asyncio.run(
            produce(
                bootstrap, json_records(topics.REQUESTS, requests) + bad_requests(users[0].user_id)
            )
        )
        print(f"produced {REQUESTS} requests + 4 problem records to {topics.REQUESTS}")

        total = len(requests) + 2  # the two schema-valid problem records report too
        events = asyncio.run(
            read_topic(
                bootstrap,
                topics.DELIVERY_EVENTS,
                lambda ms: _settled([orjson.loads(m.value) for m in ms], total),
                timeout=120,
            )
        )
        dead = asyncio.run(read_topic(bootstrap, topics.REQUESTS_DLQ, lambda ms: len(ms) >= 2, 10))
        decoded = [orjson.loads(m.value) for m in events]
        by_id = {r["notification_id"]: r for r in requests}
        print(report(sandboxes.received(), decoded, len(dead), by_id, time.time() - started))
        status_url = f"{worker.web_url}/notifications/{requests[0]['notification_id']}/"
        print(f"\n== GET {status_url}\n{asyncio.run(_fetch(status_url))}")


async def _fetch(url: str) -> str:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return await response.text()


def _settled(events: list[dict[str, Any]], requests: int) -> bool:
    """Every request resolved, and every accepted delivery reported sent or failed."""
    resolved = sum(e["status"] in ("accepted", "rejected") for e in events)
    expected = sum(e.get("deliveries", 0) for e in events if e["status"] == "accepted")
    done = sum(e["status"] in ("sent", "failed") for e in events)
    return resolved >= requests and done >= expected


if __name__ == "__main__":
    main()
