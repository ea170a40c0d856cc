"""A campaign over many users on one worker: scan rate, enqueue rate, memory.

    python -m bench.campaign --users 1000000          # ~6 min here, most of it loading users

A fresh embedded broker and one worker (8 partitions). Users get attributes (half in the US)
and a tenth of them a preference muting ``marketing``, through the control topics; once the
worker has applied them, one unthrottled campaign (``country == "US"``) runs over all of them
while its requests go down the ordinary low-priority path (the users have no addresses, so
each is resolved and rejected as ``no_reachable_address``: the worker resolves what it
enqueues meanwhile, behind the low CPU ceiling, as it would in production). Measured:

- scan rate: users read per second over the scan (first partition's start to last one's end,
  from the progress the partitions report), and the enqueue rate the same way;
- the worker's CPU over the scan, its peak RSS during the campaign (sampled) and over its
  life (VmHWM), and its RSS once the users were loaded;
- then a second campaign cancelled two seconds in, to show where a cancel leaves one.

It prints the CLI's view of both campaigns (``scripts.campaigns.render``) and a JSON result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaProducer

from bench.common import fresh_broker, log, start_workers, stop_workers
from bench.procstats import CpuMeter, RssSampler, memory_kb
from config.settings import Settings
from scripts.campaigns import render
from scripts.create_topics import create_topics
from streams import topics
from streams.partitioning import partition_for

PARTITIONS = 8
CHUNK = 50_000


def control_records(users: int) -> Iterator[tuple[str, bytes, bytes]]:
    """Preferences first, then attributes: each topic partition is applied in order."""
    for i in range(0, users, 10):
        uid = f"bu-{i:07d}"
        value = {"user_id": uid, "muted_categories": ["marketing"]}
        yield topics.PREFERENCES, uid.encode(), orjson.dumps(value)
    for i in range(users):
        uid = f"bu-{i:07d}"
        attributes = {
            "country": "US" if i % 2 == 0 else "DE",
            "plan": ("free", "premium")[i % 3 == 0],
        }
        yield (
            topics.USER_ATTRIBUTES,
            uid.encode(),
            orjson.dumps({"user_id": uid, "attributes": attributes}),
        )


async def produce_all(bootstrap: str, records: Iterator[tuple[str, bytes, bytes]]) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, compression_type="lz4")
    await producer.start()
    count = 0
    try:
        futures: list[Any] = []
        for topic, key, value in records:
            futures.append(await producer.send(topic, key=key, value=value))
            count += 1
            if len(futures) >= CHUNK:
                await asyncio.gather(*futures)
                futures = []
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return count


async def last_users_loaded(web_url: str, users: int) -> None:
    """Wait until the last user of every partition has its attributes."""
    last: dict[int, str] = {}
    for i in range(users):
        uid = f"bu-{i:07d}"
        last[partition_for(uid, PARTITIONS)] = uid
    async with aiohttp.ClientSession() as session:
        for uid in last.values():
            while True:
                async with session.get(f"{web_url}/users/{uid}/") as response:
                    snapshot = await response.json() if response.status == 200 else {}
                if snapshot.get("attributes"):
                    break
                await asyncio.sleep(1.0)


async def get_progress(web_url: str, campaign_id: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{web_url}/campaigns/{campaign_id}/") as response:
            answer: dict[str, Any] = orjson.loads(await response.read())
            return answer


async def start_campaign(bootstrap: str, record: dict[str, Any]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topics.CAMPAIGNS, key=record["campaign_id"].encode(), value=orjson.dumps(record)
        )
    finally:
        await producer.stop()


def scan_window(progress: dict[str, Any]) -> float:
    """First start to last finish over the partitions, by the worker's own clock."""
    parts = [p for p in progress["partitions"].values() if p]
    return float(max(p["finished_at"] for p in parts) - min(p["started_at"] for p in parts))


def run(users: int, workdir: Path) -> dict[str, Any]:
    with fresh_broker(workdir, "campaign") as broker:
        values: dict[str, Any] = {
            "kafka_bootstrap": broker.bootstrap,
            "broker_flavor": "tansu",
            "session_timeout_seconds": 2.0,
            "heartbeat_interval_seconds": 0.5,
            "app_id": "bench-campaign",
            "partitions": PARTITIONS,
            "data_dir": workdir / "data",
        }
        asyncio.run(create_topics(Settings(**{**values, "web_port": 0})))
        [worker] = start_workers("app", values, 1, workdir, "campaign")
        try:
            started = time.monotonic()
            produced = asyncio.run(produce_all(broker.bootstrap, control_records(users)))
            log(f"produced {produced:,} control records in {time.monotonic() - started:.0f}s")
            asyncio.run(last_users_loaded(worker.web_url, users))
            loaded_s = time.monotonic() - started
            loaded_rss = memory_kb(worker.pid, "VmRSS") or 0
            log(f"users applied after {loaded_s:.0f}s; worker RSS {loaded_rss / 1024:.0f} MB")

            campaign = {
                "campaign_id": "bench-1",
                "segment": 'country == "US"',
                "title": "Hello",
                "body": "A campaign",
                "throttle_per_second": 10_000_000,
            }
            cpu = CpuMeter([worker.pid]).start()
            broker_cpu = CpuMeter([broker.pid]).start()
            with RssSampler([worker.pid]) as rss:
                asyncio.run(start_campaign(broker.bootstrap, campaign))
                while True:
                    time.sleep(2.0)
                    progress = asyncio.run(get_progress(worker.web_url, "bench-1"))
                    log(f"scanned {progress['scanned']:,} enqueued {progress['enqueued']:,}")
                    if progress["state"] == "done":
                        break
            worker_cpu, brk_cpu = cpu.stop(), broker_cpu.stop()
            window = scan_window(progress)
            print(render(progress))

            cancelled = {**campaign, "campaign_id": "bench-cancel", "throttle_per_second": 20_000}
            asyncio.run(start_campaign(broker.bootstrap, cancelled))
            time.sleep(2.0)
            asyncio.run(
                start_campaign(
                    broker.bootstrap, {"campaign_id": "bench-cancel", "action": "cancel"}
                )
            )
            time.sleep(2.0)
            cancel_view = asyncio.run(get_progress(worker.web_url, "bench-cancel"))
            print(render(cancel_view))
            return {
                "users": users,
                "control_records": produced,
                "load_seconds": round(loaded_s, 1),
                "rss_after_load_mb": round(loaded_rss / 1024),
                "scan_seconds": round(window, 2),
                "scanned": progress["scanned"],
                "enqueued": progress["enqueued"],
                "skipped": progress["skipped"],
                "scan_rate_per_s": round(progress["scanned"] / window),
                "enqueue_rate_per_s": round(progress["enqueued"] / window),
                "worker_cpu_s": round(worker_cpu, 1),
                "broker_cpu_s": round(brk_cpu, 1),
                "peak_rss_during_campaign_mb": round(rss.peak_kb / 1024),
                "worker_vmhwm_mb": round((memory_kb(worker.pid) or 0) / 1024),
                "cancelled": {
                    k: cancel_view[k] for k in ("state", "scanned", "enqueued", "cancel_requested")
                },
            }
        finally:
            stop_workers([worker])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.campaign", description=__doc__)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("bench/results/campaign"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    result = run(args.users, args.workdir)
    text = json.dumps(result, indent=2)
    print(text)
    (args.out or args.workdir / f"campaign-{int(time.time())}.json").write_text(text)


if __name__ == "__main__":
    main()
