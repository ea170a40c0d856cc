"""Global provider send rates: every send takes a token from its provider's bucket first.

The bucket is shared by every worker through Redis (``providers/token_bucket.py``), keyed by
provider and credential, so N workers together send at the configured rate, not N times it.
A send that finds no token waits: its lane slot stays taken, the lane stops taking records,
its stream buffer fills and Faust pauses its partitions, so the backlog waits in Kafka. Nothing
is dropped and nothing spins.

Leases: a worker takes ``NOTIFY_RATE_LEASE_SECONDS`` worth of tokens (at least one) per Redis
call, of the rate or of twice its own recent use if less, and hands them out locally; a lease
not used within a second is dropped, so tokens granted in one second cannot be spent on top of
the next second's. Together the workers may therefore send one lease each above the bucket
over a window: the price of not paying a Redis round trip per send (measured in the README).

Redis unreachable (or no ``NOTIFY_REDIS_URL``): each worker uses a bucket of its own at the
configured rate divided by the number of workers in the consumer group (``live_workers``,
counted from the last partition assignment), logs one warning per outage, and goes back to
the shared bucket once a call succeeds again (tried at most once a second meanwhile). A
fallback's bucket starts empty: the shared one may have just granted its burst.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any

from mode import Service
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from config.settings import Settings
from providers.base import ProviderName, ThrottledError
from providers.breaker import CircuitOpenError
from providers.token_bucket import BucketShape, Grant, LocalBucket, SharedBucket

log = logging.getLogger(__name__)

LEASE_TTL_SECONDS = 1.0
# A waiting send looks again at least this often, so another worker's throttle, a raised rate
# or Redis coming back is seen within it.
MAX_POLL_SECONDS = 0.5
RETRY_REDIS_SECONDS = 1.0
# A redis call that has not answered in this long is treated as Redis being down: sends go on
# at the local share instead of stalling behind a dead connection.
REDIS_TIMEOUT_SECONDS = 0.25
# Connecting and loading the script at start may take longer than one call (a busy machine).
WARM_UP_SECONDS = 5.0
FLOOR_SHARE = 0.01  # a throttle never cuts a provider below 1 % of its configured rate
# A webhook's 429 comes from one subscriber's endpoint, not from a provider every send shares:
# the delivery still waits out its Retry-After in the retry tier (agents/failure_plan.py), but
# cutting the rate of every subscriber's webhooks would let one slow endpoint hold up the rest.
SUBSCRIBER_ENDPOINTS = frozenset({ProviderName.WEBHOOK})


def configured_rate(settings: Settings, provider: str) -> float:
    rates: Mapping[str, float] = {
        ProviderName.APNS: settings.rate_apns_per_second,
        ProviderName.FCM: settings.rate_fcm_per_second,
        ProviderName.SMTP: settings.rate_smtp_per_second,
        ProviderName.SMS: settings.rate_sms_per_second,
        ProviderName.WEBHOOK: settings.rate_webhook_per_second,
    }
    return rates.get(provider, 0.0)


def bucket_key(settings: Settings, provider: str) -> str:
    """Provider limits are per account: two deployments sending with one credential share it."""
    credentials: Mapping[str, str] = {
        ProviderName.APNS: f"{settings.apns_team_id}.{settings.apns_key_id}",
        ProviderName.FCM: settings.fcm_project_id,
        ProviderName.SMTP: f"{settings.smtp_username}@{settings.smtp_host}:{settings.smtp_port}",
        ProviderName.SMS: settings.sms_account_sid,
    }
    return f"notify:bucket:{provider}:{credentials.get(provider, '')}"


@dataclass
class LimiterCounters:
    """Per provider, cheap ints (one add per send), exported as ``notify_*`` series later."""

    tokens_taken: int = 0
    leases: int = 0  # bucket calls that granted tokens
    waits: int = 0  # bucket calls that granted none: a send waited
    wait_seconds: float = 0.0
    throttles: int = 0  # 429-type answers reported to the bucket


class SharedState:
    """Whether the shared buckets are reachable; logs one warning per outage."""

    def __init__(self, bucket: SharedBucket | None, clock: Callable[[], float]) -> None:
        self.bucket = bucket
        self.down_since: float | None = None
        self.redis_errors = 0
        self._retry_at = 0.0
        self._clock = clock

    @property
    def usable(self) -> bool:
        return self.bucket is not None and (
            self.down_since is None or self._clock() >= self._retry_at
        )

    def failed(self, exc: BaseException, local_share: str) -> None:
        self.redis_errors += 1
        self._retry_at = self._clock() + RETRY_REDIS_SECONDS
        if self.down_since is None:
            self.down_since = time.time()
            log.warning(
                "Redis unreachable (%s: %s): provider rates fall back to this worker's share "
                "(%s) until it answers again",
                type(exc).__name__,
                exc,
                local_share,
            )

    def answered(self) -> None:
        if self.down_since is not None:
            log.warning(
                "Redis answers again after %.1fs: shared provider buckets resumed",
                time.time() - self.down_since,
            )
            self.down_since = None


class ProviderLimiter:
    """One provider's tokens in this worker: leases from the shared bucket, or the local one."""

    def __init__(
        self,
        key: str,
        shape: BucketShape,
        lease_seconds: float,
        shared: SharedState,
        live_workers: Callable[[], int],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.key = key
        self.shape = shape
        self.lease_seconds = lease_seconds
        self.shared = shared
        self.rate = shape.rate  # as the bucket last said
        self.counters = LimiterCounters()
        self._live_workers = live_workers
        self._clock = clock
        self._workers = 1
        self._local = LocalBucket(shape, clock())
        self._on_shared = shared.bucket is not None
        self._leased = 0
        self._lease_granted = 0  # the last lease's size, and when it was granted
        self._lease_at = 0.0
        self._lease_until = 0.0
        self._refill = asyncio.Lock()

    @property
    def workers(self) -> int:
        return self._workers

    @property
    def local_rate(self) -> float:
        return self._local.rate

    async def acquire(self) -> None:
        """Returns once this send may go. Waiters queue on one refill lock (first come, first
        served), so one of them at a time asks the bucket and the rest wait without spinning."""
        while True:
            if self._leased > 0 and self._clock() < self._lease_until:
                self._leased -= 1
                self.counters.tokens_taken += 1
                return
            async with self._refill:
                if self._leased > 0 and self._clock() < self._lease_until:
                    continue
                grant = await self._take(self._lease_size())
                self.rate = grant.rate
                if grant.granted:
                    self.counters.leases += 1
                    self._leased = self._lease_granted = grant.granted
                    self._lease_at = self._clock()
                    self._lease_until = self._lease_at + LEASE_TTL_SECONDS
                    continue
                pause = min(grant.wait, MAX_POLL_SECONDS)
                self.counters.waits += 1
                self.counters.wait_seconds += pause
                await asyncio.sleep(pause)

    def _lease_size(self) -> int:
        """``lease_seconds`` of the rate, or of twice what this worker used since its last
        lease if that is less: a worker with a small share of a busy provider (one of many)
        then leases what it will spend within the lease's second, not tokens it would drop
        while the others wait (doubling lets a worker whose traffic grows catch up fast)."""
        wanted = self.rate
        if self._lease_granted:
            used = self._lease_granted - self._leased
            elapsed = self._clock() - self._lease_at
            if elapsed > 0:
                wanted = min(wanted, 2 * used / elapsed)
        return max(1, int(wanted * self.lease_seconds))

    async def throttled(self, retry_after: float | None) -> None:
        """The provider said slow down: no lease survives it, and the bucket (shared when
        reachable, the local one always, so a fallback starts from it) is cut and shut."""
        self._leased = 0
        self.counters.throttles += 1
        wait = retry_after or 0.0
        grant = self._local.throttle(wait, self._clock())
        if self.shared.usable and self.shared.bucket is not None:
            try:
                grant = await self.shared.bucket.throttle(self.key, self.shape, wait)
            except (RedisError, OSError, TimeoutError) as exc:
                self.shared.failed(exc, self._share())
            else:
                self.shared.answered()
        if grant.rate < self.rate:
            log.warning(
                "%s throttled the sends: rate %.1f/s -> %.1f/s, no send for %.1fs",
                self.key,
                self.rate,
                grant.rate,
                grant.wait,
            )
        self.rate = grant.rate

    async def _take(self, wanted: int) -> Grant:
        if self.shared.usable and self.shared.bucket is not None:
            try:
                grant = await self.shared.bucket.take(self.key, self.shape, wanted)
            except (RedisError, OSError, TimeoutError) as exc:
                self.shared.failed(exc, self._share())
                if self._on_shared:
                    self._on_shared = False
                    self._local.drain(self._clock())
            else:
                self.shared.answered()
                self._on_shared = True
                return grant
        self._reshape()
        return self._local.take(wanted, self._clock())

    def _reshape(self) -> None:
        workers = max(1, self._live_workers())
        if workers != self._workers:
            self._workers = workers
            self._local.reshape(self.shape.scaled(1 / workers))

    def _share(self) -> str:
        self._reshape()
        return f"{self.key} at {self._local.shape.rate:g}/s of {self.shape.rate:g}/s"

    def snapshot(self) -> dict[str, Any]:
        return {
            "configured_per_second": self.shape.rate,
            "current_per_second": round(self.rate, 3),
            "workers": self._workers,
            "local_share_per_second": round(self._local.shape.rate, 3),
            "local_current_per_second": round(self._local.rate, 3),
            "leased": self._leased,
            **asdict(self.counters),
        }


class ProviderRateLimits(Service):
    """The Redis client and one limiter per limited provider, opened and closed with the
    worker. ``live_workers`` counts the consumer group's members (app.py passes Faust's last
    assignment); it sets each worker's share when the shared buckets cannot be used."""

    def __init__(
        self,
        settings: Settings,
        live_workers: Callable[[], int] = lambda: 1,
        clock: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self._client: Redis | None = None
        self.shared = SharedState(None, clock)
        if settings.redis_url:
            # No retries inside the client and short timeouts: a dead Redis must cost a send
            # at most one quick failure, after which the local share takes over.
            self._client = Redis.from_url(
                settings.redis_url,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                retry=Retry(NoBackoff(), 0),
            )
            self.shared.bucket = SharedBucket(self._client)
        self.limiters: dict[str, ProviderLimiter] = {}
        for provider in ProviderName:
            rate = configured_rate(settings, provider)
            if rate > 0:  # 0: not limited
                shape = BucketShape(
                    rate,
                    settings.rate_burst_seconds,
                    settings.rate_recovery_per_second,
                    settings.rate_decrease_factor,
                    FLOOR_SHARE,
                )
                self.limiters[provider] = ProviderLimiter(
                    bucket_key(settings, provider),
                    shape,
                    settings.rate_lease_seconds,
                    self.shared,
                    live_workers,
                    clock,
                )

    async def on_start(self) -> None:
        if self.shared.bucket is None:
            return
        try:
            await asyncio.wait_for(self.shared.bucket.load(), WARM_UP_SECONDS)
        except (RedisError, OSError, TimeoutError) as exc:
            # Not fatal: the first send tries again and falls back if Redis is still away.
            log.warning("Redis not reachable at start (%s: %s)", type(exc).__name__, exc)

    async def on_stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    @asynccontextmanager
    async def slot(self, provider: str) -> AsyncIterator[None]:
        """``async with limits.slot(name): await send(...)``: waits for a token first, and
        reports a throttled answer (the error goes on to the caller unchanged)."""
        limiter = self.limiters.get(provider)
        if limiter is None:
            yield
            return
        await limiter.acquire()
        try:
            yield
        except CircuitOpenError:
            # The breaker refused the send (a ThrottledError too): it already keeps traffic
            # off the provider. Shutting the bucket as well would make every later send of it
            # wait for tokens in its lane slot, and so hold up the other providers' sends in
            # that lane until the breaker's trials (measured: 192 of 200 webhooks waited out
            # a 30 s FCM outage).
            raise
        except ThrottledError as exc:
            if provider not in SUBSCRIBER_ENDPOINTS:
                await limiter.throttled(exc.retry_after)
            raise

    def snapshot(self) -> dict[str, Any]:
        """For the web view: where the tokens come from and each provider's current rate."""
        if self.shared.bucket is None:
            mode = "local (no NOTIFY_REDIS_URL)"
        elif self.shared.down_since is not None:
            mode = "local (Redis unreachable)"
        else:
            mode = "shared"
        return {
            "mode": mode,
            "redis_down_since": self.shared.down_since,
            "redis_errors": self.shared.redis_errors,
            "providers": {name: lim.snapshot() for name, lim in self.limiters.items()},
        }
