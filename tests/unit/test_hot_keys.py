"""The hot-key detector's pure core: the sketch's bounds, the window, the sustained-2x rule,
cool-down, bounded memory, the flags' wire form and key salting. Time is stepped, never slept."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from streams.heavy_hitters import SpaceSaving, WindowedSketch
from streams.hot_keys import (
    FlagChanges,
    HotKeyDetector,
    HotKeyFlag,
    decode_flag,
    flag_record,
    tombstone_record,
)
from streams.partitioning import partition_for
from streams.salting import (
    RoundRobinSalt,
    route_key,
    salt_for_delivery,
    salted_key,
    spread_key,
    spread_salts,
    unsalted_key,
)

PARTITIONS = 8
HOT = 3
BACKGROUND = 100  # records per second on every partition
WHALE = 300  # records per second from one account on partition HOT


def zipf_stream(n: int, keys: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    weights = [1 / (rank**1.1) for rank in range(1, keys + 1)]
    return [f"user-{i}" for i in rng.choices(range(keys), weights=weights, k=n)]


def test_space_saving_stays_within_its_bound_on_a_skewed_stream() -> None:
    stream = zipf_stream(200_000, 20_000)
    exact = Counter(stream)
    sketch = SpaceSaving(capacity=100)
    for key in stream:
        sketch.add(key)
    bound = len(stream) / sketch.capacity
    assert len(sketch) == 100
    assert sum(count for _, count, _ in sketch.items()) == len(stream)
    for key, count, error in sketch.items():
        assert exact[key] <= count <= exact[key] + error
        assert error <= bound
    tracked = {key for key, _, _ in sketch.items()}
    assert {key for key, true in exact.items() if true > bound} <= tracked
    top_estimated = sorted(tracked, key=lambda key: -sketch.count(key))[:5]
    assert top_estimated == [key for key, _ in exact.most_common(5)]


def test_windowed_counts_match_exact_within_the_bound_and_forget_old_buckets() -> None:
    window = WindowedSketch(capacity=50, buckets=6, bucket_seconds=10.0)
    stream = zipf_stream(60_000, 5_000, seed=3)
    for i, key in enumerate(stream):
        window.add(key, now=i / 1000)  # 60 s of traffic, one bucket per 10 s
    exact = Counter(stream)
    assert window.total(59.9) == len(stream)
    bound = len(stream) / window.capacity
    for entry in window.top(59.9, limit=20):
        assert entry.error <= bound
        assert entry.count - entry.error <= exact[entry.key] <= entry.count + bound
    assert window.top(59.9, limit=1)[0].key == exact.most_common(1)[0][0]
    # At 60 s the first bucket (0-10 s) leaves the window; at 120 s everything has.
    assert window.total(60.0) == len(stream) - 10_000
    assert window.rate(60.0) == pytest.approx(50_000 / 60)
    assert window.total(120.0) == 0
    assert window.top(120.0) == []
    assert window.counters() == 0


def test_memory_stays_bounded_with_100k_distinct_keys() -> None:
    window = WindowedSketch(capacity=64, buckets=6, bucket_seconds=10.0)
    for i in range(100_000):
        window.add(f"user-{i}", now=i / 1000)  # 100 s: the window turns over too
    assert window.counters() <= 6 * 64
    assert len(window._window) <= 6
    for bucket in window._window:
        assert len(bucket.sketch._heap) <= 4 * 64 + 1  # stale heap entries are pruned
    detector = HotKeyDetector(partitions=PARTITIONS)
    for i in range(100_000):
        detector.observe(i % PARTITIONS, f"user-{i}", now=i / 1000)
    held = sum(sketch.counters() for sketch in detector._sketches.values())
    assert held <= PARTITIONS * detector.buckets * detector.capacity


def simulate(
    detector: HotKeyDetector, start: int, end: int, whale: int, rng: random.Random
) -> dict[int, FlagChanges]:
    """Traffic from second ``start`` to ``end``, evaluating after each second."""
    changes: dict[int, FlagChanges] = {}
    for second in range(start, end):
        for partition in range(PARTITIONS):
            rate = BACKGROUND * 3 // 2 if partition == 5 else BACKGROUND  # warm, not hot
            for i in range(rate):
                detector.observe(
                    partition, f"u{partition}-{rng.randrange(1000)}", second + i / rate
                )
        for i in range(whale):
            detector.observe(HOT, "whale", second + i / whale)
        result = detector.evaluate(second + 1)
        if result.raised or result.cleared:
            changes[second + 1] = result
    return changes


def test_only_the_hot_partitions_hot_key_is_flagged_once_sustained() -> None:
    detector = HotKeyDetector(partitions=PARTITIONS, sustain_seconds=30.0)
    changes = simulate(detector, 0, 60, WHALE, random.Random(1))
    # Partition HOT runs at 400/s against a mean of 162.5/s from the first second, so it is
    # flagged after exactly sustain_seconds; partition 5 at 150/s (0.9x) never is.
    assert list(changes) == [31]
    (flag,) = changes[31].raised
    assert (flag.key, flag.partition, flag.flagged_at) == ("whale", HOT, 31)
    assert flag.rate == pytest.approx(WHALE * 31 / 60, rel=0.01)  # window not yet full
    assert flag.partition_rate > 2 * flag.mean_rate
    assert detector.flags() == {"whale": flag}


def trickle(detector: HotKeyDetector, seconds: int) -> list[HotKeyFlag]:
    """One user's request every 10 s on partition HOT, every other partition idle (what the
    storm benchmark's request topics carry once its bursts are read): evaluated each second."""
    raised: list[HotKeyFlag] = []
    for second in range(seconds):
        if second % 10 == 0:
            detector.observe(HOT, "straggler", float(second))
        raised.extend(detector.evaluate(second + 1.0).raised)
    return raised


