"""``/healthz`` and ``/readyz``: what the Kubernetes probes of the chart (helm/notify) ask.

Alive (``/healthz``, the liveness and startup probes): the event loop answers (a blocked loop
does not, and the probe's timeout restarts the pod) and every agent runs: it is started and not
stopping, its supervisor runs, and none of its actors has stayed crashed past
``STUCK_AFTER_SECONDS`` (a crash the supervisor replaces within its back-off is not a reason to
restart the pod; one it no longer replaces is).

Ready (``/readyz``, the readiness probe): this worker's consumer holds its partitions for the
current group generation and their tables are recovered (Faust's ``app.tables.actives_ready``,
cleared at every rebalance start and set once the actives are restored and the streams resume;
``app.rebalancing`` from the revoke until then). A worker that owns no partition (more workers
than partitions) is ready once the group has assigned it nothing: it answers table routes by
redirecting and would otherwise block every rolling update. Both answer JSON saying why.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.exceptions import ConsumerNotStarted
from faust.web import Request, Response, View

from agents.supervision import RestartingSupervisor
from streams.faust_types import Agent

UNAVAILABLE = 503


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reasons: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {"ok": self.ok, "reasons": self.reasons, **self.detail}


def agent_faults(agents: Iterable[Agent], now: float) -> list[str]:
    """Why an agent does not run, one line per agent that does not (empty: all run)."""
    faults: list[str] = []
    for agent in agents:
        name = agent.name
        supervisor = agent.supervisor
        if not agent.started:
            faults.append(f"agent {name} not started")
        elif agent.crashed:
            faults.append(f"agent {name} crashed: {agent.crash_reason!r}")
        elif agent.should_stop:
            faults.append(f"agent {name} stopping")
        elif supervisor is None or not supervisor.started:
            faults.append(f"agent {name} has no running supervisor")
        elif supervisor.crashed or supervisor.should_stop:
            faults.append(f"agent {name}'s supervisor stopped")
        elif isinstance(supervisor, RestartingSupervisor):
            faults.extend(
                f"agent {name}: actor {actor} crashed and not replaced"
                for actor in supervisor.stuck_actors(now)
            )
    return faults


def liveness(app: faust.App, now: float) -> Verdict:
    agents: list[Agent] = list(app.agents.values())
    faults = agent_faults(agents, now)
    return Verdict(not faults, faults, {"agents": len(agents)})


def readiness(app: faust.App) -> Verdict:
    reasons: list[str] = []
    try:
        partitions = len(app.consumer.assignment())
    except ConsumerNotStarted:  # the web server starts before the consumer
        partitions = 0
        reasons.append("consumer not started")
    if app.in_recovery:
        reasons.append("restoring tables from their changelogs")
    elif app.rebalancing:
        reasons.append("rebalancing: partitions not assigned yet")
    elif not app.tables.actives_ready and not reasons:
        reasons.append("waiting for the first partition assignment")
    detail = {"partitions": partitions, "generation": app.consumer_generation_id}
    return Verdict(not reasons, reasons, detail)


def register_views(app: faust.App) -> None:
    @app.page("/healthz")
    class HealthView(View):
        async def get(self, request: Request) -> Response:
            return answer(self, liveness(app, time.monotonic()))

    @app.page("/readyz")
    class ReadyView(View):
        async def get(self, request: Request) -> Response:
            return answer(self, readiness(app))


def answer(view: View, verdict: Verdict) -> Response:
    return view.json(verdict.body(), status=200 if verdict.ok else UNAVAILABLE)
