"""Hot-partition detection: the pure core of issue 11, part 2.

One account sending as much as a whole partition's other users holds every one of them behind it
on one worker. The detector watches per-partition record rates and per-partition heavy hitters
(``streams/heavy_hitters.py``, bounded memory) over one sliding window. A partition whose rate
stays above ``factor`` x the mean of all partitions for ``sustain_seconds`` flags its keys that
carry at least ``share`` of its traffic; a flag clears once the key's rate has stayed at or below
``cooldown_factor`` x the mean partition rate for ``cooldown_seconds``. The flag and clear levels
differ (hysteresis), so a key near the line does not flap between salted and unsalted routing.

Flags are ``HotKeyFlag`` records for a compacted topic (key = the user key, value = the flag, a
tombstone when cleared). Each carries ``expires_at``, a lease the detector renews while the key
stays hot, so a reader drops a flag whose detector died without writing its tombstone.

Salting a flagged key over sub-keys is ``streams/salting.py``. Nothing here does I/O or reads
a clock: callers pass ``now`` (seconds), so tests step time.
"""

from __future__ import annotations

from collections.abc import Container, Iterator
from dataclasses import dataclass, field

import msgspec

from streams.heavy_hitters import WindowedSketch


class HotKeyFlag(msgspec.Struct, frozen=True):
    """A key flagged hot: routers salt it over ``fanout`` sub-keys until ``expires_at``."""

    key: str
    partition: int
    rate: float  # the key's records per second over the window when flagged or renewed
    partition_rate: float
    mean_rate: float  # the mean partition rate it was compared with
    flagged_at: float  # epoch seconds, first flagged (kept across renewals)
    expires_at: float  # epoch seconds; a lease the detector renews, so a lost tombstone heals

    def is_active(self, now: float) -> bool:
        return now < self.expires_at


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(HotKeyFlag)


def flag_record(flag: HotKeyFlag) -> tuple[bytes, bytes]:
    """(key, value) for the compacted flags topic: compaction keeps each key's latest flag."""
    return flag.key.encode(), _encoder.encode(flag)


def tombstone_record(key: str) -> tuple[bytes, None]:
    """A cleared flag: a null value, which compaction eventually removes with the key."""
    return key.encode(), None


def decode_flag(value: bytes) -> HotKeyFlag:
    return _decoder.decode(value)


@dataclass(frozen=True)
class FlagChanges:
    """What one ``evaluate`` decided: flags to write (new or renewed) and keys to tombstone."""

    raised: tuple[HotKeyFlag, ...] = ()
    cleared: tuple[str, ...] = ()

    def records(self) -> Iterator[tuple[bytes, bytes | None]]:
        for flag in self.raised:
            yield flag_record(flag)
        for key in self.cleared:
            yield tombstone_record(key)