def test_a_trickle_on_an_idle_topic_is_not_a_hot_partition() -> None:
    # 0.1/s against a mean of 0.0125/s is "8x the mean": only the floor tells it is no load.
    floored = HotKeyDetector(partitions=PARTITIONS, sustain_seconds=30.0, min_partition_rate=5.0)
    assert trickle(floored, 120) == []
    assert floored.flags() == {}
    unfloored = HotKeyDetector(partitions=PARTITIONS, sustain_seconds=30.0)
    assert [flag.key for flag in trickle(unfloored, 120)] == ["straggler"]


def test_a_hot_partition_above_the_floor_is_flagged_as_before() -> None:
    detector = HotKeyDetector(partitions=PARTITIONS, sustain_seconds=30.0, min_partition_rate=5.0)
    changes = simulate(detector, 0, 60, WHALE, random.Random(1))
    assert [flag.key for flag in changes[31].raised] == ["whale"]


def test_a_negative_floor_is_refused() -> None:
    with pytest.raises(ValueError, match="min_partition_rate"):
        HotKeyDetector(partitions=PARTITIONS, min_partition_rate=-1.0)


def test_a_brief_spike_is_not_flagged() -> None:
    detector = HotKeyDetector(partitions=PARTITIONS, sustain_seconds=30.0, buckets=1)
    rng = random.Random(2)
    # With a 10 s window the spike's partition cools below 2x the mean soon after it stops.
    changes = simulate(detector, 0, 20, WHALE, rng)
    changes |= simulate(detector, 20, 80, 0, rng)
    assert changes == {}
    assert detector.flags() == {}


def test_cool_down_clears_the_flag_with_a_tombstone() -> None:
    detector = HotKeyDetector(partitions=PARTITIONS, sustain_seconds=30.0, cooldown_seconds=60.0)
    rng = random.Random(4)
    simulate(detector, 0, 60, WHALE, rng)
    assert "whale" in detector.flags()
    # The whale stops at 60 s. The window drops whole 10 s buckets: its last one (50-60 s, 50/s
    # over the window, above the cool-down level of 0.25 x the 106/s mean) leaves at 110 s, and
    # the key must then stay cool for cooldown_seconds: cleared at 170 s.
    changes = simulate(detector, 60, 200, 0, rng)
    assert list(changes) == [170]
    assert changes[170].cleared == ("whale",)
    assert list(changes[170].records()) == [tombstone_record("whale")]
    assert detector.flags() == {}


def test_a_key_that_heats_up_again_during_cool_down_stays_flagged() -> None:
    detector = HotKeyDetector(partitions=PARTITIONS, sustain_seconds=30.0, cooldown_seconds=60.0)
    rng = random.Random(5)
    simulate(detector, 0, 60, WHALE, rng)
    simulate(detector, 60, 150, 0, rng)  # cooling since 110 s
    changes = simulate(
        detector, 150, 200, WHALE, rng
    )  # back at 150 s, above the cool-down level by ~156 s
    assert all(not change.cleared for change in changes.values())
    assert "whale" in detector.flags()


