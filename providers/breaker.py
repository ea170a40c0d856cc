"""A circuit breaker per provider: a provider that fails most of its calls stops being called for
a while, then a few trial calls decide whether it is back (seed 000 §2).

Semantics (resilience4j's count-based breaker, which the seed configures): CLOSED keeps the
outcomes of the last ``window`` calls; once the window is full and at least ``failure_rate`` of
it failed, the breaker OPENS for ``open_seconds``; then it is HALF_OPEN and admits at most
``half_open_calls`` trial calls: a failure rate below the threshold among them closes it (with an
empty window), one at or above opens it again. Only transient and throttled failures count; an
invalid token or a refused message is an answer, so it counts as a success; a configuration error
or a cancelled send says nothing about the provider and is not counted at all.

Written here rather than taken from a library: ``purgatory``, ``aiobreaker`` and ``pybreaker``
all open on a run of *consecutive* failures (no failure rate over a sliding window), admit one
half-open call, not N, and read the wall clock themselves (pybreaker's async support is Tornado's),
so none gives the seed's parameters or a clock a test can step. The state machine is synchronous
and takes its clock: no lock is needed on one event loop, and tests step time by hand.

Outcomes of calls admitted before a state change (a send in flight when the breaker opened) are
ignored: each permit carries the generation it was admitted in. The same class serves the SMTP
provider's relay failover (providers/smtp.py), configured as "N consecutive failures, one probe".
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from yarl import URL

from config.settings import Settings
from providers.base import (
    ConfigurationError,
    OutboundMessage,
    Provider,
    ProviderError,
    ReportsBreakers,
    SendResult,
    ThrottledError,
    TransientError,
)

log = logging.getLogger(__name__)

# A delivery refused while the breaker is half-open (its trials are all out) is asked to come
# back this soon: the trials take one round trip each, so the verdict is near.
HALF_OPEN_WAIT_SECONDS = 1.0


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failure_rate: float = 0.5  # share of failed calls (0-1] that opens the breaker
    window: int = 100  # calls the failure rate is computed over
    open_seconds: float = 30.0
    half_open_calls: int = 10

    def __post_init__(self) -> None:
        if not 0 < self.failure_rate <= 1 or self.window < 1 or self.half_open_calls < 1:
            raise ValueError(f"not a usable breaker policy: {self}")

    @classmethod
    def from_settings(cls, settings: Settings) -> BreakerPolicy:
        return cls(
            failure_rate=settings.breaker_failure_rate,
            window=settings.breaker_window,
            open_seconds=settings.breaker_open_seconds,
            half_open_calls=settings.breaker_half_open_calls,
        )


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change: logged, published on ``provider-circuits``, counted."""

    breaker: str
    previous: BreakerState
    state: BreakerState
    at: float  # epoch seconds
    failure_rate: float  # over the window (or the trials) that decided it
    calls: int  # how many outcomes that rate is over
    retry_in: float  # seconds until trials are let through (OPEN), else 0


@dataclass(frozen=True, slots=True)
class Permit:
    """One admitted call; hand it back to ``record`` with the call's outcome."""

    generation: int
    trial: bool


class CircuitOpenError(ThrottledError):
    """The breaker refused the call: the provider was not asked. ``retry_after`` is when trials
    begin. A ThrottledError, so a caller that does not know it still waits and retries."""

    def __init__(self, provider: str, retry_after: float) -> None:
        super().__init__(provider, "circuit_open", f"retry in {retry_after:.1f}s", retry_after)


