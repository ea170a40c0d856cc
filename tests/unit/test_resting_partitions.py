"""Which partitions a fetch round names (patches/resting_partitions.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from aiokafka.structs import TopicPartition

from patches import pin, resting_partitions
from patches.pin import UpstreamChanged
from patches.resting_partitions import awake_partitions, resting_until
from streams import topics
from streams.records import CHANNELS


@dataclass
class _State:
    """The fields of aiokafka's TopicPartitionState the rule reads."""

    position: int = 10
    highwater: int | None = 10
    timestamp: int | None = 1_000
    paused: bool = False
    has_valid_position: bool = True


@dataclass
class _Assignment:
    states: dict[TopicPartition, _State]

    @property
    def tps(self) -> frozenset[TopicPartition]:
        return frozenset(self.states)

    def state_value(self, tp: TopicPartition) -> _State:
        return self.states[tp]


def test_a_caught_up_partition_rests_from_its_last_answer() -> None:
    assert resting_until(_State(), rest_ms=100) == 1_100


@pytest.mark.parametrize(
    "state",
    [
        _State(position=9),  # records left to read
        _State(highwater=None),  # never answered
        _State(timestamp=None),
        _State(paused=True),  # the loop must see it to wait on its resume
        _State(has_valid_position=False),  # waiting for an offset reset
    ],
)
def test_a_partition_with_anything_to_do_never_rests(state: _State) -> None:
    assert resting_until(state, rest_ms=100) is None


def test_the_round_leaves_out_resting_partitions_and_wakes_for_the_first() -> None:
    bulk_caught_up = TopicPartition("deliveries.email.low", 0)
    bulk_later = TopicPartition("deliveries.email.low", 1)
    bulk_behind = TopicPartition("deliveries.email.low", 2)
    urgent = TopicPartition(topics.REQUESTS_HIGH, 0)
    assignment = _Assignment(
        {
            bulk_caught_up: _State(timestamp=1_000),
            bulk_later: _State(timestamp=1_040),
            bulk_behind: _State(position=3),
            urgent: _State(timestamp=1_000),
        }
    )

    awake, wake_in = awake_partitions(assignment, topics.URGENT, rest_ms=100, now_ms=1_050)

    assert awake == {bulk_behind, urgent}
    assert wake_in == pytest.approx(0.05)


def test_a_partition_whose_rest_is_over_is_named_again() -> None:
    tp = TopicPartition("user-preferences", 0)
    awake, wake_in = awake_partitions(
        _Assignment({tp: _State(timestamp=1_000)}), topics.URGENT, rest_ms=100, now_ms=1_100
    )
    assert awake == {tp} and wake_in is None


def test_every_topic_a_high_request_passes_is_urgent() -> None:
    assert set(topics.URGENT) == {
        topics.REQUESTS,
        topics.REQUESTS_BY_USER,
        topics.REQUESTS_HIGH,
    } | {topics.delivery_topic(channel, "high") for channel in CHANNELS}


def test_zero_installs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object) -> None:
        raise AssertionError("installed")

    monkeypatch.setattr(resting_partitions, "tune_worker_consumers", refuse)
    resting_partitions.install(0, topics.URGENT)


def test_a_changed_fetcher_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    real = pin.source_digest

    def digest(function: object) -> str:
        changed = getattr(function, "__name__", "") == "_get_actions_per_node"
        return "0" * 8 if changed else real(function)

    monkeypatch.setattr(pin, "source_digest", digest)
    with pytest.raises(UpstreamChanged, match="_get_actions_per_node"):
        resting_partitions.install(100, topics.URGENT)
