"""What /healthz and /readyz conclude from the state of the agents, supervisors and tables."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import faust
from faust.exceptions import ConsumerNotStarted
from mode import Service

from agents import health
from agents.supervision import STUCK_AFTER_SECONDS, RestartingSupervisor


def running_agent(name: str, supervisor: Any) -> Any:
    return SimpleNamespace(
        name=name,
        started=True,
        crashed=False,
        crash_reason=None,
        should_stop=False,
        supervisor=supervisor,
    )


def running_supervisor() -> Any:
    return SimpleNamespace(started=True, crashed=False, should_stop=False)


def test_every_agent_running_is_alive() -> None:
    agents = [running_agent("a", running_supervisor()), running_agent("b", running_supervisor())]
    assert health.agent_faults(agents, now=0.0) == []


def test_an_agent_not_started_stopping_or_unsupervised_is_a_fault() -> None:
    not_started = running_agent("cold", running_supervisor())
    not_started.started = False
    stopping = running_agent("leaving", running_supervisor())
    stopping.should_stop = True
    orphan = running_agent("orphan", None)
    dead_supervisor = running_supervisor()
    dead_supervisor.crashed = True
    supervised_by_the_dead = running_agent("ghost", dead_supervisor)
    faults = health.agent_faults([not_started, stopping, orphan, supervised_by_the_dead], now=0.0)
    assert faults == [
        "agent cold not started",
        "agent leaving stopping",
        "agent orphan has no running supervisor",
        "agent ghost's supervisor stopped",
    ]


class Actor(Service):
    pass


def test_an_actor_crashed_and_not_replaced_past_the_back_off_is_stuck() -> None:
    actor = Actor()
    supervisor = RestartingSupervisor()
    supervisor.add(actor)
    actor._crashed.set()  # what mode's Service.crash() marks
    supervisor._note_crashes(100.0)  # the wake-up at the crash
    assert supervisor.stuck_actors(100.0 + STUCK_AFTER_SECONDS) == []
    assert supervisor.stuck_actors(100.0 + STUCK_AFTER_SECONDS + 1) == [actor.label]


def fake_app(**state: Any) -> Any:
    assignment = state.pop("assignment", set())

    def assigned() -> set[Any]:
        if assignment is None:
            raise ConsumerNotStarted("not yet")
        return set(assignment)

    defaults = {"in_recovery": False, "rebalancing": False, "consumer_generation_id": 3}
    return SimpleNamespace(
        consumer=SimpleNamespace(assignment=assigned),
        tables=SimpleNamespace(actives_ready=state.pop("actives_ready", True)),
        **{**defaults, **state},
    )


def test_ready_once_the_actives_are_recovered_outside_a_rebalance() -> None:
    verdict = health.readiness(fake_app(assignment={1, 2}))
    assert verdict.ok and verdict.body() == {
        "ok": True,
        "reasons": [],
        "partitions": 2,
        "generation": 3,
    }


def test_a_worker_the_group_gave_nothing_is_ready() -> None:
    # More workers than partitions: it must not block a rolling update.
    assert health.readiness(fake_app(assignment=set())).ok


def test_not_ready_before_the_consumer_starts_while_rebalancing_or_recovering() -> None:
    not_started = health.readiness(fake_app(assignment=None, actives_ready=False))
    assert not_started.reasons == ["consumer not started"]
    rebalancing = health.readiness(fake_app(rebalancing=True, actives_ready=False))
    assert rebalancing.reasons == ["rebalancing: partitions not assigned yet"]
    recovering = health.readiness(fake_app(in_recovery=True, rebalancing=True))
    assert recovering.reasons == ["restoring tables from their changelogs"]
    first = health.readiness(fake_app(actives_ready=False))
    assert first.reasons == ["waiting for the first partition assignment"]


def test_faust_clears_actives_ready_at_every_rebalance_start() -> None:
    # What readiness relies on in faust-streaming's TableManager.
    tables: Any = faust.App("health-test").tables
    assert tables.actives_ready is False
    tables.on_actives_ready()
    assert tables.actives_ready is True
    tables.on_rebalance_start()
    assert tables.actives_ready is False