Listener = Callable[[Transition], None]


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        policy: BreakerPolicy,
        clock: Callable[[], float] = time.monotonic,
        on_change: Listener | None = None,
    ) -> None:
        self.name, self.policy = name, policy
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._generation = 0
        self._window: deque[bool] = deque(maxlen=policy.window)  # True = failed
        self._open_until = 0.0
        self._trials_out = 0  # HALF_OPEN: trials admitted and not yet ignored
        self._trial_failures = 0
        self._trial_successes = 0
        # What trips a verdict among the trials: this many failures open it again, and more
        # than ``half_open_calls - _trial_limit`` successes mean the failures cannot get there.
        self._trial_limit = math.ceil(policy.failure_rate * policy.half_open_calls)
        self.refused = 0  # calls refused since creation (for metrics)

    @property
    def state(self) -> BreakerState:
        """Read by the metrics at every scrape as well as by ``admit``: an open breaker whose
        time is over turns half-open when it is next looked at, with or without a call."""
        if self._state is BreakerState.OPEN and self._clock() >= self._open_until:
            self._change(BreakerState.HALF_OPEN, self._failure_rate(), len(self._window))
        return self._state

    def admit(self) -> Permit | None:
        """A permit to call the provider now, or None (``retry_in()`` says for how long)."""
        if self.refuses():
            return None
        if self._state is BreakerState.HALF_OPEN:  # read afresh by refuses()
            self._trials_out += 1
            return Permit(self._generation, trial=True)
        return Permit(self._generation, trial=False)

    def refuses(self) -> bool:
        """Whether ``admit`` would refuse a call now, counted as a refusal when it would.
        ``admit`` asks it; so do the lanes, before they spend anything on the call (a provider
        rate token)."""
        state = self.state
        refused = state is BreakerState.OPEN or (
            state is BreakerState.HALF_OPEN and self._trials_out >= self.policy.half_open_calls
        )
        self.refused += refused
        return refused

    def retry_in(self) -> float:
        """Seconds until this breaker may admit a call again (0 while it admits calls)."""
        if self._state is BreakerState.OPEN:
            return max(0.0, self._open_until - self._clock())
        if self._state is BreakerState.HALF_OPEN:
            full = self._trials_out >= self.policy.half_open_calls
            return HALF_OPEN_WAIT_SECONDS if full else 0.0
        return 0.0

    def record(self, permit: Permit, failed: bool | None) -> None:
        """The outcome of an admitted call: True = a provider failure, False = it answered,
        None = nothing about the provider (the trial slot is given back)."""
        if permit.generation != self._generation:
            return  # admitted before the last state change: that change was decided without it
        if permit.trial:
            self._trial_outcome(failed)
            return
        if failed is None:
            return
        self._window.append(failed)
        full = len(self._window) == self.policy.window
        if full and self._failure_rate() >= self.policy.failure_rate:
            self._open(self._failure_rate(), len(self._window))

    def _trial_outcome(self, failed: bool | None) -> None:
        if failed is None:
            self._trials_out -= 1
            return
        if failed:
            self._trial_failures += 1
        else:
            self._trial_successes += 1
        decided = self._trial_failures + self._trial_successes
        rate = self._trial_failures / decided
        if self._trial_failures >= self._trial_limit:
            self._open(rate, decided)
        elif self._trial_successes > self.policy.half_open_calls - self._trial_limit:
            self._window.clear()
            self._change(BreakerState.CLOSED, rate, decided)

    def _failure_rate(self) -> float:
        return sum(self._window) / len(self._window) if self._window else 0.0

    def _open(self, rate: float, calls: int) -> None:
        self._open_until = self._clock() + self.policy.open_seconds
        self._change(BreakerState.OPEN, rate, calls)

    def _change(self, state: BreakerState, rate: float, calls: int) -> None:
        previous, self._state = self._state, state
        self._generation += 1
        self._trials_out = self._trial_failures = self._trial_successes = 0
        transition = Transition(
            self.name, previous, state, time.time(), rate, calls, self.retry_in()
        )
        log.warning(
            "circuit %s: %s -> %s (failure rate %.0f%% over %d calls)",
            self.name,
            previous,
            state,
            rate * 100,
            calls,
        )
        if self._on_change is not None:
            self._on_change(transition)

    def snapshot(self) -> dict[str, object]:
        return {
            "state": self.state,  # first: it may turn half-open, which resets the trials
            "failure_rate": round(self._failure_rate(), 3),
            "calls_in_window": len(self._window),
            "retry_in": round(self.retry_in(), 3),
            "refused": self.refused,
            "policy": {
                "failure_rate": self.policy.failure_rate,
                "window": self.policy.window,
                "open_seconds": self.policy.open_seconds,
                "half_open_calls": self.policy.half_open_calls,
            },
        }


class Breakers:
    """Every breaker of one worker, by name (a provider, or ``provider/credential`` for a
    provider with several credentials), owned by the provider registry. Listeners hear every
    transition; ``transitions`` counts them by (breaker, new state) for the metrics."""

    def __init__(self, policy: BreakerPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}
        self._listeners: list[Listener] = []
        self.transitions: Counter[tuple[str, str]] = Counter()

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def get(self, name: str) -> CircuitBreaker:
        breaker = self._breakers.get(name)
        if breaker is None:
            breaker = CircuitBreaker(name, self.policy, self._clock, self._heard)
            self._breakers[name] = breaker
        return breaker

    def forget(self, name: str) -> None:
        """Drops a breaker (an endpoint's, evicted by ``EndpointBreakers``) and its transition
        counts, so that endpoints seen once do not pile up in the view."""
        self._breakers.pop(name, None)
        for key in [k for k in self.transitions if k[0] == name]:
            del self.transitions[key]

    def _heard(self, transition: Transition) -> None:
        self.transitions[(transition.breaker, transition.state)] += 1
        for listener in self._listeners:
            try:
                listener(transition)
            except Exception:  # a listener's bug must not break the send that tripped it
                log.exception("circuit listener failed on %s", transition)

    def snapshot(self) -> dict[str, dict[str, object]]:
        return {name: breaker.snapshot() for name, breaker in sorted(self._breakers.items())}


