"""Every metric a worker exports, declared once: ``notify_*``, base units in the names,
histogram buckets that fit what they measure.

One object per app (``build_app``) with its own ``CollectorRegistry``: tests and several apps in
one process never collide in prometheus_client's global registry, and ``GET /metrics``
(agents/metrics_view.py) serves exactly this app's series.

Counted cheaply: a labelled child is looked up once and kept in a dict keyed by its label
values (``.labels()`` builds a tuple, validates and takes a lock on every call), so a count is a
dict hit and one ``inc()``. What Faust or the tables already keep (committed offsets, high
watermarks, lag, queue depth, campaign progress) and the failure counters of agents/counters.py
are read only when Prometheus scrapes (agents/metrics_collectors.py), never per record.

Words: a delivery is *sent* when it is handed to a provider (one per attempt) and *delivered*
when the provider accepted it (what a sandbox, or APNs, sees arrive); *failed* is one attempt
that failed, by error type. Later receipts (SendGrid's delivered, open, click, bounce) are
``notify_delivery_events_total`` by status, counted by the status agent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

from providers.base import (
    ConfigurationError,
    InvalidRecipientError,
    PermanentError,
    ProviderError,
    ThrottledError,
    TransientError,
)
from streams.deliveries import Delivery

# Latency from a request's creation: a few ms when idle, seconds under a backlog (34 s at p99
# for a campaign's low requests before they got their own topic), minutes to an hour through
# the retry tiers (e-mail waits 5 min, then 15, 30 and 60).
LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    900.0, 1800.0, 3600.0,
)  # fmt: skip
# One provider request: ~1 ms to a local sandbox, tens of ms to a real API, up to the 10 s
# provider timeout (NOTIFY_PROVIDER_TIMEOUT_SECONDS) and the webhook's own.
PROVIDER_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip

# The provider error vocabulary (providers/base.py) as a bounded label, most specific first.
_ERROR_TYPES: tuple[tuple[type[ProviderError], str], ...] = (
    (ThrottledError, "throttled"),
    (TransientError, "transient"),
    (InvalidRecipientError, "invalid_recipient"),
    (ConfigurationError, "configuration"),
    (PermanentError, "permanent"),
)

# No ``<counter>_created`` series beside every counter: in the text format Prometheus stores
# each as one more gauge series, doubling the series count for a figure nothing here reads.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream


def error_type(error: ProviderError) -> str:
    for cls, label in _ERROR_TYPES:
        if isinstance(error, cls):
            return label
    return "provider"


class _Children(dict[tuple[str, ...], Any]):
    """A metric's labelled children, each made once on first use."""

    def __init__(self, metric: Counter | Gauge | Histogram) -> None:
        super().__init__()
        self.metric = metric

    def __missing__(self, key: tuple[str, ...]) -> Any:
        child = self.metric.labels(*key)
        self[key] = child
        return child


