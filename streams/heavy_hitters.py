"""Bounded-memory key counts over a sliding window: Space-Saving sketches in time buckets.

The hot-key detector (``streams/hot_keys.py``) must know which keys carry a partition's traffic
without a dict of every key it ever saw: a campaign alone brings 50,000 distinct users through one
worker, and a dict of them over a window grows with the traffic, not with what we want to know.

Space-Saving (Metwally, Agrawal, El Abbadi, "Efficient computation of frequent and top-k elements
in data streams", ICDT 2005) keeps ``capacity`` counters. A tracked key's counter is incremented;
an untracked key takes over the smallest counter, inheriting its count (recorded as the new key's
``error``) plus its own weight. After a stream of total weight N:

- every counter over-estimates its key by at most its ``error``, and ``error <= N / capacity``;
- every key whose true count exceeds ``N / capacity`` is tracked (it cannot have been evicted);
- the counts sum to exactly N.

A sliding window is ``buckets`` sketches of ``bucket_seconds`` each; the oldest bucket is dropped
as time moves on, so a key's window count is the sum of its per-bucket counts and its error the
sum of the per-bucket errors, still at most ``N_window / capacity``. An untracked key reads as 0,
an under-estimate by at most the same bound. Memory is ``buckets x capacity`` counters, whatever
the number of distinct keys. Time comes from the caller (``now`` in seconds), so tests step it.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field


class SpaceSaving:
    """One Space-Saving sketch: at most ``capacity`` counters, whatever the stream."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.total = 0
        self._counts: dict[str, int] = {}
        self._errors: dict[str, int] = {}
        # A min-heap of (count, key) with stale entries skipped on pop: finding the smallest
        # counter is O(log capacity) instead of a scan of every counter per new key. It is
        # rebuilt when stale entries outnumber live ones, so it stays O(capacity) too.
        self._heap: list[tuple[int, str]] = []

    def __len__(self) -> int:
        return len(self._counts)

    def add(self, key: str, weight: int = 1) -> None:
        self.total += weight
        if key in self._counts:
            self._counts[key] += weight
        elif len(self._counts) < self.capacity:
            self._counts[key] = weight
            self._errors[key] = 0
        else:
            smallest, victim = self._pop_min()
            del self._counts[victim]
            del self._errors[victim]
            self._counts[key] = smallest + weight
            self._errors[key] = smallest
        heapq.heappush(self._heap, (self._counts[key], key))
        if len(self._heap) > 4 * self.capacity:
            self._heap = [(count, k) for k, count in self._counts.items()]
            heapq.heapify(self._heap)

    def _pop_min(self) -> tuple[int, str]:
        while True:
            count, key = heapq.heappop(self._heap)
            if self._counts.get(key) == count:
                return count, key

    def count(self, key: str) -> int:
        """The key's estimated count (an over-estimate by at most ``error(key)``; 0 untracked)."""
        return self._counts.get(key, 0)

    def error(self, key: str) -> int:
        return self._errors.get(key, 0)

    def items(self) -> list[tuple[str, int, int]]:
        """(key, count, error) for every tracked key."""
        return [(key, count, self._errors[key]) for key, count in self._counts.items()]


@dataclass
class _Bucket:
    index: int  # floor(now / bucket_seconds)
    sketch: SpaceSaving
    total: int = 0


@dataclass(frozen=True)
class KeyCount:
    key: str
    count: int  # estimated over the window
    error: int  # the estimate exceeds the true count by at most this


@dataclass
class WindowedSketch:
    """Space-Saving over a sliding window of ``buckets`` x ``bucket_seconds``."""

    capacity: int
    buckets: int = 6
    bucket_seconds: float = 10.0
    _window: deque[_Bucket] = field(default_factory=deque)

    def __post_init__(self) -> None:
        if self.buckets < 1 or self.bucket_seconds <= 0:
            raise ValueError("a window needs at least one bucket of positive length")

    @property
    def span_seconds(self) -> float:
        return self.buckets * self.bucket_seconds

    def _advance(self, now: float) -> int:
        index = int(now // self.bucket_seconds)
        while self._window and self._window[0].index <= index - self.buckets:
            self._window.popleft()
        return index

    def add(self, key: str, now: float, weight: int = 1) -> None:
        index = self._advance(now)
        if not self._window or self._window[-1].index < index:
            self._window.append(_Bucket(index, SpaceSaving(self.capacity)))
        bucket = self._window[-1]  # a clock stepping back counts in the newest bucket
        bucket.sketch.add(key, weight)
        bucket.total += weight

    def total(self, now: float) -> int:
        """Exact number of records in the window ending at ``now``."""
        self._advance(now)
        return sum(bucket.total for bucket in self._window)

    def rate(self, now: float) -> float:
        """Records per second over the whole window span (quiet seconds count as quiet)."""
        return self.total(now) / self.span_seconds

    def count(self, key: str, now: float) -> KeyCount:
        self._advance(now)
        window = self._window
        return KeyCount(
            key,
            sum(b.sketch.count(key) for b in window),
            sum(b.sketch.error(key) for b in window),
        )

    def top(self, now: float, limit: int | None = None) -> list[KeyCount]:
        """Tracked keys by estimated window count, highest first."""
        self._advance(now)
        counts: dict[str, int] = {}
        errors: dict[str, int] = {}
        for bucket in self._window:
            for key, count, error in bucket.sketch.items():
                counts[key] = counts.get(key, 0) + count
                errors[key] = errors.get(key, 0) + error
        ranked = sorted(counts, key=lambda key: (-counts[key], key))
        return [KeyCount(key, counts[key], errors[key]) for key in ranked[:limit]]

    def counters(self) -> int:
        """Counters held now: at most ``buckets x capacity``."""
        return sum(len(bucket.sketch) for bucket in self._window)
