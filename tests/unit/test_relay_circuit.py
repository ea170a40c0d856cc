"""The SMTP primary relay's breaker (providers/smtp.py: the provider breaker configured as "a
run of N failures, one probe"), on a clock the test steps, and the states the metrics export
(the provider's own breaker and the relay's)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from agents.metrics_collectors import BreakerStates
from config.settings import Settings
from providers.breaker import BreakerPolicy, Breakers, BreakerState, CircuitBreaker, Permit
from providers.registry import ProviderRegistry
from providers.smtp import SmtpProvider, relay_breaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def primary(circuit: CircuitBreaker) -> Permit:
    permit = circuit.admit()
    assert permit is not None, "expected the primary relay"
    return permit


def failing(circuit: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        circuit.record(primary(circuit), True)


def test_it_opens_after_the_threshold_and_probes_once_the_cool_down_is_over() -> None:
    clock = Clock()
    circuit = relay_breaker(threshold=3, cooldown_seconds=60.0, clock=clock)
    failing(circuit, 2)
    late = primary(circuit)  # still closed after two
    circuit.record(late, True)
    assert circuit.admit() is None  # open: the backup
    clock.now += 59.9
    assert circuit.admit() is None
    clock.now += 0.1
    probe = primary(circuit)  # the one probe
    assert probe.trial
    assert circuit.admit() is None  # the others keep using the backup
    circuit.record(probe, False)
    assert circuit.state is BreakerState.CLOSED and not primary(circuit).trial


def test_a_success_in_between_resets_the_run() -> None:
    circuit = relay_breaker(threshold=3, cooldown_seconds=60.0, clock=Clock())
    failing(circuit, 2)
    circuit.record(primary(circuit), False)
    failing(circuit, 2)
    assert circuit.state is BreakerState.CLOSED


def test_a_failed_probe_opens_it_for_another_cool_down() -> None:
    clock = Clock()
    circuit = relay_breaker(threshold=1, cooldown_seconds=10.0, clock=clock)
    failing(circuit, 1)
    clock.now += 10.0
    probe = primary(circuit)
    circuit.record(probe, True)
    assert circuit.admit() is None
    clock.now += 9.0
    assert circuit.admit() is None
    clock.now += 1.0
    assert primary(circuit).trial


def test_a_recipient_error_says_nothing_about_the_relay() -> None:
    circuit = relay_breaker(threshold=1, cooldown_seconds=10.0, clock=Clock())
    circuit.record(primary(circuit), None)  # a 5xx about the mailbox
    assert circuit.state is BreakerState.CLOSED
    assert not primary(circuit).trial


def test_the_states_are_what_the_metrics_show_half_open_by_the_clock_alone() -> None:
    clock = Clock()
    provider = SmtpProvider(Settings(smtp_backup_host="127.0.0.2"))
    circuit = relay_breaker(threshold=1, cooldown_seconds=60.0, clock=clock)
    provider._circuit = circuit
    breakers = Breakers(BreakerPolicy(), clock)
    registry = CollectorRegistry()
    registry.register(BreakerStates(ProviderRegistry({"smtp": provider}, breakers)))

    def shown(breaker: str) -> dict[str, float | None]:
        return {
            state: registry.get_sample_value(
                "notify_circuit_breaker_state", {"breaker": breaker, "state": state}
            )
            for state in ("closed", "open", "half_open")
        }

    closed = {"closed": 1.0, "open": 0.0, "half_open": 0.0}
    assert shown("smtp") == shown("smtp/primary") == closed
    failing(circuit, 1)
    assert circuit.state == "open"
    assert shown("smtp/primary") == {"closed": 0.0, "open": 1.0, "half_open": 0.0}
    assert shown("smtp") == closed  # the backup takes the mail: the provider is fine
    clock.now += 60.0  # nothing happened but time: the cool-down is over
    assert shown("smtp/primary") == {"closed": 0.0, "open": 0.0, "half_open": 1.0}
    assert ProviderRegistry({"smtp": SmtpProvider(Settings())}).breaker_states() == {}
