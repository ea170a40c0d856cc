"""Pieces every phase shares: a fresh broker, worker processes, a timestamping producer, and
waiting for counts without touching the processes being measured."""

from __future__ import annotations

import asyncio
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from prometheus_client.parser import text_string_to_metric_families

from bench.procstats import cpu_seconds
from scripts.embedded_broker import EmbeddedBroker, free_port
from scripts.worker_process import WorkerProcess, settings_env, stop_all

# Far above anything one user receives in a run, so no request is rejected as rate_limited
# (the run reports the rate_limited count, which must be 0).
BENCH_RATE_LIMIT = 1_000_000_000
# Client settings of the producers that feed the pipeline (scripts.workload.produce uses the
# same linger); the raw phase uses them too, so the raw limit is that of the same producer.
PRODUCER_LINGER_MS = 5


@dataclass
class Broker:
    bootstrap: str
    pid: int


@contextmanager
def fresh_broker(workdir: Path, name: str) -> Iterator[Broker]:
    """A new, empty Tansu per phase: its memory engine never frees data and a long-running
    broker measurably slows down (BROKER.md), so phases must not share one."""
    broker = EmbeddedBroker(log_path=workdir / f"broker-{name}.log")
    bootstrap = broker.start()
    try:
        yield Broker(bootstrap, broker.pid)  # the pid is for CPU accounting
    finally:
        broker.stop()


def parse_worker_env(pairs: Iterable[str]) -> dict[str, str]:
    """``--worker-env NOTIFY_X=V`` arguments as a mapping (the value may hold ``=``)."""
    return dict(pair.split("=", 1) for pair in pairs)


def embedded_worker_settings(bootstrap: str, workdir: Path, app_id: str) -> dict[str, Any]:
    """What the demo gives a worker on the embedded broker: the ``tansu`` flavor and the short
    session (Tansu holds every JoinGroup for half of it)."""
    return {
        "kafka_bootstrap": bootstrap,
        "broker_flavor": "tansu",
        "session_timeout_seconds": 2.0,
        "heartbeat_interval_seconds": 0.5,
        "app_id": app_id,
        "partitions": 8,
        "data_dir": workdir / f"data-{app_id}",
        "web_port": free_port(),
    }


def start_workers(
    app_module: str,
    values: Mapping[str, Any],
    count: int,
    workdir: Path,
    name: str,
    extra_env: Mapping[str, str] | None = None,
) -> list[WorkerProcess]:
    """``count`` workers of one group; each gets its own table directory and web port."""
    workers: list[WorkerProcess] = []
    try:
        for i in range(count):
            data_dir = Path(values["data_dir"]) / f"w{i}"
            data_dir.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
            own = {**values, "data_dir": data_dir, "web_port": free_port()}
            env = {**settings_env(own), **(extra_env or {})}
            worker = WorkerProcess(env, workdir / f"worker-{name}-{i}.log", app_module)
            workers.append(worker)
            # One after another: a second join while the first is still pending would cost
            # an extra rebalance round before the measurement begins.
            worker.start()
    except BaseException:
        stop_workers(workers)
        raise
    return workers


def stop_workers(workers: Iterable[WorkerProcess]) -> None:
    stop_all(workers)


async def create_topics(bootstrap: str, names: Sequence[str], partitions: int = 8) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(n, partitions, 1) for n in names if n not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


async def produce_json(
    bootstrap: str,
    topic: str,
    values: Sequence[dict[str, Any]],
    stamp: str | None = None,
    per_second: float = 0.0,
) -> tuple[float, float]:
    """Send JSON values keyed by ``user_id``; returns (first send, last ack) wall-clock times.

    With ``stamp``, that field is set to the current time just before each value is encoded:
    latency then starts when the request really left the producer, not when the workload was
    generated (the dicts are updated in place, so the caller can compute latencies).
    ``per_second``: the i-th value is sent no earlier than i / per_second after the first (0:
    all at once), an offered load below what the workers can take."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=PRODUCER_LINGER_MS)
    await producer.start()
    try:
        started = time.time()
        futures = []
        for i, value in enumerate(values):
            if per_second > 0 and (ahead := started + i / per_second - time.time()) > 0:
                await asyncio.sleep(ahead)
            if stamp:
                value[stamp] = time.time()
            futures.append(
                await producer.send(topic, key=value["user_id"].encode(), value=orjson.dumps(value))
            )
        await asyncio.gather(*futures)
        return started, time.time()
    finally:
        await producer.stop()


def wait_for_count(
    count: Callable[[], int],
    target: int,
    stall_timeout: float = 60.0,
    poll: float = 0.1,
    on_progress: Callable[[int], None] | None = None,
) -> bool:
    """Poll ``count()`` until it reaches ``target``; False if it stops moving for
    ``stall_timeout`` seconds (a stuck pipeline is reported, not waited on forever)."""
    last, last_change = -1, time.monotonic()
    while True:
        current = count()
        if current >= target:
            return True
        if current != last:
            last, last_change = current, time.monotonic()
            if on_progress:
                on_progress(current)
        elif time.monotonic() - last_change > stall_timeout:
            return False
        time.sleep(poll)


def wait_until_idle(
    pids: Sequence[int], threshold: float = 0.1, interval: float = 1.0, timeout: float = 60.0
) -> float:
    """Wait until the processes use less than ``threshold`` of a core; returns seconds waited.

    Work caused by the workload continues after the last delivery (sent events, the status
    table, changelog flushes): CPU is read only once that has died down, so it is all counted.
    """
    started = time.monotonic()
    previous = sum(cpu_seconds(p) for p in pids)
    while time.monotonic() - started < timeout:
        time.sleep(interval)
        current = sum(cpu_seconds(p) for p in pids)
        if current - previous < threshold * interval:
            break
        previous = current
    return time.monotonic() - started


def log(message: str) -> None:
    """Progress on stderr, so stdout carries only the result table."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def stream_buffer_peaks(workers: Iterable[WorkerProcess]) -> dict[str, int]:
    """The most records each stream buffered, over the workers (their ``/metrics``): how much
    of a buffer the records in flight at a pause took (streams/stream_buffer.py)."""
    peaks: dict[str, int] = {}
    for worker in workers:
        try:
            with urllib.request.urlopen(f"{worker.web_url}/metrics", timeout=10) as response:  # noqa: S310  # http, built here
                text = response.read().decode()
        except OSError as exc:  # a worker that is gone has no peaks to give
            log(f"no metrics from {worker.web_url}: {exc}")
            continue
        for family in text_string_to_metric_families(text):
            if family.name == "notify_stream_buffer_peak_records":
                for sample in family.samples:
                    name = sample.labels["topics"]
                    peaks[name] = max(peaks.get(name, 0), int(sample.value))
    return dict(sorted(peaks.items(), key=lambda item: -item[1]))
