"""Fixtures for the integration tests: real broker, sandboxes, worker processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from providers.sandboxes.stack import SandboxStack
from scripts.embedded_broker import EmbeddedBroker
from scripts.redis_server import RedisServer
from scripts.worker_process import WorkerProcess, stop_all
from tests.integration.pipeline_harness import start_worker, worker_settings


@pytest.fixture(scope="session")
def sandboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxStack]:
    stack = SandboxStack(tmp_path_factory.mktemp("sandboxes")).start()
    yield stack
    stack.stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[str]:
    """A fresh embedded broker per test: topics and consumer groups never leak between tests."""
    with EmbeddedBroker(log_path=tmp_path / "broker.log") as bootstrap:
        yield bootstrap


@pytest.fixture
def workers(
    broker: str, sandboxes: SandboxStack, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """``workers(**settings)`` starts a worker; all are stopped at the end of the test."""
    sandboxes.clear()
    started: list[WorkerProcess] = []

    def start(**overrides: Any) -> WorkerProcess:
        data_dir = overrides.pop("data_dir", tmp_path / "worker-data")
        values = worker_settings(broker, sandboxes, data_dir, **overrides)
        worker = start_worker(values, tmp_path / "worker.log")
        started.append(worker)
        return worker

    yield start
    stop_all(started)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real ``redis-server`` on a free port, empty; ``.kill()`` / ``.restart()`` (same port)
    for the outage tests, ``.url`` for ``NOTIFY_REDIS_URL``."""
    server = RedisServer(tmp_path / "redis.log").start()
    yield server
    server.stop()
