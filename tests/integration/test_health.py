"""/healthz and /readyz of a running worker on the embedded broker, as the chart's probes ask.

The worker runs with a 10 s session timeout: the embedded broker holds every JoinGroup for half
of it (BROKER.md), so the web server (started right after the producer) answers for about 5 s
before the group can assign anything, and the first answer /readyz gives must be a 503.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from providers.sandboxes.stack import SandboxStack
from scripts.create_topics import create_topics
from scripts.worker_process import WorkerProcess, settings_env
from tests.integration.pipeline_harness import PARTITIONS, worker_settings

pytestmark = pytest.mark.integration


def probe(url: str) -> tuple[int, dict[str, Any]] | None:
    """(status, JSON body), or None while nothing listens yet."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except (urllib.error.URLError, ConnectionError):
        return None


def first_answer(worker: WorkerProcess, path: str, timeout: float = 60.0) -> tuple[int, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = probe(worker.web_url + path)
        if answer is not None:
            return answer
        assert worker.process is not None and worker.process.poll() is None, worker.log_text()
        time.sleep(0.02)
    raise TimeoutError(f"{path} never answered:\n{worker.log_text()[-3000:]}")


def test_readyz_is_503_until_partitions_are_assigned_and_tables_recovered(
    broker: str, sandboxes: SandboxStack, tmp_path: Path
) -> None:
    values = worker_settings(broker, sandboxes, tmp_path / "data", session_timeout_seconds=10.0)
    asyncio.run(create_topics(Settings(**values)))
    worker = WorkerProcess(settings_env(values), tmp_path / "worker.log").launch()
    try:
        status, body = first_answer(worker, "/readyz")
        assert status == 503, body
        assert body["ok"] is False and body["reasons"], body

        worker.wait_ready(60.0)
        # "Worker ready" is logged after the actives are marked ready and the rebalance ended.
        status, body = first_answer(worker, "/readyz")
        assert status == 200, body
        assert body["ok"] is True and body["reasons"] == []
        # One worker owns every partition of every topic it reads.
        assert body["partitions"] >= PARTITIONS

        status, body = first_answer(worker, "/healthz")
        assert status == 200, body
        assert body["ok"] is True and body["reasons"] == []
        assert body["agents"] >= 5  # intake, control, status, the lanes, retry tiers, campaigns

        # Once ready, the worker froze what was alive out of the collector's full passes
        # (agents/gc_policy.py): the modules, the app and its agents alone are far more than this.
        assert frozen_objects(worker) > 100_000
    finally:
        worker.stop()


def frozen_objects(worker: WorkerProcess, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"froze (\d+) long-lived objects", worker.log_text())
        if found:
            return int(found.group(1))
        time.sleep(0.1)
    raise TimeoutError(f"no freeze logged:\n{worker.log_text()[-3000:]}")
