"""The in-process token bucket (the Redis script's twin; test_rate_limits.py runs these cases
against the script on a real redis-server too) and a limiter's leases and fallback."""

from __future__ import annotations

import asyncio
import logging

import pytest

from config.settings import Settings
from providers.base import ThrottledError
from providers.rate_limits import ProviderLimiter, ProviderRateLimits, SharedState
from providers.token_bucket import BucketShape, Grant, LocalBucket

SHAPE = BucketShape(rate=10, burst_seconds=1.0, recovery_per_second=0.05, decrease_factor=0.5,
                    floor=0.01)  # fmt: skip

# (operation, tokens wanted or Retry-After, now) -> (granted, wait, rate)
CASES: list[tuple[str, float, float, tuple[int, float, float]]] = [
    ("take", 5, 1000.0, (5, 0.0, 10.0)),  # starts full: capacity = 1 s of the rate
    ("take", 10, 1000.0, (5, 0.0, 10.0)),  # a partial grant: what the bucket holds
    ("take", 10, 1000.25, (2, 0.0, 10.0)),  # refilled 2.5 tokens in 0.25 s: whole ones only
    ("take", 1, 1000.25, (0, 0.05, 10.0)),  # half a token left: due in 0.05 s
    ("throttle", 2.0, 1000.3, (0, 2.0, 5.0)),  # halved, shut for the Retry-After
    ("throttle", 0.0, 1000.4, (0, 1.9, 5.0)),  # a second 429 within a second: no second cut
    ("take", 3, 1001.0, (0, 1.3, 5.0)),  # nothing before the Retry-After has passed
    ("take", 3, 1002.4, (0, 0.098, 5.05)),  # open again, empty, climbing back
    ("take", 30, 1003.4, (5, 0.0, 5.55)),  # +0.5/s per second of sending
    ("take", 30, 1010.0, (6, 0.0, 6.05)),  # idle time does not count towards recovery
]


def run_case(bucket: LocalBucket, op: str, arg: float, now: float) -> Grant:
    return bucket.take(int(arg), now) if op == "take" else bucket.throttle(arg, now)


def test_the_bucket_grants_refills_throttles_and_recovers() -> None:
    bucket = LocalBucket(SHAPE, 1000.0)
    for op, arg, now, (granted, wait, rate) in CASES:
        got = run_case(bucket, op, arg, now)
        assert (got.granted, got.wait, got.rate) == pytest.approx((granted, wait, rate), abs=1e-3)


def test_the_rate_climbs_back_to_the_configured_one_and_no_further() -> None:
    bucket = LocalBucket(SHAPE, 0.0)
    bucket.throttle(0.0, 0.0)
    rates = [bucket.take(1, t / 10).rate for t in range(1, 300)]
    assert rates == sorted(rates)
    assert rates[-1] == 10.0


def test_a_bucket_is_fresh_once_refilled_at_its_whole_rate_and_not_blocked() -> None:
    bucket = LocalBucket(SHAPE, 0.0)
    assert bucket.is_fresh(0.0)
    bucket.take(1000, 0.0)
    assert not bucket.is_fresh(0.5)
    assert bucket.is_fresh(SHAPE.burst_seconds)  # its capacity regained at 10 tokens/s
    bucket.throttle(0.0, 5.0)  # a cut rate recovers only as tokens are taken
    assert not bucket.is_fresh(100.0)


def test_a_throttle_never_cuts_below_the_floor() -> None:
    bucket = LocalBucket(SHAPE, 0.0)
    for second in range(20):
        grant = bucket.throttle(0.0, float(second))
    assert grant.rate == pytest.approx(10 * 0.01)


def test_a_new_share_keeps_the_throttled_fraction() -> None:
    bucket = LocalBucket(SHAPE, 0.0)
    bucket.throttle(0.0, 0.0)
    bucket.reshape(SHAPE.scaled(1 / 2))
    assert bucket.rate == pytest.approx(2.5)  # half of the halved rate


class FailingBucket:
    """A shared bucket whose Redis is gone: every call raises as redis-py does."""

    calls = 0

    async def take(self, *args: object, **kwargs: object) -> Grant:
        self.calls += 1
        raise ConnectionError("Connection refused")


