"""The hot-key detector in a running worker: it observes, shares, flags, and salts lane keys.

Where it observes: in the intake, once a request is fanned out, with the request's partition and
its number of deliveries as the weight. The intake runs on the user's own partition, so the
owner of partition p sees every delivery any user of p causes, counted by ``user_id`` (the key a
flag names) before any salting; and deliveries, not requests, are what loads the lanes (a
request to five devices is five sends; a refused one is none). Counting on the lanes instead
would see salted keys once a flag is up, and a user's deliveries spread over workers.

How the mean is known: every ``NOTIFY_HOT_KEY_EVALUATE_SECONDS`` each worker publishes its
partitions' rates to the compacted ``hot-keys.rates`` (key = partition) and reads everyone's,
so the 2x rule compares a partition with the mean of the whole cluster. (The broker's offsets
would give request counts, not deliveries, and on the embedded broker ListOffsets is wrong
whenever a batch holds several records: BROKER.md.)

How flags are shared: the detector writes them to the compacted ``hot-keys`` topic (a tombstone
clears one), and every worker reads both topics whole, from the beginning, with a consumer of
its own outside the consumer group, into ``HotKeyBoard``. Not a Faust ``GlobalTable``: Faust
documents that one "may cause an app to be stuck in an infinite recovery loop" with several
workers, and its recovery target comes from ListOffsets (BROKER.md); the board only has to fold
a few hundred records. After a rebalance the new owner of a partition adopts its live flags, to
renew or clear them; a flag nobody adopts ends with its lease.

The router: ``lane_key`` is the key a delivery is produced under, ``user_id`` unless the user
is flagged, then ``user_id#n`` with ``n`` chosen from the delivery id (a retried or re-read
delivery keeps its sub-key, so its lane state is where its first copy left it). Deliveries
whose lane work needs the user's own partition keep the user key: in-app ones (the inbox is
read per user) and those of a notification with a fallback channel (the fallback counts and
fans out again from the user's tables).

Cost: 0.41 % of a py-spy profile's samples of the ``bench.run pipeline`` worker (45 s at 50 Hz;
``observe`` 0.30 %), none in ``lane_key``; in isolation 1.2 µs per fanned-out request and 0.1 µs
per delivery (200,000 requests of 2,000 users over 8 partitions).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, cast

import faust
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from mode import Service

from agents import produce, safe
from agents.hot_key_counters import HOT_KEYS
from config.settings import Settings
from config.vocabulary import Channel
from streams import topics as topic_names
from streams.deliveries import Delivery
from streams.faust_types import Event
from streams.hot_key_board import HotKeyBoard, PartitionRate, rate_record
from streams.hot_keys import HotKeyDetector
from streams.salting import salt_for_delivery, spread_key
from streams.topics import Topics

log = logging.getLogger(__name__)

# The request topics whose partitions the detector counts (co-partitioned: partition p of each
# is the same users, on the same worker).
_REQUEST_TOPICS = frozenset(
    (topic_names.REQUESTS, topic_names.REQUESTS_BY_USER, topic_names.REQUESTS_LOW)
)
STAGE = "hot_keys"


def detector_for(settings: Settings) -> HotKeyDetector:
    return HotKeyDetector(
        partitions=settings.partitions,
        capacity=settings.hot_key_sketch_capacity,
        buckets=settings.hot_key_window_buckets,
        bucket_seconds=settings.hot_key_bucket_seconds,
        factor=settings.hot_key_factor,
        min_partition_rate=settings.hot_key_min_partition_rate,
        sustain_seconds=settings.hot_key_sustain_seconds,
        share=settings.hot_key_share,
        cooldown_factor=settings.hot_key_cooldown_factor,
        cooldown_seconds=settings.hot_key_cooldown_seconds,
        lease_seconds=settings.hot_key_lease_seconds,
    )


def saltable(delivery: Delivery) -> bool:
    """In-app and fallback-bound deliveries keep the user key (see the module docstring)."""
    return (
        delivery.channel != Channel.IN_APP
        and delivery.fallback_channel is None
        and not delivery.is_fallback
    )


@dataclass
class _RecordEvent:
    """The part of a Faust event the dead-letter path reads, over an aiokafka record."""

    message: ConsumerRecord[bytes, bytes]


class HotKeys(Service):
    """One per worker: the detector of its partitions and the board of the whole cluster."""

    def __init__(self, app: faust.App, settings: Settings, topics: Topics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.app = app
        self.settings = settings
        self.topics = topics
        self.detector = detector_for(settings)
        self.board = HotKeyBoard(settings.partitions)
        self.counters = HOT_KEYS
        self._fanout = settings.hot_key_fanout
        self._partitions = settings.partitions
        # A shared rate older than this counts as idle: its owner has stopped publishing.
        self._rate_max_age = 3 * settings.hot_key_evaluate_seconds
        self._consumer: AIOKafkaConsumer | None = None

    # --- the hot path --------------------------------------------------------------------
    def observe(self, partition: int, user_id: str, deliveries: int, now: float) -> None:
        self.detector.observe(partition, user_id, now, deliveries)

    def lane_key(self, delivery: Delivery) -> bytes:
        user_id = delivery.user_id
        if user_id not in self.board.flagged or not saltable(delivery):
            return user_id.encode()
        self.counters.salted_deliveries += 1
        salt = salt_for_delivery(delivery.delivery_id, self._fanout)
        return spread_key(user_id, salt, self._fanout, self._partitions).encode()

    # --- rebalances ------------------------------------------------------------------------
    def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.detector.forget({tp.partition for tp in revoked if tp.topic in _REQUEST_TOPICS})

    def _owned(self) -> set[int]:
        try:
            assigned = self.app.consumer.assignment()
        except Exception:  # no consumer yet (starting up): nothing owned
            return set()
        return {tp.partition for tp in assigned if tp.topic == topic_names.REQUESTS}

    # --- the service -----------------------------------------------------------------------
    async def on_start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=None,  # every worker reads every partition
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=200,
        )
        await consumer.start()
        consumer.assign(
            [
                TopicPartition(topic, partition)
                for topic in topic_names.COMPACTED
                for partition in range(self.settings.partitions)
            ]
        )
        await consumer.seek_to_beginning()
        self._consumer = consumer

    async def on_stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    @Service.task
    async def _read_board(self) -> None:
        while not self.should_stop:
            consumer = self._consumer
            if consumer is None:
                await self.sleep(0.1)
                continue
            try:
                batches = await consumer.getmany(timeout_ms=500)
            except Exception:  # a broker hiccup: the consumer reconnects by itself
                log.exception("reading the hot-key topics failed; reading on")
                await self.sleep(1.0)
                continue
            for records in batches.values():
                for record in records:
                    await self._apply(record)

    async def _apply(self, record: ConsumerRecord[bytes, bytes]) -> None:
        self.counters.records_read += 1
        event = cast(Event, _RecordEvent(record))
        if not await safe.handle_safely(event, self._fold, self.topics.hot_keys_dlq, STAGE):
            self.counters.bad_records += 1

    async def _fold(self, event: Event) -> None:
        message = event.message
        if message.topic == topic_names.HOT_KEYS:
            self.board.apply_flag(message.key, message.value, time.time())
        else:
            self.board.apply_rate(message.key, message.value)

    @Service.task
    async def _evaluate_periodically(self) -> None:
        interval = self.settings.hot_key_evaluate_seconds
        while not self.should_stop:
            await self.sleep(interval)
            try:
                await self.evaluate(time.time())
            except Exception:
                # A failed produce: the next round publishes afresh; the router keeps routing.
                log.exception("hot-key evaluation failed; trying again in %gs", interval)

    async def evaluate(self, now: float) -> None:
        self.counters.evaluations += 1
        owned = self._owned()
        # Counted here since the last rebalance but no longer ours: the revoke hook may have
        # run before the intake counted a record it had already taken.
        self.detector.forget({p for p in self.detector.partition_rates(now) if p not in owned})
        local = self.detector.partition_rates(now)
        for partition, rate in local.items():
            rate_key, rate_value = rate_record(PartitionRate(partition, rate, now))
            await produce.send(self.topics.hot_key_rates, rate_key, rate_value)
        for flag in self.board.flags(now).values():
            if flag.partition in owned and self.detector.adopt(flag, now):
                self.counters.flags_adopted += 1
        mean = self.board.mean_rate(local, now, self._rate_max_age)
        known = self.detector.flags()
        changes = self.detector.evaluate(now, mean)
        for flag in changes.raised:
            if flag.key in known:
                self.counters.flags_renewed += 1
            else:
                self.counters.flags_raised += 1
                log.warning(
                    "hot key flagged: %s carries %.1f of partition %d's %.1f deliveries/s "
                    "(mean partition %.1f/s): salted over %d sub-keys",
                    flag.key,
                    flag.rate,
                    flag.partition,
                    flag.partition_rate,
                    flag.mean_rate,
                    self._fanout,
                )
        for cleared in changes.cleared:
            self.counters.flags_cleared += 1
            log.warning("hot key cleared: %s has cooled down", cleared)
        for key, value in changes.records():
            await produce.send(self.topics.hot_keys, key, value)
        self.board.refresh(now)

    def snapshot(self, now: float) -> dict[str, Any]:
        """What the web view shows: the cluster's flags, the rates, this worker's counters."""
        local = self.detector.partition_rates(now)
        return {
            "flags": {
                key: {
                    "partition": flag.partition,
                    "rate": round(flag.rate, 3),
                    "partition_rate": round(flag.partition_rate, 3),
                    "mean_rate": round(flag.mean_rate, 3),
                    "flagged_at": flag.flagged_at,
                    "expires_at": flag.expires_at,
                    "sub_keys": self._fanout,
                }
                for key, flag in sorted(self.board.flags(now).items())
            },
            "mean_partition_rate": round(self.board.mean_rate(local, now, self._rate_max_age), 3),
            "partition_rates": {
                str(p): round(rate.rate, 3) for p, rate in sorted(self.board.rates().items())
            },
            "owned_here": sorted(self._owned()),  # this worker's partitions
            "counted_here": sorted(local),
            "counters": self.counters.as_dict(),
        }


def start(app: faust.App, settings: Settings, topics: Topics) -> HotKeys:
    hot_keys = HotKeys(app, settings, topics)
    app.service(hot_keys)  # type: ignore[arg-type]  # an instance is accepted and started

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # faust types it loosely
    async def forget_revoked(sender: object, revoked: set[TopicPartition], **kw: object) -> None:
        hot_keys.partitions_revoked(revoked)

    @app.page("/hot-keys/")
    class HotKeysView(faust.web.View):
        async def get(self, request: faust.web.Request) -> faust.web.Response:
            return self.json(hot_keys.snapshot(time.time()))

    return hot_keys
