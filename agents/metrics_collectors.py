"""What a scrape reads from where it is already kept, instead of counting it per record.

- :class:`ConsumerOffsets`: per topic and partition of this worker's assignment, the committed
  offset, the high watermark and their difference, the consumer lag; and the lanes' lag summed
  by priority, the queue depth. The high watermark is the one the last Fetch response carried
  (``consumer.highwater``), not a ListOffsets answer: Tansu answers those short by its last
  batch (patches/tansu/recovery_highwaters.py), so the lag is right on the embedded broker too,
  and a scrape costs no broker round trip. Messages in per topic is the rate of the high
  watermark: ``sum by (topic) (rate(notify_kafka_highwater_offset[5m]))``.
- :class:`StreamBuffers`: the records each stream holds in memory now, and the most it held
  (streams/stream_buffer.py): how much of a buffer the records in flight at a pause filled.
- :class:`FailureCountersCollector`: agents/counters.py, one series per field.
- :class:`BreakerStates`: each provider's circuit breakers (providers.base.ReportsBreakers),
  read rather than pushed: a breaker turns half-open when its cool-down ends, with no event.
- :class:`CampaignProgress`: the campaign tables' counts on this worker's partitions; summed
  over workers they are the campaign's, exact across crashes (they are the durable counts).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping

import faust
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agents.counters import FailureCounters
from agents.hot_key_counters import HotKeyCounters
from config.vocabulary import Channel, Priority
from patches import commit_guard
from providers.base import BREAKER_STATES
from providers.registry import ProviderRegistry
from streams.stream_buffer import PausingQueue, stream_queues
from streams.topics import REQUESTS, delivery_topic
from tables import Tables, campaign_progress

log = logging.getLogger(__name__)

# (field of FailureCounters, metric name, help, label names of its Counter's keys)
_FAILURE_SERIES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("invalid_records", "notify_invalid_records", "Records a parser refused", ("stage",)),
    ("internal_errors", "notify_internal_errors", "Unexpected exceptions in a handler", ("stage",)),
    (
        "dead_letter_reasons",
        "notify_dead_letters",
        "Records sent to a dead-letter topic, by the kind of reason",
        ("topic", "reason"),
    ),
    (
        "dead_letters",
        "notify_dead_letters_written",
        "Dead letters the broker confirmed",
        ("topic",),
    ),
    (
        "dead_letters_truncated",
        "notify_dead_letters_truncated",
        "Dead letters written as a 64 KiB prefix (too large to copy whole)",
        ("topic",),
    ),
    (
        "dead_letter_failures",
        "notify_dead_letters_lost",
        "Records that could not be dead-lettered at all (only the log holds them)",
        ("topic",),
    ),
    (
        "produce_failures",
        "notify_produce_errors",
        "Records the producer refused or failed after its retries",
        ("topic",),
    ),
    ("agent_restarts", "notify_agent_restarts", "Crashed agents restarted", ("agent",)),
)

# A finished campaign stays on the dashboard this long, then leaves the scrape (the tables keep
# it): the series count grows with the campaigns running, not with every campaign ever sent.
CAMPAIGN_SHOWN_AFTER_FINISH_SECONDS = 3600.0


class ConsumerOffsets(Collector):
    def __init__(self, app: faust.App) -> None:
        self.app = app
        self.lane_priority = {
            delivery_topic(channel, priority): str(priority)
            for channel in Channel
            for priority in Priority
        }

    def collect(self) -> Iterator[Metric]:
        labels = ["topic", "partition"]
        lag = GaugeMetricFamily(
            "notify_kafka_consumer_lag_messages",
            "High watermark minus committed offset, per partition this worker consumes",
            labels=labels,
        )
        committed = GaugeMetricFamily(
            "notify_kafka_committed_offset", "The group's committed offset", labels=labels
        )
        highwater = GaugeMetricFamily(
            "notify_kafka_highwater_offset",
            "The high watermark of the last fetch (its rate: messages in)",
            labels=labels,
        )
        depth = GaugeMetricFamily(
            "notify_queue_depth_messages",
            "Deliveries waiting on this worker's delivery lanes, by priority",
            labels=["priority"],
        )
        by_priority: Counter[str] = Counter({str(p): 0 for p in Priority})
        for tp, offset, end in self._offsets():
            values = [tp.topic, str(tp.partition)]
            committed.add_metric(values, offset)
            highwater.add_metric(values, end)
            behind = max(0, end - offset)
            lag.add_metric(values, behind)
            priority = self.lane_priority.get(tp.topic)
            if priority is not None:
                by_priority[priority] += behind
        for priority, count in sorted(by_priority.items()):
            depth.add_metric([priority], count)
        yield from (lag, committed, highwater, depth)

    def _offsets(self) -> Iterator[tuple[faust.types.TP, int, int]]:
        try:
            consumer = self.app.consumer
            assigned = consumer.assignment()
        except Exception:  # not started yet (or stopping): nothing is consumed, nothing lags
            return
        changelogs = self.app.tables.changelog_topics
        for tp, offset in sorted(commit_guard.committed_offsets(consumer).items()):
            if tp not in assigned or tp.topic in changelogs:
                continue
            end = consumer.highwater(tp)
            if end is None or end < 0:  # no fetch answered yet
                continue
            yield tp, offset, end


class StreamBuffers(Collector):
    """Per stream (its topics, comma-joined): the records buffered now and the most ever."""

    def __init__(self, queues: Callable[[], Iterable[PausingQueue]] = stream_queues) -> None:
        self.queues = queues

    def collect(self) -> Iterator[Metric]:
        labels = ["topics"]
        held = GaugeMetricFamily(
            "notify_stream_buffer_records",
            "Records fetched and waiting in this stream's in-memory buffer",
            labels=labels,
        )
        deepest = GaugeMetricFamily(
            "notify_stream_buffer_peak_records",
            "The most records this stream's buffer held since the worker started",
            labels=labels,
        )
        now: Counter[str] = Counter()
        most: Counter[str] = Counter()
        for queue in self.queues():
            name = ",".join(queue.topics)
            now[name] += queue.qsize()
            most[name] = max(most[name], queue.deepest)
        for name in sorted(now):
            held.add_metric([name], now[name])
            deepest.add_metric([name], most[name])
        yield from (held, deepest)


class FailureCountersCollector(Collector):
    def __init__(self, counters: FailureCounters) -> None:
        self.counters = counters

    def collect(self) -> Iterator[Metric]:
        for field_name, name, help_text, label_names in _FAILURE_SERIES:
            family = CounterMetricFamily(name, help_text, labels=list(label_names))
            counts: Mapping[object, int] = getattr(self.counters, field_name)
            for key, count in sorted(counts.items(), key=lambda item: str(item[0])):
                values = list(key) if isinstance(key, tuple) else [str(key)]
                family.add_metric([str(v) for v in values], count)
            yield family


class HotKeyEvents(Collector):
    """agents/hot_key_counters.py: what this worker's detector and router did. The flag count
    keeps the name the rules and dashboard use, labelled by the topic whose keys it counts."""

    def __init__(self, counters: HotKeyCounters) -> None:
        self.counters = counters

    def collect(self) -> Iterator[Metric]:
        flagged = CounterMetricFamily(
            "notify_hot_keys_flagged",
            "Users this worker flagged hot (their partition above twice the mean rate)",
            labels=["topic"],
        )
        flagged.add_metric([REQUESTS], self.counters.flags_raised)
        yield flagged
        events = CounterMetricFamily(
            "notify_hot_key_events",
            "Hot-key detector and router events: evaluations, flags renewed, cleared and "
            "adopted, deliveries sent under a salted key, bad flag records",
            labels=["event"],
        )
        for name, count in self.counters.as_dict().items():
            if name != "flags_raised":
                events.add_metric([name], count)
        yield events


class BreakerStates(Collector):
    def __init__(self, providers: ProviderRegistry) -> None:
        self.providers = providers

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "notify_circuit_breaker_state",
            "1 for the state each circuit breaker is in (closed, open, half_open), 0 for the "
            "others",
            labels=["breaker", "state"],
        )
        for breaker, current in sorted(self.providers.breaker_states().items()):
            for state in BREAKER_STATES:
                family.add_metric([breaker, state], 1.0 if state == current else 0.0)
        yield family


class CampaignProgress(Collector):
    def __init__(self, tables: Tables, clock: Callable[[], float] = time.time) -> None:
        self.tables = tables
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        users = GaugeMetricFamily(
            "notify_campaign_users",
            "Users a campaign's scans read (scanned), matched (targeted), sent a request "
            "(enqueued) or skipped, on this worker's partitions",
            labels=["campaign", "stage"],
        )
        scans = GaugeMetricFamily(
            "notify_campaign_partitions",
            "A campaign's partition scans by state (scheduled, running, done, cancelled)",
            labels=["campaign", "state"],
        )
        outcomes = GaugeMetricFamily(
            "notify_campaign_notifications",
            "A campaign's notifications by outcome (delivered, failed, rejected)",
            labels=["campaign", "outcome"],
        )
        shown: set[str] = set()
        totals: Counter[tuple[str, str]] = Counter()
        states: Counter[tuple[str, str]] = Counter()
        oldest = self.clock() - CAMPAIGN_SHOWN_AFTER_FINISH_SECONDS
        try:
            for campaign, _partition, scan in campaign_progress.entries(
                self.tables.campaign_progress
            ):
                if scan.get("finished_at", oldest + 1) < oldest:
                    continue
                shown.add(campaign)
                states[campaign, scan["state"]] += 1
                for stage in ("scanned", "targeted", "enqueued"):
                    totals[campaign, stage] += scan[stage]
                totals[campaign, "skipped"] += sum(scan["skipped"].values())
            counted: Counter[tuple[str, str]] = Counter()
            for campaign, _partition, counts in campaign_progress.entries(
                self.tables.campaign_outcomes
            ):
                if campaign in shown:
                    counted[campaign, "delivered"] += counts["delivered"]
                    counted[campaign, "failed"] += counts["failed"]
                    counted[campaign, "rejected"] += sum(counts["rejected"].values())
        except Exception:  # tables not ready (recovery): this scrape shows no campaigns
            log.debug("campaign tables not readable yet", exc_info=True)
            yield from (users, scans, outcomes)
            return
        for (campaign, stage), count in sorted(totals.items()):
            users.add_metric([campaign, stage], count)
        for (campaign, state), count in sorted(states.items()):
            scans.add_metric([campaign, state], count)
        for (campaign, outcome), count in sorted(counted.items()):
            outcomes.add_metric([campaign, outcome], count)
        yield from (users, scans, outcomes)
