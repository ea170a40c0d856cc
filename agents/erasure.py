"""Erasure and unsubscribe (seed 000 §4): control records applied on the user's partition.

An erasure (``user-erasures``, streams/erasure.py), in this order:

1. its marker goes to ``erased-users``, read whole by every worker (tables/erasures.py): every
   lane, the intake and the status fold refuse the user's requests made up to the erasure from
   the moment their worker reads it, wherever their deliveries wait (a lane, a retry tier, the
   quiet-hours hold, a hot user's salted lane on another partition);
2. every value the user's partition keeps for the user is deleted (tables/user_data.py), and a
   tombstone goes to each control topic under the user's key, so compacted changelogs and
   topics drop the user's values;
3. an ``erased`` event goes to every partition of ``delivery-events``: there, after every event
   this worker produced before it, the status agent anonymises the user's notification
   history on that partition (``anonymise_history``) and deletes the delivery-ledger buckets of
   the user's lane keys that live there;
4. an ``audit-events`` record says what was done, addresses masked.

Each step is idempotent, and the record is a Kafka record: a worker dying half-way reads it
again and does it all again. No step is on the hot path; what it adds there is one lookup in
the erased-users table per request (intake), per send (lanes) and per new notification (the
status fold). Not measurable: ``python -m bench.run pipeline`` (1 worker, 47,254 deliveries)
427 deliveries/s and 18.40 s of worker CPU per 10k before, 442 and 17.58 after (one run each,
the machine shared; a first run before, on a busier machine, gave 245 and 29.71).

An unsubscribe (``user-unsubscribes``) mutes one category, or switches off one channel, in the
preferences of that moment (a read-modify-write on the owner partition), and is audited.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import cast

import faust
import msgspec

from agents import produce, safe
from agents.metrics import Metrics
from agents.supervision import supervised_agent
from config.logging import mask_address
from config.settings import Settings
from config.vocabulary import AuditAction, EventStatus
from streams.deliveries import DeliveryEvent
from streams.erasure import (
    AuditEvent,
    ErasedMarker,
    Unsubscribe,
    UserErasure,
    encode,
    parse_marker,
)
from streams.faust_types import Agent, Event, Stream
from streams.records import Preferences
from streams.topics import Topics
from tables import Tables, contacts, devices, erasures, preferences, status, user_data
from tables.partition_scan import PartitionClosed, scan

log = logging.getLogger(__name__)

# Status entries read per step of a history scan; the loop runs other agents between steps.
SCAN_CHUNK = 500


@dataclass
class Erasures:
    settings: Settings
    topics: Topics
    tables: Tables
    metrics: Metrics

    async def erase(self, record: UserErasure, timestamp: float) -> None:
        """On the user's partition. ``timestamp``: the record's (when it was asked)."""
        user_id, key = record.user_id, record.user_id.encode()
        erased_at = record.requested_at or timestamp or time.time()
        marker = ErasedMarker(user_id=user_id, erased_at=erased_at)
        await produce.send(self.topics.erased_users, key, encode(marker))
        # Read for the audit before they go: masked, they say which addresses were forgotten.
        addresses = {
            field: mask_address(address)
            for field, address in contacts.get(self.tables.contacts, user_id).items()
        }
        device_count = len(devices.tokens(self.tables.devices, user_id))
        deleted = user_data.erase_user(self.tables, user_id)
        for control_topic in self.topics.user_data_control:
            await produce.send(control_topic, key, None)
        erased = DeliveryEvent(
            notification_id="", user_id=user_id, status=EventStatus.ERASED, at=erased_at
        )
        for partition in range(self.settings.partitions):
            await produce.send(
                self.topics.delivery_events, key, erased.to_json(), partition=partition
            )
        details = {f"deleted.{table}": str(count) for table, count in deleted.items()}
        details.update({f"address.{field}": masked for field, masked in addresses.items()})
        details["devices"] = str(device_count)
        if record.requested_by:
            details["requested_by"] = record.requested_by
        await self._audit(AuditAction.USER_ERASED, user_id, details)
        log.info("erased user %s (%d keys)", user_id, sum(deleted.values()))

    async def unsubscribe(self, record: Unsubscribe, timestamp: float) -> None:
        """On the user's partition: mute ``category`` or switch ``channel`` off."""
        user_id = record.user_id
        email = contacts.get(self.tables.contacts, user_id).get("email", "")
        if not email and erasures.erased_at(self.tables.erased_users, user_id) is not None:
            # A link from before the erasure: there is nobody left to unsubscribe, and writing
            # preferences would bring a forgotten user back.
            return
        before = preferences.get(self.tables.preferences, user_id) or Preferences(user_id)
        if record.channel is not None:
            changed = msgspec.structs.replace(
                before, channels={**before.channels, record.channel: False}
            )
            if before.allows_channel(record.channel):
                self.metrics.unsubscribed([record.channel])
        else:
            muted = before.muted_categories
            changed = msgspec.structs.replace(
                before,
                muted_categories=muted if record.category in muted else (*muted, record.category),
            )
        preferences.put(self.tables.preferences, changed)
        details = {"source": record.source, "address.email": mask_address(email)}
        details["channel" if record.channel is not None else "category"] = (
            record.channel or record.category
        )
        await self._audit(AuditAction.UNSUBSCRIBED, user_id, details)

    async def _audit(self, action: AuditAction, user_id: str, details: dict[str, str]) -> None:
        event = AuditEvent(action=action, user_id=user_id, at=time.time(), details=details)
        await produce.send(self.topics.audit_events, user_id.encode(), encode(event))

    async def anonymise_history(self, user_id: str, partition: int) -> int:
        """On ``partition`` of the events topic (an ``erased`` event): the user's notifications
        whose status lives here are anonymised (tables/status.py), and the delivery ledger of
        the user's lane keys here is deleted. Reads the whole partition of the status table,
        SCAN_CHUNK entries per step, the loop free between steps: erasures are rare, and this
        keeps their cost off the hot path (an index of notifications per user would cost a
        write on every request). Returns how many notifications it anonymised."""
        owners = user_data.ledger_owners(
            user_id, partition, self.settings.partitions, self.settings.hot_key_fanout
        )
        user_data.erase_owner_keys(self.tables, owners)
        anonymised, after = 0, None
        while True:
            try:
                chunk = scan(self.tables.status, partition, after, SCAN_CHUNK)
            except PartitionClosed:
                return anonymised  # revoked: its next owner reads the event again
            for notification_id, state in chunk:
                if state.get("user_id") == user_id:
                    table = self.tables.status
                    stored = cast(status.NotificationState, dict(state))
                    table[notification_id] = status.anonymised(stored)
                    anonymised += 1
            if len(chunk) < SCAN_CHUNK:
                return anonymised
            after = chunk[-1][0]
            await asyncio.sleep(0)


def register(app: faust.App, topics: Topics, tables: Tables) -> Agent:
    """The agent that folds ``erased-users`` into the GlobalTable every worker reads."""

    async def apply(event: Event) -> None:
        erasures.mark(tables.erased_users, parse_marker(event.message.value))

    async def apply_erased_users(stream: Stream) -> None:
        async for event in stream.events():
            await safe.handle_safely(event, apply, topics.control_dlq, "apply_erased_users")

    return supervised_agent(app, topics.erased_users, "apply_erased_users")(apply_erased_users)