def test_a_flag_still_hot_is_renewed_before_its_lease_runs_out() -> None:
    detector = HotKeyDetector(partitions=PARTITIONS, sustain_seconds=10.0, lease_seconds=40.0)
    changes = simulate(detector, 0, 60, WHALE, random.Random(6))
    assert list(changes) == [11, 31, 51]  # flagged, then renewed each half lease
    first, renewed = changes[11].raised[0], changes[51].raised[0]
    assert renewed.flagged_at == first.flagged_at == 11
    assert renewed.expires_at == 91
    assert renewed.rate == pytest.approx(WHALE * 51 / 60, rel=0.01)
    assert not first.is_active(51) and renewed.is_active(51)


def test_flags_encode_for_a_compacted_topic() -> None:
    flag = HotKeyFlag("whale", HOT, 300.0, 400.0, 162.5, flagged_at=31.0, expires_at=331.0)
    key, value = flag_record(flag)
    assert key == b"whale"
    assert decode_flag(value) == flag
    assert b'"flagged_at":31.0' in value
    assert tombstone_record("whale") == (b"whale", None)
    assert flag.is_active(330.9) and not flag.is_active(331.0)
    changes = FlagChanges(raised=(flag,), cleared=("cold",))
    assert list(changes.records()) == [(b"whale", value), (b"cold", None)]


def test_plain_salting_can_collide_which_is_why_spread_salts_exist() -> None:
    # Independently hashed, 8 sub-keys of user-22 land on 3 partitions of 8.
    assert len({partition_for(salted_key("user-22", n, 8), PARTITIONS) for n in range(8)}) == 3
    assert salted_key("whale", 10, 8) == "whale#2"


def test_salting_spreads_a_flagged_key_over_every_partition_it_can() -> None:
    for user in [f"user-{i}" for i in range(200)] + ["whale"]:
        keys = [spread_key(user, n, 8, PARTITIONS) for n in range(8)]
        assert len({partition_for(key, PARTITIONS) for key in keys}) == 8, user
        assert {unsalted_key(key) for key in keys} == {user}
        fewer = {partition_for(spread_key(user, n, 4, PARTITIONS), PARTITIONS) for n in range(4)}
        assert len(fewer) == 4
    # More sub-keys than partitions: all partitions covered, and the salts stay distinct.
    salts = spread_salts("whale", 12, PARTITIONS)
    assert len(set(salts)) == 12
    assert {partition_for(f"whale#{salt}", PARTITIONS) for salt in salts} == set(range(8))


def test_deliveries_of_a_flagged_user_spread_and_each_keeps_its_sub_key() -> None:
    deliveries = [f"delivery-{i}" for i in range(1000)]
    keys = [route_key("whale", delivery, {"whale"}, PARTITIONS) for delivery in deliveries]
    spread = Counter(partition_for(key, PARTITIONS) for key in keys)
    assert len(spread) == PARTITIONS
    assert max(spread.values()) < 0.2 * len(deliveries)  # an even share is 0.125
    # Stable per delivery, so a retry keeps its sub-key; an unflagged user is never salted.
    assert keys == [route_key("whale", delivery, {"whale"}, PARTITIONS) for delivery in deliveries]
    assert route_key("minnow", "delivery-1", {"whale"}, PARTITIONS) == "minnow"
    assert {salt_for_delivery(delivery, 4) for delivery in deliveries} == {0, 1, 2, 3}


def test_round_robin_and_unsalting() -> None:
    salt = RoundRobinSalt(partitions=PARTITIONS, fanout=4)
    keys = [salt.next_key("a#b") for _ in range(5)]
    assert keys[4] == keys[0] and len(set(keys)) == 4
    assert {partition_for(key, PARTITIONS) for key in keys} == {
        partition_for(spread_key("a#b", n, 4, PARTITIONS), PARTITIONS) for n in range(4)
    }
    assert {unsalted_key(key) for key in keys} == {"a#b"}
    assert unsalted_key("whale") == "whale"
    assert unsalted_key("a#b") == "a#b"  # '#b' is not a salt: the user key is kept whole


@pytest.mark.parametrize(
    "build",
    [
        lambda: SpaceSaving(0),
        lambda: WindowedSketch(10, buckets=0),
        lambda: HotKeyDetector(partitions=0),
        lambda: HotKeyDetector(partitions=8, factor=1.0),
        lambda: HotKeyDetector(partitions=8, share=0.1, cooldown_factor=0.25),
        lambda: salted_key("whale", 1, 0),
        lambda: spread_salts("whale", 8, 0),
    ],
)
def test_nonsense_settings_are_refused(build: object) -> None:
    with pytest.raises(ValueError):
        build()  # type: ignore[operator]
