"""Shared steps of the pipeline integration tests: a real broker, real worker processes,
sandboxes over the network, producers that are plain aiokafka clients."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import orjson

from config.settings import Settings
from providers.sandboxes.stack import SandboxStack
from scripts.create_topics import create_topics
from scripts.embedded_broker import free_port
from scripts.worker_process import WorkerProcess, settings_env
from scripts.workload import User, read_topic, topic_names
from streams import topics

PARTITIONS = 4  # per topic, for every pipeline test's workers


def worker_settings(
    bootstrap: str, sandboxes: SandboxStack, data_dir: Path, **overrides: Any
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "kafka_bootstrap": bootstrap,
        "broker_flavor": "tansu",
        # Not the demo's 2 s: with every topic and table of the pipeline to assign and recover,
        # a rebalance of two workers on a loaded machine outlasts a 2 s session, and the members
        # then evict each other in a loop (CI: "local member_id was not recognized", five
        # generations in 20 s, multi-worker tests 3-6x slower). The embedded broker holds a
        # JoinGroup for half the session, so each join costs 3 s instead of 1 s.
        "session_timeout_seconds": 6.0,
        "heartbeat_interval_seconds": 1.0,
        "data_dir": data_dir,
        "web_port": free_port(),
        "partitions": PARTITIONS,
        "log_commits": True,  # a failing test's worker.log then shows every commit
        # The normal ceilings keep CPU for urgent work on a saturated worker (bench.run storm
        # measures them; tests/functional/test_urgent_first.py tests them). Here pytest, the
        # broker, the sandboxes and the workers share two cores, so the worker's share says
        # little and would only slow the normal lane's drain.
        "deliver_cpu_ceiling_normal": 0.0,
        "normal_requests_cpu_ceiling": 0.0,
        **sandboxes.settings_overrides(),
    }
    values.update(overrides)
    return values


def start_worker(values: dict[str, Any], log_path: Path) -> WorkerProcess:
    asyncio.run(create_topics(Settings(**values)))
    return WorkerProcess(settings_env(values), log_path).start()


def sandbox_address(address: str) -> str:
    """How a sandbox records an address: webhook URLs by their path."""
    return urlparse(address).path if address.startswith("http") else address


def expected_deliveries(
    requests: Iterable[dict[str, Any]], users: dict[str, User], inapp_url: str
) -> Counter[tuple[str, str]]:
    """(notification_id, address) pairs the preferences and addresses allow, each once."""
    expected: Counter[tuple[str, str]] = Counter()
    for request in requests:
        user = users[request["user_id"]]
        for channel in request["channels"]:
            for address in user.addresses(channel, inapp_url):
                expected[(request["notification_id"], sandbox_address(address))] += 1
    return expected


def webhook_requests(users: Sequence[User], prefix: str, count: int) -> list[dict[str, Any]]:
    """``count`` webhook-only requests spread over ``users`` in turn."""
    return [
        {
            "notification_id": f"{prefix}-{i:04d}",
            "user_id": users[i % len(users)].user_id,
            "channels": ["webhook"],
            "title": "t",
            "body": f"b {i}",
        }
        for i in range(count)
    ]


def get_json(url: str) -> Any:
    """A worker view's JSON (``urllib.error.HTTPError`` for a 404 or any other refusal)."""
    with urllib.request.urlopen(url, timeout=10) as page:
        return orjson.loads(page.read())


def wait_until(check: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll ``check`` until it holds; TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.2)


def received_pairs(records: Iterable[dict[str, Any]]) -> Counter[tuple[str, str]]:
    return Counter((r["notification_id"], r["address"]) for r in records)


def delivery_events(bootstrap: str, until: Any, timeout: float = 60.0) -> list[dict[str, Any]]:
    messages = asyncio.run(
        read_topic(
            bootstrap,
            topics.DELIVERY_EVENTS,
            lambda ms: until([orjson.loads(m.value) for m in ms]),
            timeout,
        )
    )
    return [orjson.loads(m.value) for m in messages]


async def _lane_positions(bootstrap: str, nids: set[str]) -> dict[str, Any]:
    """Where the records of ``nids`` sit on the delivery lanes, and the group's committed
    offsets there: tells "never produced" from "committed past" when a delivery goes missing."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    lanes = [t for t in await topic_names(bootstrap) if t.startswith("deliveries.")]
    found: dict[str, list[tuple[str, int, int]]] = {}
    committed: dict[str, int | None] = {}
    for lane in lanes:
        for message in await read_topic(bootstrap, lane, lambda ms: False, timeout=1.5):
            nid = orjson.loads(message.value).get("notification_id")
            if nid in nids:
                found.setdefault(nid, []).append((lane, message.partition, message.offset))
    group = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id="notify")
    await group.start()
    try:
        for lane, partition, _ in {p for ps in found.values() for p in ps}:
            tp = TopicPartition(lane, partition)
            committed[f"{lane}:{partition}"] = await group.committed(tp)
    finally:
        await group.stop()
    return {"records": found, "committed": committed, "group": await _group_members(bootstrap)}


async def _group_members(bootstrap: str) -> Any:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return await admin.describe_consumer_groups(["notify"])
    except Exception as exc:  # diagnostics only: never hide the real failure behind this one
        return repr(exc)
    finally:
        await admin.close()


def lane_positions(bootstrap: str, nids: set[str]) -> dict[str, Any]:
    return asyncio.run(_lane_positions(bootstrap, nids))