def provider_failed(error: BaseException) -> bool | None:
    """What a send's exception says about the provider (``CircuitBreaker.record``'s verdict)."""
    if isinstance(error, TransientError):
        return True  # 5xx, timeouts, dropped connections, throttling
    if isinstance(error, ConfigurationError) or not isinstance(error, ProviderError):
        return None  # our side (credentials, not started), or a cancelled send
    return False  # it answered: the recipient or the message was refused


@functools.lru_cache(maxsize=4096)  # asked twice per send (the lane's check, then the send)
def endpoint_of(address: str) -> str:
    """A URL's scheme, host and port: the server a breaker keeps traffic off (one subscriber
    has one server whatever the path; a user part of the URL is not kept, nor a query)."""
    try:
        url = URL(address)
    except ValueError:
        return "invalid"
    if not url.host:
        return "invalid"
    return f"{url.scheme}://{url.host}:{url.port}"


class EndpointBreakers:
    """One breaker per endpoint for a provider whose recipients are servers of their own
    (webhook subscribers, the in-app gateway): one subscriber's dead server must not stop the
    sends to every other one, as a single ``webhook`` breaker would once that server had half
    of the last 100 calls. Named ``<provider>@<scheme>://<host>:<port>``. At most ``limit`` are
    kept, the least recently used going first: an endpoint evicted while open starts closed if
    it comes back, and its window opens it again."""

    def __init__(self, provider: str, breakers: Breakers, limit: int = 1024) -> None:
        self.provider = provider
        self._breakers = breakers
        self._limit = limit
        self._by_endpoint: OrderedDict[str, CircuitBreaker] = OrderedDict()

    def for_address(self, address: str) -> CircuitBreaker:
        endpoint = endpoint_of(address)
        breaker = self._by_endpoint.get(endpoint)
        if breaker is not None:
            self._by_endpoint.move_to_end(endpoint)
            return breaker
        breaker = self._breakers.get(f"{self.provider}@{endpoint}")
        self._by_endpoint[endpoint] = breaker
        if len(self._by_endpoint) > self._limit:
            _, evicted = self._by_endpoint.popitem(last=False)
            self._breakers.forget(evicted.name)
        return breaker

    def states(self) -> dict[str, str]:
        """The breakers not closed: a closed endpoint is the normal case, and reporting every
        one of up to ``limit`` endpoints would make three metric series each."""
        return {
            b.name: b.state
            for b in self._by_endpoint.values()
            if b.state is not BreakerState.CLOSED
        }


class GuardedProvider:
    """A provider behind its breaker (or behind one per endpoint, ``EndpointBreakers``):
    refused calls raise ``CircuitOpenError`` without reaching the provider, and so does a
    provider failure that finds the breaker no longer closed; every admitted call's outcome is
    recorded."""

    def __init__(self, provider: Provider, breaker: CircuitBreaker | EndpointBreakers) -> None:
        self.provider, self.breaker = provider, breaker

    @property
    def name(self) -> str:
        return self.provider.name

    def breaker_states(self) -> dict[str, str]:
        """This provider's breakers and any of its own (providers.base.ReportsBreakers), for
        the ``notify_circuit_breaker_state`` metric."""
        inner = self.provider
        own = dict(inner.breaker_states()) if isinstance(inner, ReportsBreakers) else {}
        if isinstance(self.breaker, EndpointBreakers):
            return {**self.breaker.states(), **own}
        return {self.breaker.name: self.breaker.state, **own}

    async def start(self) -> None:
        await self.provider.start()

    async def stop(self) -> None:
        await self.provider.stop()

    def breaker_for(self, message: OutboundMessage) -> CircuitBreaker:
        if isinstance(self.breaker, EndpointBreakers):
            return self.breaker.for_address(message.address)
        return self.breaker

    def refusal(self, message: OutboundMessage) -> CircuitOpenError | None:
        """What ``send`` would raise at once without asking the provider, if anything."""
        breaker = self.breaker_for(message)
        if breaker.refuses():
            return CircuitOpenError(self.provider.name, breaker.retry_in())
        return None

    async def send(self, message: OutboundMessage) -> SendResult:
        breaker = self.breaker_for(message)
        permit = breaker.admit()
        if permit is None:
            raise CircuitOpenError(self.provider.name, breaker.retry_in())
        try:
            result = await self.provider.send(message)
        except BaseException as exc:
            verdict = provider_failed(exc)
            breaker.record(permit, verdict)
            if verdict and breaker.state is not BreakerState.CLOSED:
                # The breaker is open (or still deciding): this failure is the outage's, not
                # the delivery's, and must not spend one of its retries either. A trial that
                # failed waits for the next verdict like every refused delivery.
                wait = max(breaker.retry_in(), HALF_OPEN_WAIT_SECONDS)
                raise CircuitOpenError(self.provider.name, wait) from exc
            raise
        breaker.record(permit, False)
        return result
