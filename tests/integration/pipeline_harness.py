"""Shared steps of the pipeline integration tests: a real broker, real worker processes,
sandboxes over the network, producers that are plain aiokafka clients."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import orjson

from config.settings import Settings
from providers.sandboxes.stack import SandboxStack
from scripts.create_topics import create_topics
from scripts.embedded_broker import free_port
from scripts.worker_process import WorkerProcess, settings_env
from scripts.workload import User, read_topic
from streams import topics


def worker_settings(
    bootstrap: str, sandboxes: SandboxStack, data_dir: Path, **overrides: Any
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "kafka_bootstrap": bootstrap,
        "broker_flavor": "tansu",
        "session_timeout_seconds": 2.0,
        "heartbeat_interval_seconds": 0.5,
        "data_dir": data_dir,
        "web_port": free_port(),
        "partitions": 4,
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