class Metrics:
    """The hot-path half: what agents count as they go."""

    def __init__(self, prices_usd: Mapping[str, Mapping[str, float]] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # channel -> provider -> US dollars per message (SMS: per billed segment).
        self.prices = {c: dict(p) for c, p in (prices_usd or {}).items()}
        r = self.registry
        # --- throughput -------------------------------------------------------------------
        self.requests = Counter(
            "notify_requests_total",
            "Requests resolved by the intake, by priority and outcome (accepted or the "
            "rejection reason)",
            ["priority", "outcome"],
            registry=r,
        )
        self.received = Counter(
            "notify_notifications_received_total",
            "Deliveries fanned out from accepted requests, by channel",
            ["channel"],
            registry=r,
        )
        self.sent = Counter(
            "notify_notifications_sent_total",
            "Send attempts handed to a provider",
            ["channel", "provider"],
            registry=r,
        )
        self.delivered = Counter(
            "notify_notifications_delivered_total",
            "Deliveries a provider accepted",
            ["channel", "provider"],
            registry=r,
        )
        self.failed = Counter(
            "notify_notifications_failed_total",
            "Send attempts that failed, by the provider error type (throttled, transient, "
            "invalid_recipient, configuration, permanent)",
            ["channel", "provider", "error_type"],
            registry=r,
        )
        # --- latency ----------------------------------------------------------------------
        self.processing = Histogram(
            "notify_request_processing_seconds",
            "From a request's created_at to the intake's decision (fanned out or rejected)",
            ["priority"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.delivery_latency = Histogram(
            "notify_delivery_latency_seconds",
            "From a request's created_at to a provider accepting one of its deliveries",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.provider_latency = Histogram(
            "notify_provider_request_seconds",
            "One provider request, success or failure",
            ["provider"],
            buckets=PROVIDER_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "notify_queue_wait_seconds",
            "From a record's timestamp on its topic to a delivery lane taking it",
            ["queue"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        # --- providers --------------------------------------------------------------------
        self.rate_limit_hits = Counter(
            "notify_provider_rate_limit_hits_total",
            "Sends held back by a rate limit: the provider's (429, throttled) or our own "
            "token bucket",
            ["provider", "source"],
            registry=r,
        )
        self.invalid_tokens = Counter(
            "notify_invalid_tokens_total",
            "Push tokens a provider reported dead (unregistered), by platform",
            ["platform"],
            registry=r,
        )
        self.cost = Counter(
            "notify_delivery_cost_dollars_total",
            "Provider cost of accepted deliveries, from the price table NOTIFY_PRICES_USD",
            ["channel", "provider"],
            registry=r,
        )
        # --- outcomes and engagement ------------------------------------------------------
        self.events = Counter(
            "notify_delivery_events_total",
            "delivery-events folded into the status table, by status (sent, failed, "
            "delivered, opened, clicked, bounced, complained, ...)",
            ["channel", "status"],
            registry=r,
        )
        self.unsubscribes = Counter(
            "notify_unsubscribes_total",
            "Preference records that switched a channel off for a user",
            ["channel"],
            registry=r,
        )
        self.retries = Counter(
            "notify_retries_total",
            "Deliveries put on a retry tier (its nominal wait, seconds)",
            ["channel", "tier"],
            registry=r,
        )
        self.callbacks = Counter(
            "notify_callbacks_total",
            "Status callbacks to callers' callback URLs, by outcome (queued, posted, retried, "
            "dead_lettered)",
            ["outcome"],
            registry=r,
        )
        # --- lanes ------------------------------------------------------------------------
        self.in_flight = Gauge(
            "notify_lane_sends_in_flight",
            "Sends a deliver lane has started and not finished, by priority",
            ["priority"],
            registry=r,
        )
        # --- live inbox (agents/inbox_hub.py) -----------------------------------------------
        self.inbox_streams = Gauge(
            "notify_inbox_streams", "Live inbox streams open on this worker", registry=r
        )
        self.inbox_streams_dropped = Counter(
            "notify_inbox_streams_dropped_total",
            "Live inbox streams closed because their client read too slowly",
            registry=r,
        )
        self._requests = _Children(self.requests)
        self._received = _Children(self.received)
        self._sent = _Children(self.sent)
        self._delivered = _Children(self.delivered)
        self._failed = _Children(self.failed)
        self._processing = _Children(self.processing)
        self._delivery_latency = _Children(self.delivery_latency)
        self._provider_latency = _Children(self.provider_latency)
        self._queue_wait = _Children(self.queue_wait)
        self._events = _Children(self.events)
        self._cost = _Children(self.cost)
        self._callbacks = _Children(self.callbacks)

    # --- intake -------------------------------------------------------------------------
    def request_resolved(self, priority: str, outcome: str, created_at: float, now: float) -> None:
        self._requests[priority, outcome].inc()
        if created_at > 0:
            self._processing[(priority,)].observe(max(0.0, now - created_at))

    def fanned_out(self, deliveries: Iterable[Delivery]) -> None:
        for delivery in deliveries:
            self._received[(delivery.channel,)].inc()

    # --- delivery -----------------------------------------------------------------------
    def taken(self, queue: str, timestamp: float | None, now: float) -> None:
        if timestamp:
            self._queue_wait[(queue,)].observe(max(0.0, now - timestamp))

    def provider_answered(self, channel: str, provider: str, seconds: float) -> None:
        self._sent[channel, provider].inc()
        self._provider_latency[(provider,)].observe(seconds)

    def delivered_by(
        self, delivery: Delivery, provider: str, segments: int | None, now: float
    ) -> None:
        channel = delivery.channel
        self._delivered[channel, provider].inc()
        if delivery.requested_at > 0:
            self._delivery_latency[(channel,)].observe(max(0.0, now - delivery.requested_at))
        price = self.prices.get(channel, {}).get(provider, 0.0)
        if price:
            self._cost[channel, provider].inc(price * (segments or 1))

    def failed_by(self, channel: str, provider: str, error: ProviderError) -> None:
        kind = error_type(error)
        self._failed[channel, provider, kind].inc()
        if kind == "throttled":
            self.rate_limited(provider, "provider")

    def retried(self, channel: str, tier: float) -> None:
        self.retries.labels(channel, f"{tier:g}").inc()

    def invalid_token(self, platform: str) -> None:
        self.invalid_tokens.labels(platform).inc()

    def event_folded(self, channel: str | None, status: str) -> None:
        self._events[channel or "", status].inc()

    def callback(self, outcome: str) -> None:
        self._callbacks[(outcome,)].inc()

    def unsubscribed(self, channels: Iterable[str]) -> None:
        for channel in channels:
            self.unsubscribes.labels(channel).inc()

    # --- for the resilience work (token buckets, hot keys); breaker states are read at
    # scrape time from the providers (providers.base.ReportsBreakers) -------------------
    def rate_limited(self, provider: str, source: str, count: int = 1) -> None:
        """``source``: ``provider`` (it answered 429 / throttled) or ``bucket`` (ours)."""
        self.rate_limit_hits.labels(provider, source).inc(count)

    def watch_in_flight(self, priority: str, read: Callable[[], int]) -> None:
        """The lane's own count, read at scrape time (a lane restarted by its supervisor
        replaces the reader of the one it follows)."""
        self.in_flight.labels(priority).set_function(read)

    def watch_inbox_streams(self, read: Callable[[], int]) -> None:
        self.inbox_streams.set_function(read)
