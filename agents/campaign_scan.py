"""One campaign's scan of one partition: users in key order -> segment -> opt-outs -> requests.

Durable and resumable by construction: the cursor and the counts up to it are written
together (``campaign_progress``) only after every request up to the cursor was acknowledged by
the broker. A crash or a rebalance loses at most the requests since the last write, and those
users are scanned again by the next owner: their requests carry the same notification id and
idempotency key, so the intake refuses the second copy as a duplicate (``rejected:
duplicate``, not counted as a skip) and nobody gets two. Anything else must run in the event's
context (``current_event()`` is the campaign record of this partition): table reads and
writes then land on this partition, which is where the user's own tables live.

The throttle is the campaign's rate divided by the partition count, paced per partition.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from config.vocabulary import CampaignSkip, Channel
from streams.campaigns import Campaign, request_for
from streams.records import InvalidRecord, Preferences
from tables import Tables, campaign_progress, preferences, user_attributes
from tables.campaign_progress import ScanState

log = logging.getLogger(__name__)

SCAN_BATCH = 500  # users read from the store in one synchronous step
FLUSH_SECONDS = 0.5  # how often the cursor is written while sending
MAX_UNFLUSHED = 5000  # requests in flight before the cursor must catch up
BURST_SECONDS = 1.0  # how much sending time a pacer that fell behind may catch up
MIN_SLEEP = 0.002  # shorter waits are left to the next send: the loop's timer is coarser
_EVERY_CHANNEL = tuple(Channel)

# Produces one request (key, value); returns the producer's future (None: already sent).
Send = Callable[[bytes, bytes], Awaitable["asyncio.Future[Any] | None"]]


@dataclass
class Pacer:
    """At most ``rate`` takes per second, on an absolute schedule: a send delayed by a slow
    flush is made up later (up to BURST_SECONDS of them), so the long-run rate is the rate."""

    rate: float
    _next_at: float | None = None

    def delay(self, now: float) -> float:
        return 0.0 if self._next_at is None else max(0.0, self._next_at - now)

    def take(self, now: float) -> None:
        base = now if self._next_at is None else max(self._next_at, now - BURST_SECONDS)
        self._next_at = base + 1.0 / self.rate


def skip_reason(campaign: Campaign, prefs: Preferences | None) -> CampaignSkip | None:
    """Why a matching user is counted instead of sent (the intake would refuse them anyway)."""
    if prefs is None:
        return None
    if campaign.category in prefs.muted_categories:
        return CampaignSkip.CATEGORY_MUTED
    wanted = campaign.channels or _EVERY_CHANNEL
    if not any(prefs.allows_channel(c) for c in wanted):
        return CampaignSkip.NO_CHANNEL_ALLOWED
    return None


@dataclass
class PartitionScan:
    campaign: Campaign
    partition: int
    partitions: int
    tables: Tables
    send: Send
    stop: asyncio.Event = field(default_factory=asyncio.Event)  # set: cancel or revoke
    clock: Callable[[], float] = time.time
    _pending: list[asyncio.Future[Any]] = field(default_factory=list)
    _flushed_at: float = 0.0

    @property
    def rate(self) -> float:
        return self.campaign.throttle_per_second / self.partitions

    def _cancelled(self) -> bool:
        return self.stop.is_set() or campaign_progress.cancel_requested(
            self.tables.campaign_progress, self.campaign.campaign_id, self.partition
        )

    async def _wait(self, seconds: float) -> bool:
        """Sleeps ``seconds`` unless stopped first; True if stopped."""
        try:
            await asyncio.wait_for(self.stop.wait(), timeout=seconds)
        except TimeoutError:
            return self._cancelled()
        return True

    def _save(self, scan: ScanState) -> None:
        scan["updated_at"] = self.clock()
        campaign_progress.put(
            self.tables.campaign_progress, self.campaign.campaign_id, self.partition, scan
        )

    async def _flush(self, scan: ScanState) -> None:
        """The requests sent so far are on the broker: the cursor may move past them."""
        if self._pending:
            pending, self._pending = self._pending, []
            await asyncio.gather(*pending)
        self._flushed_at = self.clock()
        self._save(scan)

    def _finish(self, scan: ScanState, state: str) -> ScanState:
        scan["state"] = state
        scan["finished_at"] = self.clock()
        self._save(scan)
        return scan

    async def run(self, scan: ScanState) -> ScanState:
        """Scans from ``scan``'s cursor to the end (or a cancel); returns the final state.
        Raises asyncio.CancelledError at a rebalance, leaving the last saved cursor."""
        campaign = self.campaign
        start_at = campaign.start_at or 0.0
        if start_at > self.clock() and await self._wait(start_at - self.clock()):
            return self._finish(scan, campaign_progress.CANCELLED)
        if self._cancelled():
            return self._finish(scan, campaign_progress.CANCELLED)
        scan["state"] = campaign_progress.RUNNING
        scan.setdefault("started_at", self.clock())
        scan["throttle_per_second"] = self.rate
        self._save(scan)
        pacer = Pacer(self.rate)
        self._flushed_at = self.clock()
        while True:
            batch = user_attributes.scan(
                self.tables.user_attributes, self.partition, scan["cursor"], SCAN_BATCH
            )
            if not batch:
                break
            for user_id, attributes in batch:
                if not await self._one(scan, pacer, user_id, attributes):
                    await self._flush(scan)
                    return self._finish(scan, campaign_progress.CANCELLED)
            if self._cancelled():
                await self._flush(scan)
                return self._finish(scan, campaign_progress.CANCELLED)
            if self.clock() - self._flushed_at >= FLUSH_SECONDS:
                await self._flush(scan)
            await asyncio.sleep(0)  # a full-speed scan must still let the other agents run
        await self._flush(scan)
        return self._finish(scan, campaign_progress.DONE)

    async def _one(
        self, scan: ScanState, pacer: Pacer, user_id: str, attributes: dict[str, Any] | Any
    ) -> bool:
        """Handles one user; False if the campaign was stopped before this user was sent.
        The counts and the cursor move together, once the user is handled: a flush while
        waiting for the pacer must save the state as of the user before."""
        campaign = self.campaign
        if not campaign.matches(attributes):
            _advance(scan, user_id)
            return True
        reason = skip_reason(campaign, preferences.get(self.tables.preferences, user_id))
        request = b""
        if reason is None:
            try:
                request = request_for(campaign, user_id, attributes, self.clock())
            except InvalidRecord:
                reason = CampaignSkip.MISSING_PLACEHOLDER
        if reason is not None:
            _advance(scan, user_id, targeted=True)
            scan["skipped"][reason] = scan["skipped"].get(reason, 0) + 1
            return True
        delay = pacer.delay(self.clock())
        if delay > MIN_SLEEP:
            if self.clock() - self._flushed_at >= FLUSH_SECONDS:
                await self._flush(scan)
                delay = pacer.delay(self.clock())
            if delay > MIN_SLEEP and await self._wait(delay):
                return False
        pacer.take(self.clock())
        pending = await self.send(user_id.encode(), request)
        if pending is not None:
            self._pending.append(pending)
        _advance(scan, user_id, targeted=True, enqueued=True)
        if len(self._pending) >= MAX_UNFLUSHED:
            await self._flush(scan)
        return True


def _advance(scan: ScanState, user_id: str, targeted: bool = False, enqueued: bool = False) -> None:
    scan["scanned"] += 1
    scan["targeted"] += targeted
    scan["enqueued"] += enqueued
    scan["cursor"] = user_id
