"""Restarting crashed agents: always, counted, logged, with a back-off for a crash loop.

What faust-streaming 0.15.3 does by itself when an agent coroutine raises
(``Agent._execute_actor``): the actor is marked crashed (mode logs ``Crashed reason=...`` with
the traceback) and its supervisor is woken. The default supervisor (``app.conf.agent_supervisor``
= ``mode.OneForOneSupervisor``) then starts a replacement actor on the same stream, so the
agent does come back, but:

- it counts nothing, and logs the restart at INFO;
- its rate limit, 100 restarts per second, ends in ``SystemExit(1)`` raised in the supervisor's
  task, which crashes the worker: a crash loop takes every other agent down with it;
- a crash before the supervisor awaits its wake-up future (an actor that fails as it starts)
  finds no future to wake, and waits for the supervisor's 5-second poll.

:class:`RestartingSupervisor` keeps the replacement logic and fixes those three: every restart
is counted in ``FAILURES.agent_restarts`` and logged at ERROR; an actor that crashes again soon
after its restart waits a growing delay (up to ``MAX_BACKOFF_SECONDS``) instead of exhausting a
rate limit; and a wake-up that found no future is repeated until the supervisor takes it.
It also remembers when each actor crashed, so that the liveness probe (agents/health.py) can
tell a crash being handled from an actor that stays dead (``stuck_actors``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import faust
from mode import OneForOneSupervisor
from mode.types import ServiceT

from agents.counters import FAILURES
from streams.faust_types import Agent, AgentBody, Channel

log = logging.getLogger(__name__)

FIRST_BACKOFF_SECONDS = 0.1
MAX_BACKOFF_SECONDS = 10.0
# An actor that ran this long since its last restart is healthy again: no back-off next time.
HEALTHY_AFTER_SECONDS = 30.0
WAKEUP_RETRY_SECONDS = 0.05
# A crashed actor is replaced within its back-off plus one supervisor poll (5 s); one still
# crashed well after that is stuck, and the worker is no longer alive (agents/health.py).
STUCK_AFTER_SECONDS = 3 * MAX_BACKOFF_SECONDS


def agent_name(service: ServiceT) -> str:
    agent = getattr(service, "agent", None)
    return str(getattr(agent, "name", None) or service.label)


class RestartingSupervisor(OneForOneSupervisor):
    """``supervisor_strategy=`` for every agent of the app."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        # Per actor slot (its index): when it was last restarted and the delay it waited.
        self._restarted_at: dict[int, float] = {}
        self._backoff: dict[int, float] = {}
        # Per actor slot: when it was first seen crashed and not yet replaced.
        self._crashed_at: dict[int, float] = {}

    def wakeup(self) -> None:
        # Faust wakes the supervisor when an actor crashes: the moment the crash is known.
        self._note_crashes(time.monotonic())
        if self._please_wakeup is None and not self.should_stop:
            # The supervisor is between two waits (or not waiting yet): try again shortly, or
            # the crashed actor stays dead until the 5-second poll.
            self.loop.call_later(WAKEUP_RETRY_SECONDS, self._wakeup_if_crashed)
        super().wakeup()

    def _note_crashes(self, now: float) -> None:
        for service in self._services:
            index = self._index.get(service)
            if service.crashed and index is not None:
                self._crashed_at.setdefault(index, now)

    def stuck_actors(self, now: float) -> list[str]:
        """Actors crashed for longer than ``STUCK_AFTER_SECONDS`` without a replacement."""
        self._note_crashes(now)
        stuck: list[str] = []
        for service in self._services:
            crashed_at = self._crashed_at.get(self._index.get(service, -1), now)
            if service.crashed and now - crashed_at > STUCK_AFTER_SECONDS:
                stuck.append(agent_name(service))
        return stuck

    def _wakeup_if_crashed(self) -> None:
        if any(service.crashed for service in self._services):
            self.wakeup()

    async def restart_service(self, service: ServiceT) -> None:
        index = self._index[service]
        name = agent_name(service)
        reason = service.crash_reason
        if isinstance(reason, asyncio.CancelledError):
            # Faust "crashes" an actor whose task was cancelled while the agent keeps running
            # (``Restarting on rebalance``): not a failure, so neither counted nor backed off.
            log.info("agent %s was cancelled; restarting it", name)
            delay = 0.0
        else:
            now = time.monotonic()
            last = self._restarted_at.get(index)
            if last is not None and now - last < HEALTHY_AFTER_SECONDS:
                previous = self._backoff[index]
                delay = min(MAX_BACKOFF_SECONDS, max(FIRST_BACKOFF_SECONDS, 2 * previous))
            else:
                delay = 0.0
            FAILURES.agent_restarts[name] += 1
            log.error(
                "agent %s crashed (%r); restarting it%s (restart %d)",
                name,
                reason,
                f" in {delay:g}s" if delay else "",
                FAILURES.agent_restarts[name],
            )
        if delay:
            await asyncio.sleep(delay)
        if not isinstance(reason, asyncio.CancelledError):
            self._backoff[index] = delay
            self._restarted_at[index] = time.monotonic()
        if self.replacement is None:
            await service.restart()
            self._crashed_at.pop(index, None)
            return
        replacement = await self.replacement(service, index)
        replacement.supervisor = self
        self.insert(index, replacement)
        self._crashed_at.pop(index, None)
        # Started here, not at the next poll: a replacement that crashes at once is then seen
        # as crashed (started and not operational) instead of as "not started yet".
        await replacement.maybe_start()


def supervised_agent(app: faust.App, channel: Channel, name: str) -> Callable[[AgentBody], Agent]:
    """``app.agent`` with the restarting supervisor every agent of this app runs under."""
    agent: Callable[[AgentBody], Agent] = app.agent(
        channel, name=name, supervisor_strategy=RestartingSupervisor
    )
    return agent
