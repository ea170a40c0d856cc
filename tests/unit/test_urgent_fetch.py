"""The urgent fetch loop's parts (patches/urgent_fetch.py): which partitions each loop plans,
where the urgent loop's requests go, and what goes first in the shared buffer."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka.client import ConnectionGroup
from aiokafka.structs import TopicPartition

from patches import pin, urgent_fetch
from patches.pin import UpstreamChanged
from patches.urgent_fetch import URGENT_CONNECTIONS, OwnConnections, only, put_first
from streams import topics

URGENT_TP = TopicPartition(topics.REQUESTS_HIGH, 0)
BULK_TP = TopicPartition("deliveries.email.low", 3)


@dataclass
class _Assignment:
    tps: frozenset[TopicPartition]
    states: dict[TopicPartition, str] = field(default_factory=dict)

    def state_value(self, tp: TopicPartition) -> str:
        return self.states[tp]


def test_each_loop_plans_only_its_own_partitions() -> None:
    assignment = _Assignment(frozenset({URGENT_TP, BULK_TP}), {URGENT_TP: "u", BULK_TP: "b"})
    seen: list[tuple[frozenset[TopicPartition], list[str]]] = []

    def planner(view: Any) -> Any:
        seen.append((view.tps, [view.state_value(tp) for tp in view.tps]))
        return [], {}, 0.2, False, []

    only(planner, lambda tp: tp.topic in topics.URGENT)(assignment)
    only(planner, lambda tp: tp.topic not in topics.URGENT)(assignment)

    assert seen == [(frozenset({URGENT_TP}), ["u"]), (frozenset({BULK_TP}), ["b"])]


def test_a_loop_filters_an_assignment_once_and_a_new_one_again() -> None:
    # aiokafka builds a new Assignment at each rebalance; one object's partitions never change.
    filtered: list[TopicPartition] = []

    def keep(tp: TopicPartition) -> bool:
        filtered.append(tp)
        return tp.topic in topics.URGENT

    planned = only(lambda view: ([], {}, 0.2, False, list(view.tps)), keep)
    first = _Assignment(frozenset({URGENT_TP, BULK_TP}))
    rounds = [planned(first)[4] for _ in range(3)]
    after_rebalance = _Assignment(frozenset({BULK_TP}))

    assert rounds == [[URGENT_TP]] * 3 and len(filtered) == 2
    assert planned(after_rebalance)[4] == [] and len(filtered) == 3


class _Client:
    def __init__(self) -> None:
        self.sent: list[tuple[int, str, object]] = []
        self.cluster = "the cluster"

    async def send(self, node_id: int, request: str, *, group: object) -> str:
        self.sent.append((node_id, request, group))
        return "answer"


async def test_the_urgent_loop_sends_on_connections_of_its_own() -> None:
    client = _Client()
    own: Any = OwnConnections(client, URGENT_CONNECTIONS)

    assert await own.send(1, "fetch") == "answer"
    await own.send(1, "join", group=ConnectionGroup.COORDINATION)

    assert client.sent == [
        (1, "fetch", URGENT_CONNECTIONS),
        (1, "join", ConnectionGroup.COORDINATION),
    ]
    assert own.cluster == "the cluster"  # everything else is the consumer's client


def test_urgent_records_go_first_in_the_shared_buffer() -> None:
    other_bulk = TopicPartition("deliveries.sms.normal", 0)
    records: OrderedDict[TopicPartition, str] = OrderedDict(
        [(BULK_TP, "b"), (URGENT_TP, "u"), (other_bulk, "n")]
    )

    put_first(records, frozenset(topics.URGENT))

    assert list(records) == [URGENT_TP, BULK_TP, other_bulk]


def test_off_installs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object) -> None:
        raise AssertionError("installed")

    monkeypatch.setattr(urgent_fetch, "tune_worker_consumers", refuse)
    urgent_fetch.install(False, topics.URGENT)


def test_a_changed_fetcher_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    real = pin.source_digest

    def digest(function: object) -> str:
        changed = getattr(function, "__name__", "") == "fetched_records"
        return "0" * 8 if changed else real(function)

    monkeypatch.setattr(pin, "source_digest", digest)
    with pytest.raises(UpstreamChanged, match="fetched_records"):
        urgent_fetch.install(True, topics.URGENT)