async def test_without_redis_a_worker_keeps_to_its_share_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    shape = BucketShape(1000, 1.0, 0.05, 0.5, 0.01)
    failing = FailingBucket()
    shared = SharedState(failing, asyncio.get_running_loop().time)  # type: ignore[arg-type]
    limiter = ProviderLimiter("notify:bucket:sms:AC1", shape, 0.05, shared, lambda: 4)
    with caplog.at_level(logging.WARNING, logger="providers.rate_limits"):
        for _ in range(200):
            await limiter.acquire()
    assert limiter.workers == 4
    assert limiter.local_rate == 250.0
    assert failing.calls == 1  # tried again only after RETRY_REDIS_SECONDS
    warnings = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(warnings) == 1
    assert "250/s of 1000/s" in warnings[0].getMessage()


async def test_waiting_sends_queue_instead_of_spinning() -> None:
    shape = BucketShape(20, 0.05, 0.05, 0.5, 0.01)  # capacity 1: one token at a time
    limiter = ProviderLimiter("k", shape, 0.0, SharedState(None, lambda: 0.0), lambda: 1)
    await asyncio.gather(*(limiter.acquire() for _ in range(5)))
    # One bucket call per token plus one wait per token not yet due: no busy loop.
    assert limiter.counters.tokens_taken == 5
    assert limiter.counters.waits < 10


class RecordingBucket:
    """A shared bucket that grants whatever is asked, and remembers the asks."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    async def take(self, key: str, shape: BucketShape, wanted: int) -> Grant:
        self.asked.append(wanted)
        return Grant(wanted, 0.0, shape.rate)


async def test_a_lease_follows_what_the_worker_spends() -> None:
    now = [0.0]
    bucket = RecordingBucket()
    shape = BucketShape(10_000, 1.0, 0.05, 0.5, 0.01)
    shared = SharedState(bucket, lambda: now[0])  # type: ignore[arg-type]
    limiter = ProviderLimiter("k", shape, 0.05, shared, lambda: 1, clock=lambda: now[0])
    await limiter.acquire()  # the first lease: 0.05 s of the rate
    for _ in range(9):  # then 10 sends in the lease's second: 10/s of demand
        now[0] += 0.1
        await limiter.acquire()
    now[0] += 1.0  # the rest of the lease expires unused
    await limiter.acquire()
    assert bucket.asked == [500, 1]  # 2 x 10/s x 0.05 s rounds down to the minimum of one


async def test_a_webhook_429_is_one_subscribers_and_cuts_no_shared_rate() -> None:
    limits = ProviderRateLimits(
        Settings(rate_webhook_per_second=100, rate_sms_per_second=100), live_workers=lambda: 1
    )
    for provider in ("webhook", "sms"):
        with pytest.raises(ThrottledError):
            async with limits.slot(provider):
                raise ThrottledError(provider, "http_429", retry_after=0.0)
    counted = {name: view["throttles"] for name, view in limits.snapshot()["providers"].items()}
    assert counted["webhook"] == 0
    assert counted["sms"] == 1
    assert limits.snapshot()["mode"] == "local (no NOTIFY_REDIS_URL)"


class OnceThenGoneBucket(RecordingBucket):
    """A shared bucket that grants its first ask, then cannot be reached."""

    async def take(self, key: str, shape: BucketShape, wanted: int) -> Grant:
        if self.asked:
            raise ConnectionError("redis gone")
        return await super().take(key, shape, wanted)


async def test_a_fallback_from_the_shared_bucket_starts_empty() -> None:
    now = [0.0]
    shape = BucketShape(20, 1.0, 0.05, 0.5, 0.01)
    shared = SharedState(OnceThenGoneBucket(), lambda: now[0])  # type: ignore[arg-type]
    limiter = ProviderLimiter("k", shape, 0.05, shared, lambda: 2, clock=lambda: now[0])
    await limiter.acquire()  # the shared bucket's single-token lease
    now[0] += 1.0  # the lease lapses; the next take finds Redis gone

    async def sends_within(seconds: float) -> int:
        sent = 0
        deadline = now[0] + seconds
        while now[0] < deadline:
            task = asyncio.ensure_future(limiter.acquire())
            await asyncio.sleep(0)
            if task.done():
                sent += 1
                continue
            task.cancel()
            now[0] += 0.01
        return sent

    # The worker's share is 10/s. A local bucket full from the start would let 10 go at once
    # on top of what the shared bucket granted; an empty one fills at the share: ~10 in 1 s.
    assert await sends_within(0.25) <= 3
    assert limiter.local_rate == 10
