"""Start, follow and cancel campaigns.

    python -m scripts.campaigns start CAMPAIGN.json       # '-' reads the JSON from stdin
    python -m scripts.campaigns status CAMPAIGN_ID [--web URL] [--watch SECONDS] [--json]
    python -m scripts.campaigns cancel CAMPAIGN_ID
    python -m scripts.campaigns list                      # every record on `campaigns`

``start`` checks the record as the worker will (a bad segment is refused here, with the
column) and writes it to ``campaigns``; ``cancel`` writes the cancel record. ``status`` asks
one worker's web view (``--web``, default ``http://127.0.0.1:$NOTIFY_WEB_PORT``), which
gathers every partition's progress from the workers that own them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaProducer

from config.settings import get_settings
from scripts.dlq import read_all
from streams import topics
from streams.campaigns import Campaign, parse_campaign
from streams.records import InvalidRecord


async def _produce(bootstrap: str, campaign_id: str, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topics.CAMPAIGNS, key=campaign_id.encode(), value=value)
    finally:
        await producer.stop()


async def start(bootstrap: str, raw: bytes) -> int:
    try:
        campaign = parse_campaign(raw)
    except InvalidRecord as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    if not isinstance(campaign, Campaign):
        print("refused: this is a cancel record; use `cancel`", file=sys.stderr)
        return 2
    await _produce(bootstrap, campaign.campaign_id, raw)
    rate = campaign.throttle_per_second
    print(f"started {campaign.campaign_id}: {campaign.segment!r} at {rate:g}/s")
    return 0


async def cancel(bootstrap: str, campaign_id: str) -> int:
    record = orjson.dumps({"campaign_id": campaign_id, "action": "cancel"})
    await _produce(bootstrap, campaign_id, record)
    print(f"cancel requested for {campaign_id}")
    return 0


def render(progress: dict[str, Any]) -> str:
    """The progress as a few lines for a terminal."""

    def counts(values: dict[str, int]) -> str:
        return ", ".join(f"{k} {v:,}" for k, v in sorted(values.items())) or "none"

    lines = [
        f"{progress['campaign_id']}: {progress['state']}"
        + (" (cancel requested)" if progress.get("cancel_requested") else ""),
        f"  scanned {progress['scanned']:,}  targeted {progress['targeted']:,}  "
        f"enqueued {progress['enqueued']:,}",
        f"  skipped: {counts(progress['skipped'])}",
        f"  delivered {progress['delivered']:,}  failed {progress['failed']:,}  "
        f"rejected: {counts(progress['rejected'])}",
    ]
    if progress["missing_partitions"]:
        lines.append(f"  no answer for partitions {progress['missing_partitions']}")
    return "\n".join(lines)


async def status(web: str, campaign_id: str, watch: float, as_json: bool) -> int:
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(f"{web.rstrip('/')}/campaigns/{campaign_id}/") as response:
                if response.status != 200:
                    print(f"{web}: HTTP {response.status}", file=sys.stderr)
                    return 1
                progress = orjson.loads(await response.read())
            print(orjson.dumps(progress).decode() if as_json else render(progress), flush=True)
            if not watch or progress["state"] in ("done", "cancelled", "unknown"):
                return 0
            await asyncio.sleep(watch)


async def list_campaigns(bootstrap: str) -> int:
    for record in await read_all(bootstrap, topics.CAMPAIGNS):
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(record.timestamp / 1000))
        try:
            parsed = parse_campaign(record.value)
        except InvalidRecord as exc:
            print(f"{stamp}  {record.key!r}  refused: {exc}")
            continue
        what = f"start {parsed.segment!r}" if isinstance(parsed, Campaign) else "cancel"
        print(f"{stamp}  {parsed.campaign_id}  {what}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="python -m scripts.campaigns",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["start", "status", "cancel", "list"])
    parser.add_argument("target", nargs="?", help="the JSON file (start) or the campaign id")
    parser.add_argument("--web", default=f"http://127.0.0.1:{settings.web_port}")
    parser.add_argument("--watch", type=float, default=0.0, help="repeat every SECONDS")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.command != "list" and not args.target:
        parser.error(
            f"{args.command} needs a {'file' if args.command == 'start' else 'campaign id'}"
        )
    bootstrap = settings.kafka_bootstrap
    if args.command == "start":
        source = args.target
        raw = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
        return asyncio.run(start(bootstrap, raw))
    if args.command == "cancel":
        return asyncio.run(cancel(bootstrap, args.target))
    if args.command == "status":
        return asyncio.run(status(args.web, args.target, args.watch, args.json))
    return asyncio.run(list_campaigns(bootstrap))


if __name__ == "__main__":
    sys.exit(main())
