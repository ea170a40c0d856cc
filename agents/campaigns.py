"""Campaign agents: broadcast each campaign to every partition, and scan each partition's users.

``broadcast_campaigns`` reads ``campaigns`` (key = campaign_id), refuses what cannot be read
(``campaigns.dlq``, with the reason: a bad segment says where it is wrong), and copies the
record to every partition of ``campaigns.partitions``.

``scan_campaigns`` reads that topic. A start record runs the partition's scan
(agents/campaign_scan.py) as a task of its own, and the record is acknowledged only when the
scan is done or cancelled: until then the partition's committed offset stays before it, so a
worker that dies mid-scan leaves the record to the partition's next owner, which reads it
again and resumes from the recovered cursor. At a rebalance the scans of revoked partitions
are cancelled at once (their last cursor is in the changelog); the next owner reads the record
again. A start record of a campaign whose scan is finished on this partition (a copy read
again) is acknowledged and nothing more. A cancel record is written to the progress table
(so it survives a crash before the scan saw it) and stops a running scan.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.types import TP

from agents import produce, safe
from agents.campaign_scan import PartitionScan
from agents.lanes import is_stale
from agents.supervision import supervised_agent
from config.settings import Settings
from config.vocabulary import Priority
from streams.campaigns import Campaign, CampaignCancel, parse_campaign
from streams.faust_types import Agent, Event, Stream
from streams.topics import Topics
from tables import Tables, campaign_progress

log = logging.getLogger(__name__)

RETRY_SECONDS = 5.0  # a scan that failed (a produce the broker refused) starts again after


@dataclass
class Running:
    task: asyncio.Task[None]
    stop: asyncio.Event
    tp: TP


@dataclass
class CampaignScanner:
    app: faust.App
    settings: Settings
    topics: Topics
    tables: Tables
    running: dict[tuple[str, int], Running] = field(default_factory=dict)

    async def broadcast(self, event: Event) -> None:
        message = event.message
        record = parse_campaign(message.value)  # InvalidRecord: campaigns.dlq, with the reason
        key = record.campaign_id.encode()
        for partition in range(self.settings.partitions):
            await produce.send(
                self.topics.campaign_partitions, key, message.value, partition=partition
            )

    async def handle(self, event: Event) -> None:
        """Returns having acked the event, or having handed it to a scan task that will."""
        if is_stale(event, self.app.consumer_generation_id):
            event.ack()  # revoked since it was fetched: the next owner reads it again
            return
        record = parse_campaign(event.message.value)
        partition = event.message.partition
        if isinstance(record, CampaignCancel):
            self._cancel(record.campaign_id, partition)
            event.ack()
            return
        key = (record.campaign_id, partition)
        scan = campaign_progress.get(self.tables.campaign_progress, *key)
        if key in self.running or (
            scan is not None and scan["state"] in campaign_progress.FINISHED
        ):
            event.ack()  # a copy read again: the scan it started runs or ran
            return
        if scan is None:
            scan = campaign_progress.new_scan(
                record.throttle_per_second / self.settings.partitions, time.time()
            )
            campaign_progress.put(self.tables.campaign_progress, *key, scan)
        stop = asyncio.Event()
        # Created here, the task's context holds this event as current_event(): its table
        # reads and writes go to this partition's stores.
        task = asyncio.create_task(
            self._scan(event, record, scan, stop), name=f"campaign-scan:{key[0]}:{key[1]}"
        )
        self.running[key] = Running(task, stop, event.message.tp)
        task.add_done_callback(lambda _: self.running.pop(key, None))

    def _cancel(self, campaign_id: str, partition: int) -> None:
        campaign_progress.request_cancel(
            self.tables.campaign_progress, campaign_id, partition, time.time()
        )
        running = self.running.get((campaign_id, partition))
        if running is not None:
            running.stop.set()
        log.info("campaign %s cancelled on partition %d", campaign_id, partition)

    async def _send(self, campaign: Campaign, key: bytes, value: bytes) -> Any:
        channel = (
            self.topics.requests_low if campaign.priority == Priority.LOW else self.topics.requests
        )
        return await produce.send_pending(channel, key, value)

    async def _scan(self, event: Event, campaign: Campaign, scan: Any, stop: asyncio.Event) -> None:
        partition = event.message.partition

        async def send(key: bytes, value: bytes) -> Any:
            return await self._send(campaign, key, value)

        while True:
            scanner = PartitionScan(
                campaign, partition, self.settings.partitions, self.tables, send, stop
            )
            try:
                final = await scanner.run(scan)
                break
            except asyncio.CancelledError:
                log.info(
                    "campaign %s: scan of partition %d handed over", campaign.campaign_id, partition
                )
                raise
            except Exception:
                log.exception(
                    "campaign %s: scan of partition %d failed; resuming from its cursor in %gs",
                    campaign.campaign_id,
                    partition,
                    RETRY_SECONDS,
                )
                await asyncio.sleep(RETRY_SECONDS)
                scan = (
                    campaign_progress.get(
                        self.tables.campaign_progress, campaign.campaign_id, partition
                    )
                    or scan
                )
        log.info(
            "campaign %s: partition %d %s (%d scanned, %d enqueued)",
            campaign.campaign_id,
            partition,
            final["state"],
            final["scanned"],
            final["enqueued"],
        )
        event.ack()

    async def hand_over(self, revoked: set[TP]) -> None:
        """Cancels the scans of revoked partitions and waits until they have stopped."""
        tasks = [r.task for r in self.running.values() if r.tp in revoked]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def register(
    app: faust.App, settings: Settings, topics: Topics, tables: Tables
) -> dict[str, Agent]:
    scanner = CampaignScanner(app, settings, topics, tables)

    async def broadcast_campaigns(stream: Stream) -> None:
        async for event in stream.events():
            await safe.handle_safely(
                event, scanner.broadcast, topics.campaigns_dlq, "broadcast_campaigns"
            )

    async def scan_campaigns(stream: Stream) -> None:
        async for event in stream.noack().events():  # type: ignore[attr-defined]
            if not await safe.handle_safely(
                event, scanner.handle, topics.campaigns_dlq, "scan_campaigns"
            ):
                event.ack()  # dead-lettered (or, failing that, logged): nothing holds it

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # faust types it loosely
    async def hand_over_scans(sender: object, revoked: set[TP], **kwargs: object) -> None:
        await scanner.hand_over(revoked)

    return {
        "broadcast_campaigns": supervised_agent(app, topics.campaigns, "broadcast_campaigns")(
            broadcast_campaigns
        ),
        "scan_campaigns": supervised_agent(app, topics.campaign_partitions, "scan_campaigns")(
            scan_campaigns
        ),
    }
