"""(f) Idle: what a worker and the broker cost with nothing to do.

Every partition a worker is assigned is in every fetch its consumer sends, busy or not
(aiokafka has no incremental fetch sessions), and the embedded broker answers an empty fetch
only once its wait (``NOTIFY_TANSU_FETCH_WAIT_MS``) is over: so an idle worker keeps fetching
all of them, and that cost grows with the topics and partitions, not with the traffic. On a
real Kafka an empty fetch waits Faust's 1.5 s instead, so the same worker fetches ~30 times
less often.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.common import Broker, log
from bench.pipeline import running_pipeline
from bench.procstats import cpu_seconds
from providers.sandboxes.stack import SandboxStack
from scripts.workload import User

SETTLE_SECONDS = 10.0  # after the users are in: startup work (recovery, first fetches) done


def run(
    broker: Broker,
    sandboxes: SandboxStack,
    users: Sequence[User],
    workdir: Path,
    seconds: float,
    worker_env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    with running_pipeline(broker, sandboxes, users, 1, workdir, "idle", worker_env) as procs:
        pid = procs[0].pid
        time.sleep(SETTLE_SECONDS)
        log(f"idle: {seconds:g} s with no traffic")
        worker_before, broker_before = cpu_seconds(pid), cpu_seconds(broker.pid)
        started = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - started
        worker_cpu = cpu_seconds(pid) - worker_before
        broker_cpu = cpu_seconds(broker.pid) - broker_before
    return {
        "seconds": elapsed,
        "worker_env": dict(worker_env or {}),
        "worker_cpu_share_of_a_core": worker_cpu / elapsed,
        "broker_cpu_share_of_a_core": broker_cpu / elapsed,
    }
