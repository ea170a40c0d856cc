"""What every worker knows of the hot keys: the flags and partition rates read from two topics.

Each worker counts only the partitions it owns (``streams/hot_keys.py``), so two compacted topics
carry the rest, read whole by every worker (``agents/hot_keys.py``):

- ``hot-keys``: key = the user key, value = a ``HotKeyFlag``; a tombstone clears it. Compaction
  keeps each user's latest flag, so a worker starting up reads only the flags that matter.
- ``hot-keys.rates``: key = the partition number, value = a ``PartitionRate``, published by the
  partition's owner every few seconds. The mean partition rate the 2x rule compares with is the
  mean over every partition of the cluster, not over one worker's share.

This module folds both into memory (a few hundred flags at most, one rate per partition). Pure:
callers pass ``now``; records are checked here and a bad one raises ``InvalidRecord``, which the
reader dead-letters with its reason.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from streams.hot_keys import HotKeyFlag
from streams.records import InvalidRecord
from streams.wire import RecordDecoder


class PartitionRate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One partition's rate, as its owner measured it at ``at``."""

    partition: int
    rate: float  # deliveries fanned out per second over the detector's window
    at: float  # epoch seconds


# Under the size limit every topic's records have (a flag or a rate is a few hundred bytes).
_FLAGS = RecordDecoder(HotKeyFlag)
_RATES = RecordDecoder(PartitionRate)
_encoder = msgspec.json.Encoder()


def rate_record(rate: PartitionRate) -> tuple[bytes, bytes]:
    return str(rate.partition).encode(), _encoder.encode(rate)


def _text_key(key: bytes | None) -> str:
    if not key:
        raise InvalidRecord("a hot-keys record needs a key")
    try:
        return key.decode()
    except UnicodeDecodeError:
        raise InvalidRecord("a hot-keys record's key is not UTF-8") from None


class HotKeyBoard:
    """The flags and partition rates of the whole cluster, as far as this worker has read."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self._flags: dict[str, HotKeyFlag] = {}
        self._rates: dict[int, PartitionRate] = {}
        # The routers' view: a plain set of the user keys flagged and not expired, rebuilt by
        # ``refresh`` and on every change, so the hot path pays one set lookup per delivery.
        self.flagged: frozenset[str] = frozenset()

    def apply_flag(self, key: bytes | None, value: bytes | None, now: float) -> None:
        user_key = _text_key(key)
        if value is None:  # a tombstone: the flag was cleared
            self._flags.pop(user_key, None)
        else:
            flag = _FLAGS.decode(value)
            if flag.key != user_key:
                raise InvalidRecord(f"flag for {flag.key!r} under the key {user_key!r}")
            self._flags[user_key] = flag
        self.refresh(now)

    def apply_rate(self, key: bytes | None, value: bytes | None) -> None:
        partition_key = _text_key(key)
        if value is None:
            raise InvalidRecord("empty message: a partition rate cannot be cleared")
        rate = _RATES.decode(value)
        if partition_key != str(rate.partition) or not 0 <= rate.partition < self.partitions:
            raise InvalidRecord(
                f"rate of partition {rate.partition} under the key {partition_key!r} "
                f"({self.partitions} partitions)"
            )
        if rate.rate < 0:
            raise InvalidRecord(f"negative rate {rate.rate} for partition {rate.partition}")
        self._rates[rate.partition] = rate

    def refresh(self, now: float) -> None:
        """Forget expired flags (a detector that died never cleared them: its lease ends)."""
        for key in [k for k, flag in self._flags.items() if not flag.is_active(now)]:
            del self._flags[key]
        if self.flagged != self._flags.keys():
            self.flagged = frozenset(self._flags)

    def flags(self, now: float) -> dict[str, HotKeyFlag]:
        self.refresh(now)
        return dict(self._flags)

    def rates(self) -> dict[int, PartitionRate]:
        return dict(self._rates)

    def mean_rate(self, local: Mapping[int, float], now: float, max_age: float) -> float:
        """Mean over every partition: this worker's own rates where it has them, the shared
        ones elsewhere; a shared rate older than ``max_age`` (its owner died or lost it and the
        next one has published nothing yet) counts as idle, like a partition never heard of."""
        total = 0.0
        for partition in range(self.partitions):
            if partition in local:
                total += local[partition]
            elif (shared := self._rates.get(partition)) is not None and now - shared.at <= max_age:
                total += shared.rate
        return total / self.partitions
