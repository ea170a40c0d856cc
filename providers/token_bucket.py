"""Token buckets for provider send rates: one shared by every worker in Redis, and its
in-process twin for a worker on its own (no Redis configured, or Redis down).

Both are the same algorithm, a bucket that also adapts its rate (AIMD):
- it fills at the current rate up to ``burst`` seconds of it, and a take is granted as many
  whole tokens as it holds, up to what was asked (a worker leases a batch at a time);
- a throttle (the provider's 429 / QUOTA_EXCEEDED / TooManyRequests) empties it, shuts it until
  the Retry-After has passed, and multiplies the rate by a factor (once per second: the sends
  in flight with the first one get the same answer);
- while sends are being made the rate climbs back by a share of the configured rate per second
  (idle time does not count), up to the configured rate.

The shared one is a Lua script (``token_bucket.lua``), atomic on the Redis server and on the
server's clock, so every worker sees one bucket whatever its own clock says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

LUA_SOURCE = (Path(__file__).with_name("token_bucket.lua")).read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class BucketShape:
    """How one provider's bucket behaves (from the settings, see ``config/settings.py``)."""

    rate: float  # configured tokens per second
    burst_seconds: float
    recovery_per_second: float  # share of ``rate`` regained per second of sending
    decrease_factor: float
    floor: float  # lowest share of ``rate`` a throttle may cut to

    def scaled(self, share: float) -> BucketShape:
        """The same bucket for one worker's share of the rate (Redis unreachable)."""
        return BucketShape(
            self.rate * share,
            self.burst_seconds,
            self.recovery_per_second,
            self.decrease_factor,
            self.floor,
        )


@dataclass(frozen=True, slots=True)
class Grant:
    granted: int  # tokens taken (0: none were due)
    wait: float  # seconds until a token is due, or until the bucket opens again
    rate: float  # the bucket's current rate, tokens per second


class LocalBucket:
    """``token_bucket.lua`` in Python, for one worker. ``now`` is any monotonic clock."""

    def __init__(self, shape: BucketShape, now: float) -> None:
        self.shape = shape
        self.rate = shape.rate
        self.tokens = self._capacity()
        self.ts = now
        self.blocked = 0.0
        self.cut = -math.inf

    def _capacity(self) -> float:
        return max(1.0, self.rate * self.shape.burst_seconds)

    def reshape(self, shape: BucketShape) -> None:
        """A new share of the rate (the worker count changed); the throttle state stays, the
        current rate keeps its share of the configured one."""
        share = self.rate / self.shape.rate if self.shape.rate else 1.0
        self.shape = shape
        self.rate = shape.rate * share
        self.tokens = min(self.tokens, self._capacity())

    def drain(self, now: float) -> None:
        """Empty, filling from ``now``: a worker that falls back from the shared bucket must not
        add a full bucket of its own on top of what the shared one already let through."""
        self.tokens = 0.0
        self.ts = max(self.ts, now)

    def is_fresh(self, now: float) -> bool:
        """Whether it is, at ``now``, what a new bucket of its shape would be: refilled, at its
        whole rate, not blocked. Such a bucket can be dropped and made again when next needed,
        with no difference to anyone. (A cut rate counts as not fresh: it recovers only as
        tokens are taken.)"""
        if now < self.blocked or self.rate < self.shape.rate:
            return False
        return self.tokens + max(0.0, now - self.ts) * self.rate >= self._capacity()

    def take(self, wanted: int, now: float) -> Grant:
        base = self.shape.rate
        self.rate = min(self.rate, base)
        elapsed = max(0.0, now - self.ts)
        if self.rate < base:
            regained = base * self.shape.recovery_per_second * min(elapsed, 1)
            self.rate = min(base, self.rate + regained)
        self.tokens = min(self._capacity(), self.tokens + elapsed * self.rate)
        granted, wait = 0, 0.0
        if now < self.blocked:
            wait = self.blocked - now
        elif self.tokens >= 1:
            granted = min(wanted, math.floor(self.tokens))
            self.tokens -= granted
        else:
            wait = (1 - self.tokens) / self.rate
        self.ts = max(self.ts, now)
        return Grant(granted, max(wait, 0.0), self.rate)

    def throttle(self, retry_after: float, now: float) -> Grant:
        base = self.shape.rate
        self.rate = min(self.rate, base)
        self.tokens = min(self.tokens, self._capacity())
        if now - self.cut >= 1:
            self.rate = max(base * self.shape.floor, self.rate * self.shape.decrease_factor)
            self.cut = now
        self.tokens = 0.0
        self.blocked = max(self.blocked, now + retry_after)
        self.ts = max(now, self.blocked)
        return Grant(0, self.blocked - now, self.rate)


class SharedBucket:
    """The Redis side: one call of the script per lease or throttle. Raises whatever the
    client raises when Redis cannot be reached (the caller falls back)."""

    def __init__(self, client: Redis) -> None:
        # register_script runs EVALSHA and reloads the script by itself after a NOSCRIPT
        # (a restarted Redis has an empty script cache).
        self._client = client
        self._script = client.register_script(LUA_SOURCE)

    async def load(self) -> None:
        """Connects and loads the script ahead of the first send, which would otherwise pay the
        connect, a NOSCRIPT and the load within one call's short timeout."""
        await self._client.script_load(LUA_SOURCE)

    async def take(
        self, key: str, shape: BucketShape, wanted: int, now: float | None = None
    ) -> Grant:
        args: list[str | float] = ["take", shape.rate, shape.burst_seconds, wanted]
        args += [shape.recovery_per_second, 0, _now(now)]
        return _grant(await self._script(keys=[key], args=args))

    async def throttle(
        self, key: str, shape: BucketShape, retry_after: float, now: float | None = None
    ) -> Grant:
        args: list[str | float] = ["throttle", shape.rate, shape.burst_seconds, retry_after]
        args += [shape.decrease_factor, shape.floor, _now(now)]
        return _grant(await self._script(keys=[key], args=args))


def _now(now: float | None) -> str:
    """Tests pass a clock; workers leave it to the server's."""
    return "" if now is None else repr(now)


def _grant(reply: Any) -> Grant:
    granted, wait, rate = reply
    return Grant(int(granted), float(wait), float(rate))
