"""The delivery ledger's buckets, over a plain mapping in place of the Faust table."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from tables import ledger


def _table() -> Any:
    return defaultdict(dict)  # what the Faust table is to this module: default=dict


def test_a_recorded_delivery_is_sent_until_it_expires() -> None:
    table = _table()
    ledger.record_sent(table, "u1", "n1:email:1", "smtp", now=100.0, ttl=60.0)
    assert ledger.already_sent(table, "u1", "n1:email:1", now=159.0)
    assert not ledger.already_sent(table, "u1", "n1:email:1", now=161.0)
    assert not ledger.already_sent(table, "u2", "n1:email:1", now=120.0)  # another user's


def test_a_send_rewrites_one_bucket_of_the_users_deliveries() -> None:
    table = _table()
    for n in range(1600):
        ledger.record_sent(table, "u1", f"n{n}:push:1", "apns", now=float(n), ttl=10_000.0)
    sizes = [len(table[f"u1#{b}"]) for b in range(ledger.BUCKETS)]
    assert sum(sizes) == 1600
    assert max(sizes) < 1600 / ledger.BUCKETS * 1.5  # spread, not one value per user
    assert all(ledger.already_sent(table, "u1", f"n{n}:push:1", 1600.0) for n in range(1600))


def test_the_bucket_is_the_same_in_every_process() -> None:
    # crc32, not hash(): a restarted worker must find what the last one wrote.
    assert ledger.bucket_key("u1", "n1:email:1") == "u1#4"


def test_a_bucket_keeps_its_newest_entries_within_the_cap() -> None:
    table = _table()
    per_bucket = -(-ledger.MAX_DELIVERIES_PER_USER // ledger.BUCKETS)
    same_bucket = [
        d for d in (f"n{n}:sms:1" for n in range(40_000)) if ledger.bucket_key("u1", d) == "u1#0"
    ][: per_bucket + 10]
    for i, delivery_id in enumerate(same_bucket):
        ledger.record_sent(table, "u1", delivery_id, "sms", now=float(i), ttl=1e9)
    assert len(table["u1#0"]) == per_bucket
    assert ledger.already_sent(table, "u1", same_bucket[-1], 0.0)
    assert not ledger.already_sent(table, "u1", same_bucket[0], 0.0)
