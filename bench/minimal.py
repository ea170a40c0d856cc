"""(b) A minimal Faust pass-through agent (bench/minimal_app.py) in its own worker process(es),
on a fresh broker, over the same records: Faust's own per-event cost with nothing else."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.common import (
    PRODUCER_LINGER_MS,
    Broker,
    create_topics,
    embedded_worker_settings,
    log,
    start_workers,
    stop_workers,
    wait_until_idle,
)
from bench.procstats import CpuMeter, RssSampler, cpu_seconds, memory_kb
from bench.stats import per_10k, rate, span

# Passed to the worker in its environment (bench/minimal_app.py reads them there).
IN_TOPIC = "bench-minimal-in"
OUT_TOPIC = "bench-minimal-out"


async def produce_records(
    bootstrap: str, topic: str, records: Sequence[tuple[bytes, bytes]]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=PRODUCER_LINGER_MS)
    await producer.start()
    try:
        futures = [await producer.send(topic, key=k, value=v) for k, v in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _output_timestamps(
    bootstrap: str, topic: str, expected: int, stall_timeout: float
) -> list[float]:
    """Record timestamps (seconds) of the agent's output, read until all are there or the
    output stops growing. Timestamps are set by the worker's producer at send time, so the
    reader's own pace does not enter the measurement."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    stamps: list[float] = []
    last_change = time.monotonic()
    try:
        while len(stamps) < expected and time.monotonic() - last_change < stall_timeout:
            batch = await consumer.getmany(timeout_ms=500, max_records=20_000)
            for messages in batch.values():
                stamps.extend(m.timestamp / 1000.0 for m in messages)
                last_change = time.monotonic()
    finally:
        await consumer.stop()
    return stamps


def run(
    broker: Broker,
    records: Sequence[tuple[bytes, bytes]],
    workers: int,
    workdir: Path,
    stall_timeout: float = 60.0,
    eager_handoff: bool = False,
    post_url: str = "",
) -> dict[str, Any]:
    asyncio.run(create_topics(broker.bootstrap, [IN_TOPIC, OUT_TOPIC]))
    values = embedded_worker_settings(broker.bootstrap, workdir, "bench-minimal")
    values["web_enabled"] = False  # nothing to view; spares a port and a server per worker
    env = {
        "BENCH_MINIMAL_IN": IN_TOPIC,
        "BENCH_MINIMAL_OUT": OUT_TOPIC,
        "BENCH_MINIMAL_EAGER_HANDOFF": "1" if eager_handoff else "",
        "BENCH_MINIMAL_POST_URL": post_url,
    }
    procs = start_workers("bench.minimal_app", values, workers, workdir, "minimal", env)
    try:
        pids = [w.pid for w in procs]
        broker_cpu = cpu_seconds(broker.pid)
        meter = CpuMeter(pids).start()
        log(f"minimal Faust: {len(records):,} records through {workers} worker(s)")
        with RssSampler(pids) as rss:
            asyncio.run(produce_records(broker.bootstrap, IN_TOPIC, records))
            stamps = asyncio.run(
                _output_timestamps(broker.bootstrap, OUT_TOPIC, len(records), stall_timeout)
            )
            wait_until_idle(pids)
        cpu = meter.stop()
        elapsed = span(stamps)
        return {
            "records": len(records),
            "outputs": len(stamps),
            "complete": len(stamps) >= len(records),
            "workers": workers,
            "eager_handoff": eager_handoff,
            "post_per_event": bool(post_url),
            "first_to_last_output_seconds": elapsed,
            "events_per_second": rate(len(stamps), elapsed),
            "worker_cpu_seconds": cpu,
            "worker_cpu_seconds_per_10k": per_10k(cpu, len(stamps)),
            "peak_worker_rss_mb_sampled_sum": rss.peak_kb / 1024,
            "peak_worker_rss_mb_vmhwm": [(memory_kb(p) or 0) / 1024 for p in pids],
            "broker_cpu_seconds": cpu_seconds(broker.pid) - broker_cpu,
        }
    finally:
        stop_workers(procs)
