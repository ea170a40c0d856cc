"""Per-user entries split into buckets (tables/expiring.py), and the ledger and dedup tables
on top of them, over a plain mapping in place of the Faust table."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from tables import dedup, expiring, ledger


def _table() -> Any:
    return defaultdict(dict)  # what the Faust table is to these modules: default=dict


def test_a_recorded_delivery_is_sent_until_it_expires() -> None:
    table = _table()
    ledger.record_sent(table, "u1", "n1:email:1", "smtp", now=100.0, ttl=60.0)
    assert ledger.sent_by(table, "u1", "n1:email:1", now=159.0) is not None
    assert ledger.sent_by(table, "u1", "n1:email:1", now=161.0) is None
    assert ledger.sent_by(table, "u2", "n1:email:1", now=120.0) is None  # another user's


def test_a_claimed_key_names_its_record_until_it_expires() -> None:
    table = _table()
    dedup.claim(table, "u1", "pw-reset-77", "notification-requests:3:41", now=10.0, ttl=5.0)
    assert dedup.claim_of(table, "u1", "pw-reset-77", now=14.0) == "notification-requests:3:41"
    assert dedup.claim_of(table, "u1", "pw-reset-77", now=16.0) is None


def test_a_write_rewrites_one_bucket_of_the_users_entries() -> None:
    table = _table()
    for n in range(1600):
        ledger.record_sent(table, "u1", f"n{n}:push:1", "apns", now=float(n), ttl=10_000.0)
    sizes = [len(table[f"u1#{b}"]) for b in range(expiring.BUCKETS)]
    assert sum(sizes) == 1600
    assert max(sizes) < 1600 / expiring.BUCKETS * 1.5  # spread, not one value per user
    assert all(ledger.sent_by(table, "u1", f"n{n}:push:1", 1600.0) for n in range(1600))


def test_the_bucket_is_the_same_in_every_process() -> None:
    # crc32, not hash(): a restarted worker must find what the last one wrote.
    assert expiring.bucket_key("u1", "n1:email:1") == "u1#4"


def test_a_bucket_keeps_its_newest_entries_within_its_share_of_the_cap() -> None:
    table = _table()
    cap, share = 160, 160 // expiring.BUCKETS
    keys = (f"k{n}" for n in range(10_000))
    same_bucket = [k for k in keys if expiring.bucket_key("u1", k) == "u1#0"][: share + 3]
    for i, key in enumerate(same_bucket):
        expiring.put_entry(table, "u1", key, {"exp": 1e9 + i}, now=0.0, cap_per_owner=cap)
    assert len(table["u1#0"]) == share
    assert expiring.live_entry(table, "u1", same_bucket[-1], now=0.0) is not None
    assert expiring.live_entry(table, "u1", same_bucket[0], now=0.0) is None