@dataclass
class HotKeyDetector:
    """Per-partition rates and heavy hitters over one window, and the sustained-2x rule.

    ``partitions`` is the topic's partition count: the mean is over all of them, so a partition
    this detector has never seen counts as idle rather than being left out of the mean.
    Memory: ``partitions x buckets x capacity`` counters, plus one entry per flagged key.
    """

    partitions: int
    capacity: int = 64  # counters per bucket: keys above 1/64 of a partition are always tracked
    buckets: int = 6
    bucket_seconds: float = 10.0
    factor: float = 2.0
    # A partition slower than this is never hot, whatever the mean: when nearly everything is
    # idle, a trickle is "2x the mean" without being a bottleneck, and salting it helps nobody.
    min_partition_rate: float = 0.0
    sustain_seconds: float = 30.0
    # A key is flagged at >= share x its partition's rate, so at > share x factor x the mean
    # (0.5x with these defaults) and cleared at <= cooldown_factor x the mean: half that.
    share: float = 0.25
    cooldown_factor: float = 0.25
    cooldown_seconds: float = 60.0
    lease_seconds: float = 300.0
    _sketches: dict[int, WindowedSketch] = field(default_factory=dict)
    _hot_since: dict[int, float] = field(default_factory=dict)
    _flags: dict[str, HotKeyFlag] = field(default_factory=dict)
    _cool_since: dict[str, float] = field(default_factory=dict)
    # Keys this detector cleared, and when: until its tombstone is read back, the shared board
    # still shows the old flag, which must not be adopted again (and then renewed: resurrected).
    _cleared_at: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ValueError(f"partitions must be >= 1, got {self.partitions}")
        if not 0 < self.share <= 1 or self.factor <= 1:
            raise ValueError("share must be in (0, 1] and factor above 1")
        if self.min_partition_rate < 0:
            raise ValueError("min_partition_rate must be >= 0")
        if not 0 <= self.cooldown_factor < self.share * self.factor:
            # A key could be cool the moment it is flagged: cleared, re-flagged, cleared...
            raise ValueError("cooldown_factor must be below share x factor (the flag level)")

    def observe(self, partition: int, key: str, now: float, weight: int = 1) -> None:
        sketch = self._sketches.get(partition)
        if sketch is None:
            sketch = WindowedSketch(self.capacity, self.buckets, self.bucket_seconds)
            self._sketches[partition] = sketch
        sketch.add(key, now, weight)

    def partition_rates(self, now: float) -> dict[int, float]:
        return {p: sketch.rate(now) for p, sketch in self._sketches.items()}

    def mean_rate(self, now: float) -> float:
        return sum(self.partition_rates(now).values()) / self.partitions

    def flags(self) -> dict[str, HotKeyFlag]:
        return dict(self._flags)

    def key_rate(self, partition: int, key: str, now: float) -> float:
        sketch = self._sketches.get(partition)
        return 0.0 if sketch is None else sketch.count(key, now).count / sketch.span_seconds

    def adopt(self, flag: HotKeyFlag, now: float) -> bool:
        """Take over a live flag another detector raised (this worker now owns its partition),
        so that it is renewed or cleared here; False if it is known already or has expired."""
        if flag.key in self._flags or not flag.is_active(now):
            return False
        if flag.flagged_at <= self._cleared_at.get(flag.key, float("-inf")):
            return False  # the flag this detector cleared, not yet gone from the board
        self._flags[flag.key] = flag
        return True

    def forget(self, partitions: Container[int]) -> None:
        """Drop what was counted on partitions this worker no longer owns, and their flags (the
        next owner adopts those; a lease ends the ones nobody does)."""
        for partition in [p for p in self._sketches if p in partitions]:
            del self._sketches[partition]
            self._hot_since.pop(partition, None)
        for key in [k for k, flag in self._flags.items() if flag.partition in partitions]:
            del self._flags[key]
            self._cool_since.pop(key, None)

    def evaluate(self, now: float, mean: float | None = None) -> FlagChanges:
        """Apply the rule at ``now``; call it every few seconds (more often changes nothing).

        ``mean``: the mean partition rate over every partition of the topic, when other workers
        count some of them (agents/hot_keys.py shares rates); by default this detector's own
        partitions over ``partitions``, the others counted idle."""
        rates = self.partition_rates(now)
        if mean is None:
            mean = sum(rates.values()) / self.partitions
        raised: list[HotKeyFlag] = []
        for partition, rate in rates.items():
            if mean > 0 and rate > self.factor * mean and rate >= self.min_partition_rate:
                self._hot_since.setdefault(partition, now)
            else:
                self._hot_since.pop(partition, None)
        for partition, since in self._hot_since.items():
            if now - since >= self.sustain_seconds:
                raised.extend(self._flag_top_keys(partition, rates[partition], mean, now))
        cleared = self._cool_down(mean, now)
        for key in [k for k, at in self._cleared_at.items() if now - at > self.lease_seconds]:
            del self._cleared_at[key]  # any copy of that flag has expired by now
        raised.extend(self._renew(rates, mean, now, skip={flag.key for flag in raised}))
        return FlagChanges(tuple(raised), tuple(cleared))

    def _flag_top_keys(
        self, partition: int, partition_rate: float, mean: float, now: float
    ) -> Iterator[HotKeyFlag]:
        sketch = self._sketches[partition]
        total = sketch.total(now)
        for entry in sketch.top(now):
            # The estimate minus its error is a lower bound on the true count: a key flagged
            # really carries the share, whatever the sketch's eviction history did to it.
            if entry.count - entry.error < self.share * total or entry.key in self._flags:
                continue
            flag = HotKeyFlag(
                key=entry.key,
                partition=partition,
                rate=entry.count / sketch.span_seconds,
                partition_rate=partition_rate,
                mean_rate=mean,
                flagged_at=now,
                expires_at=now + self.lease_seconds,
            )
            self._flags[entry.key] = flag
            yield flag

    def _cool_down(self, mean: float, now: float) -> list[str]:
        cleared = []
        for key, flag in list(self._flags.items()):
            if self.key_rate(flag.partition, key, now) <= self.cooldown_factor * mean:
                since = self._cool_since.setdefault(key, now)
                if now - since >= self.cooldown_seconds:
                    del self._flags[key]
                    del self._cool_since[key]
                    cleared.append(key)
                    self._cleared_at[key] = now
            else:
                self._cool_since.pop(key, None)
        return cleared

    def _renew(
        self, rates: dict[int, float], mean: float, now: float, skip: set[str]
    ) -> Iterator[HotKeyFlag]:
        """Re-publish a still-flagged key once half its lease has gone, with a fresh rate."""
        for key, flag in list(self._flags.items()):
            if key not in skip and flag.expires_at - now <= self.lease_seconds / 2:
                renewed = msgspec.structs.replace(
                    flag,
                    rate=self.key_rate(flag.partition, key, now),
                    partition_rate=rates.get(flag.partition, 0.0),
                    mean_rate=mean,
                    expires_at=now + self.lease_seconds,
                )
                self._flags[key] = renewed
                yield renewed
