"""The cluster's view of hot keys: flags and rates folded from their topics, the cluster-wide
mean, a detector taking over flags after a rebalance, and which deliveries are salted."""

from __future__ import annotations

import msgspec
import pytest

from agents.hot_keys import saltable
from streams.deliveries import Delivery
from streams.hot_key_board import HotKeyBoard, PartitionRate, rate_record
from streams.hot_keys import HotKeyDetector, HotKeyFlag, flag_record, tombstone_record
from streams.records import InvalidRecord

NOW = 1_800_000_000.0


def flag(key: str, partition: int = 3, expires_at: float = NOW + 300) -> HotKeyFlag:
    return HotKeyFlag(key, partition, 30.0, 50.0, 10.0, NOW, expires_at)


def test_flags_fold_from_records_and_tombstones_and_expire_with_their_lease() -> None:
    board = HotKeyBoard(partitions=8)
    board.apply_flag(*flag_record(flag("user-1")), NOW)
    board.apply_flag(*flag_record(flag("user-2", expires_at=NOW + 10)), NOW)
    assert board.flagged == {"user-1", "user-2"}
    board.apply_flag(*tombstone_record("user-1"), NOW + 1)
    assert board.flagged == {"user-2"}
    board.refresh(NOW + 10)  # user-2's detector never renewed it: the lease ran out
    assert board.flagged == frozenset()
    assert board.flags(NOW + 10) == {}


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (None, b"{}", "needs a key"),
        (b"\xff", b"{}", "not UTF-8"),
        (b"user-1", b"\x00\x01", "malformed JSON"),
        (b"user-1", b'"a string"', "expected a JSON object"),
        (b"user-1", b'{"key": 5}', "key"),
        (b"user-1", b"[" * 3000 + b"]" * 3000, "depth limit exceeded"),
        (b"user-1", b'{"pad": "' + b"x" * 300_000 + b'"}', "larger than"),
        (b"user-9", msgspec.json.encode(flag("user-1")), "under the key"),
    ],
)
def test_a_bad_flag_record_is_refused_with_its_reason(
    key: bytes | None, value: bytes, reason: str
) -> None:
    board = HotKeyBoard(partitions=8)
    with pytest.raises(InvalidRecord, match=reason):
        board.apply_flag(key, value, NOW)
    assert board.flagged == frozenset()


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (b"3", None, "empty message"),
        (b"3", b'{"partition": 4, "rate": 1.0, "at": 0}', "under the key"),
        (b"9", b'{"partition": 9, "rate": 1.0, "at": 0}', "8 partitions"),
        (b"3", b'{"partition": 3, "rate": -1.0, "at": 0}', "negative"),
        (b"3", b'{"partition": 3, "rate": "fast", "at": 0}', "rate"),
    ],
)
def test_a_bad_rate_record_is_refused_with_its_reason(
    key: bytes, value: bytes | None, reason: str
) -> None:
    with pytest.raises(InvalidRecord, match=reason):
        HotKeyBoard(partitions=8).apply_rate(key, value)


def test_the_mean_covers_every_partition_own_rates_first_stale_ones_idle() -> None:
    board = HotKeyBoard(partitions=4)
    board.apply_rate(*rate_record(PartitionRate(0, 100.0, NOW)))  # ours too: ours wins
    board.apply_rate(*rate_record(PartitionRate(1, 20.0, NOW - 1)))  # another worker's
    board.apply_rate(*rate_record(PartitionRate(2, 500.0, NOW - 60)))  # its owner went quiet
    # partition 3: never heard of, idle
    assert board.mean_rate({0: 40.0}, NOW, max_age=5.0) == (40.0 + 20.0) / 4


def test_a_worker_sharing_the_mean_flags_what_its_own_share_alone_would_not() -> None:
    """This worker owns partitions 0-3 (10, 10, 10 and 13 deliveries/s, 8 of the 13 from one
    user); another owns 4-7. At 20/s there the mean is 15.4/s and 13/s is not hot; at 2/s there
    the mean is 6.4/s and partition 3 is above twice it."""
    detector = HotKeyDetector(partitions=8, bucket_seconds=1.0, buckets=5, sustain_seconds=0.0)
    for second in range(5):
        for partition, rate in ((0, 10), (1, 10), (2, 10), (3, 13)):
            for n in range(rate):
                key = "whale" if partition == 3 and n < 8 else f"u-{partition}-{second}-{n}"
                detector.observe(partition, key, NOW + second)
    now = NOW + 4.5
    busy_elsewhere = (10 + 10 + 10 + 13 + 4 * 20) / 8  # B's four partitions at 20/s
    assert detector.evaluate(now, mean=busy_elsewhere).raised == ()
    raised = detector.evaluate(now + 0.1, mean=(43 + 4 * 2) / 8).raised
    assert [f.key for f in raised] == ["whale"]


def test_a_new_owner_adopts_live_flags_of_its_partitions_and_forgets_revoked_ones() -> None:
    detector = HotKeyDetector(partitions=8, cooldown_seconds=0.0)
    assert detector.adopt(flag("whale", partition=3), NOW)
    assert not detector.adopt(flag("whale", partition=3), NOW)  # known already
    assert not detector.adopt(flag("old", expires_at=NOW - 1), NOW)  # expired
    # Nothing counted for it here: it is cool, and with no cool-down wait it is cleared.
    assert detector.evaluate(NOW + 1, mean=10.0).cleared == ("whale",)
    # The board shows the old flag until the tombstone is read back: not adopted again...
    assert not detector.adopt(flag("whale", partition=3), NOW + 1.5)
    # ... but a flag raised after the clear (by another owner meanwhile) is.
    later = msgspec.structs.replace(flag("whale", partition=3), flagged_at=NOW + 2)
    assert detector.adopt(later, NOW + 2)
    detector.observe(3, "whale", NOW)
    detector.forget({3})
    assert detector.flags() == {} and detector.partition_rates(NOW) == {}


def delivery(**changes: object) -> Delivery:
    fields: dict[str, object] = dict(
        delivery_id="n-1:webhook:ab",
        notification_id="n-1",
        user_id="user-1",
        channel="webhook",
        address="https://example.com/h",
        title="t",
        body="b",
        priority="normal",
    )
    return Delivery(**{**fields, **changes})  # type: ignore[arg-type]


def test_only_deliveries_whose_lane_state_is_not_the_users_are_salted() -> None:
    assert saltable(delivery())
    assert saltable(delivery(channel="email", address="a@example.com"))
    assert not saltable(delivery(channel="in_app"))  # the inbox is read per user
    assert not saltable(delivery(fallback_channel="sms"))  # counted on the user's partition
    assert not saltable(delivery(is_fallback=True))
