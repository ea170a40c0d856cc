"""Hot-key counters: what the detector and the router did in this worker.

Plain ints in one typed object, like ``agents/counters.py``, so the metrics work can export
each field as one ``notify_hot_key_*`` series without touching the code that counts. The hot
path bumps only ``salted_deliveries``, and only for a flagged user's deliveries.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass
class HotKeyCounters:
    evaluations: int = 0  # rounds of the rule (one per NOTIFY_HOT_KEY_EVALUATE_SECONDS)
    flags_raised: int = 0  # users this worker flagged
    flags_renewed: int = 0  # leases this worker renewed on still-hot users
    flags_cleared: int = 0  # flags this worker cleared once the user cooled down
    flags_adopted: int = 0  # live flags taken over with a partition after a rebalance
    salted_deliveries: int = 0  # deliveries produced under a salted key `user_id#n`
    records_read: int = 0  # records read from hot-keys and hot-keys.rates
    bad_records: int = 0  # of them, dead-lettered to hot-keys.dlq

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def reset(self) -> None:
        """For tests: counters are process-wide."""
        for f in fields(self):
            setattr(self, f.name, 0)


HOT_KEYS = HotKeyCounters()
