"""The provider circuit breaker (providers/breaker.py), on a clock the test steps."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from providers.base import (
    ConfigurationError,
    InvalidRecipientError,
    OutboundMessage,
    ProviderError,
    SendResult,
    ThrottledError,
    TransientError,
)
from providers.breaker import (
    BreakerPolicy,
    Breakers,
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
    EndpointBreakers,
    GuardedProvider,
    Transition,
    endpoint_of,
)
from providers.registry import ProviderRegistry

SEED = BreakerPolicy()  # 50 % over 100 calls, 30 s open, 10 trials


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def state_of(breaker: CircuitBreaker) -> BreakerState:
    """The state read afresh: after ``breaker.state is X`` mypy keeps the property narrowed to
    X, though the calls in between change it."""
    return breaker.state


def calls(breaker: CircuitBreaker, outcomes: list[bool]) -> None:
    for failed in outcomes:
        permit = breaker.admit()
        assert permit is not None
        breaker.record(permit, failed)


def test_the_seed_defaults() -> None:
    assert (SEED.failure_rate, SEED.window, SEED.open_seconds, SEED.half_open_calls) == (
        0.5,
        100,
        30.0,
        10,
    )


def test_it_opens_only_once_the_window_is_full_and_half_of_it_failed() -> None:
    breaker = CircuitBreaker("fcm", SEED, Clock())
    calls(breaker, [True] * 99)
    assert state_of(breaker) is BreakerState.CLOSED  # 99 calls: the window is not full yet
    calls(breaker, [True])
    assert state_of(breaker) is BreakerState.OPEN
    assert breaker.admit() is None and breaker.retry_in() == 30.0


def test_a_window_of_successes_needs_half_of_it_to_fail() -> None:
    breaker = CircuitBreaker("fcm", SEED, Clock())
    calls(breaker, [False] * 100)
    calls(breaker, [True] * 49)
    assert state_of(breaker) is BreakerState.CLOSED  # 49 of the last 100
    calls(breaker, [True])
    assert state_of(breaker) is BreakerState.OPEN  # 50 of the last 100


def test_half_open_admits_the_trials_only_and_their_successes_close_it() -> None:
    clock = Clock()
    breaker = CircuitBreaker("fcm", SEED, clock)
    calls(breaker, [True] * 100)
    clock.now += 29.9
    assert breaker.admit() is None
    clock.now += 0.1
    trials = [breaker.admit() for _ in range(12)]
    assert state_of(breaker) is BreakerState.HALF_OPEN
    admitted = [p for p in trials if p is not None]
    assert len(admitted) == 10 and all(p.trial for p in admitted)
    assert breaker.retry_in() == 1.0  # the refused wait briefly for the verdict
    for permit in admitted[:6]:
        breaker.record(permit, False)
    assert state_of(breaker) is BreakerState.CLOSED  # 6 successes: failures can no longer reach 5
    assert breaker.snapshot()["calls_in_window"] == 0


def test_refuses_tells_ahead_what_admit_would_do_and_counts_it() -> None:
    clock = Clock()
    breaker = CircuitBreaker("fcm", SEED, clock)
    assert not breaker.refuses()  # closed
    calls(breaker, [True] * 100)
    assert breaker.refuses() and breaker.refused == 1  # open
    clock.now += 30.0
    assert not breaker.refuses()  # half-open with trials to give: it takes none
    trials = [breaker.admit() for _ in range(10)]
    assert all(p is not None for p in trials)
    assert breaker.refuses() and breaker.refused == 2  # every trial is out


def test_failing_trials_open_it_again_for_a_whole_period() -> None:
    clock = Clock()
    breaker = CircuitBreaker("fcm", SEED, clock)
    calls(breaker, [True] * 100)
    clock.now += 30
    trials = [breaker.admit() for _ in range(10)]
    for permit in trials[:5]:
        assert permit is not None
        breaker.record(permit, True)
    assert state_of(breaker) is BreakerState.OPEN and breaker.retry_in() == 30.0
    for permit in trials[5:]:  # the rest answer late: they decided nothing
        assert permit is not None
        breaker.record(permit, False)
    assert state_of(breaker) is BreakerState.OPEN


def test_outcomes_of_calls_admitted_before_a_change_are_ignored() -> None:
    breaker = CircuitBreaker("fcm", BreakerPolicy(window=2, open_seconds=5), Clock())
    late = breaker.admit()
    calls(breaker, [True, True])
    assert late is not None and state_of(breaker) is BreakerState.OPEN
    breaker.record(late, False)
    assert state_of(breaker) is BreakerState.OPEN


def test_an_ignored_trial_gives_its_slot_back() -> None:
    clock = Clock()
    breaker = CircuitBreaker("x", BreakerPolicy(window=1, half_open_calls=1), clock)
    calls(breaker, [True])
    clock.now += 30
    first = breaker.admit()
    assert first is not None and breaker.admit() is None
    breaker.record(first, None)  # cancelled: says nothing about the provider
    assert breaker.admit() is not None


def test_transitions_are_heard_and_counted() -> None:
    clock = Clock()
    heard: list[Transition] = []
    board = Breakers(BreakerPolicy(window=2, open_seconds=5, half_open_calls=1), clock)
    board.subscribe(heard.append)
    breaker = board.get("apns")
    assert board.get("apns") is breaker
    calls(breaker, [True, True])
    clock.now += 5
    calls(breaker, [False])
    assert [(t.previous, t.state) for t in heard] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    assert heard[0].failure_rate == 1.0 and heard[0].calls == 2 and heard[0].retry_in == 5
    assert board.transitions[("apns", "open")] == 1
    assert board.snapshot()["apns"]["state"] == "closed"


class Scripted:
    """A provider answering with what the test queues: a result or an exception."""

    name = "fcm"

    def __init__(self) -> None:
        self.answers: list[BaseException | None] = []
        self.calls = 0

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(self, message: OutboundMessage) -> SendResult:
        self.calls += 1
        answer = self.answers.pop(0)
        if answer is not None:
            raise answer
        return SendResult(provider=self.name)


MESSAGE = OutboundMessage("d", "n", "u", "push", "tok", "t", "b", platform="android")


def test_only_transient_and_throttled_failures_count() -> None:
    provider = Scripted()
    breaker = CircuitBreaker("fcm", BreakerPolicy(window=4, failure_rate=0.5), Clock())
    guarded = GuardedProvider(provider, breaker)

    async def send_all(answers: list[BaseException | None]) -> None:
        provider.answers = list(answers)
        for _ in answers:
            with contextlib.suppress(ProviderError):
                await guarded.send(MESSAGE)

    invalid = InvalidRecipientError("fcm", "UNREGISTERED")
    config = ConfigurationError("fcm", "THIRD_PARTY_AUTH_ERROR")
    asyncio.run(send_all([invalid, invalid, invalid, config, config, TransientError("fcm", "x")]))
    assert state_of(breaker) is BreakerState.CLOSED  # 1 provider failure in 4 counted calls
    asyncio.run(send_all([ThrottledError("fcm", "QUOTA_EXCEEDED", retry_after=1)]))
    assert state_of(breaker) is BreakerState.OPEN  # 2 of the last 4
    before = provider.calls
    with pytest.raises(CircuitOpenError) as refused:
        asyncio.run(guarded.send(MESSAGE))
    assert provider.calls == before  # the provider was not asked
    assert refused.value.retry_after == 30.0 and refused.value.code == "circuit_open"


def test_a_failure_that_finds_the_breaker_open_spends_no_attempt() -> None:
    provider = Scripted()
    breaker = CircuitBreaker("fcm", BreakerPolicy(window=2, open_seconds=10), Clock())
    guarded = GuardedProvider(provider, breaker)
    provider.answers = [TransientError("fcm", "UNAVAILABLE"), TransientError("fcm", "UNAVAILABLE")]
    with pytest.raises(TransientError) as first:
        asyncio.run(guarded.send(MESSAGE))
    assert not isinstance(first.value, CircuitOpenError)  # closed: an ordinary retry
    with pytest.raises(CircuitOpenError) as second:  # this one opened it: held, not retried
        asyncio.run(guarded.send(MESSAGE))
    assert second.value.retry_after == 10.0
    assert isinstance(second.value.__cause__, TransientError)


def hook(url: str) -> OutboundMessage:
    return OutboundMessage("d", "n", "u", "webhook", url, "t", "b")


def test_an_endpoint_is_its_scheme_host_and_port() -> None:
    assert endpoint_of("https://hooks.example.com/a/b?c=1") == "https://hooks.example.com:443"
    assert endpoint_of("http://user:pw@127.0.0.1:8080/x") == "http://127.0.0.1:8080"
    assert endpoint_of("not a url") == "invalid" and endpoint_of("") == "invalid"


def test_one_dead_endpoint_opens_its_own_breaker_only() -> None:
    provider = Scripted()
    policy = BreakerPolicy(window=4, failure_rate=0.5)
    breakers = Breakers(policy, Clock())
    guarded = GuardedProvider(provider, EndpointBreakers("webhook", breakers))
    dead, alive = hook("https://dead.example.com/h"), hook("https://alive.example.com/h")

    async def send(message: OutboundMessage, answer: BaseException | None) -> None:
        provider.answers = [answer]
        with contextlib.suppress(ProviderError):
            await guarded.send(message)

    for _ in range(4):
        asyncio.run(send(dead, TransientError("webhook", "http_503")))
    assert guarded.refusal(dead) is not None  # refused before any token is taken
    with pytest.raises(CircuitOpenError):
        asyncio.run(guarded.send(dead))
    assert guarded.refusal(alive) is None
    calls_before = provider.calls
    asyncio.run(send(alive, None))
    assert provider.calls == calls_before + 1  # the other subscriber is still called
    # Only the breakers not closed are reported (an endpoint's is one of many).
    assert guarded.breaker_states() == {"webhook@https://dead.example.com:443": "open"}


def test_endpoint_breakers_are_bounded_least_recently_used_first() -> None:
    breakers = Breakers(SEED, Clock())
    endpoints = EndpointBreakers("webhook", breakers, limit=2)
    first = endpoints.for_address("https://a.example.com/")
    endpoints.for_address("https://b.example.com/")
    assert endpoints.for_address("https://a.example.com/other") is first  # used again
    b = breakers.get("webhook@https://b.example.com:443")
    for _ in range(SEED.window):  # b opens: a transition counted
        permit = b.admit()
        assert permit is not None
        b.record(permit, True)
    assert ("webhook@https://b.example.com:443", "open") in breakers.transitions
    endpoints.for_address("https://c.example.com/")  # b goes: the least recently used
    assert not any(name.startswith("webhook@https://b.") for name, _ in breakers.transitions)
    assert sorted(breakers.snapshot()) == [
        "webhook@https://a.example.com:443",
        "webhook@https://c.example.com:443",
    ]


def test_the_registry_gives_webhooks_and_callbacks_a_breaker_per_endpoint() -> None:
    breakers = Breakers(BreakerPolicy(window=2), Clock())
    registry = ProviderRegistry({"callback": Scripted(), "fcm": Scripted()}, breakers)
    dead, alive = hook("https://dead.example.com/cb"), hook("https://alive.example.com/cb")
    dead_breaker = breakers.get("callback@https://dead.example.com:443")
    for _ in range(2):
        permit = dead_breaker.admit()
        assert permit is not None
        dead_breaker.record(permit, True)
    with pytest.raises(CircuitOpenError):
        registry.check_admits("callback", dead)
    registry.check_admits("callback", alive)  # another caller's endpoint: admitted
    registry.check_admits("fcm", MESSAGE)  # one breaker for the whole provider, closed
