"""The SMTP relay circuit (providers/smtp.py), on a clock the test steps, and its state as the
metrics export it."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from agents.metrics_collectors import BreakerStates
from config.settings import Settings
from providers.registry import ProviderRegistry
from providers.smtp import RelayCircuit, SmtpProvider


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def failing(circuit: RelayCircuit, times: int) -> None:
    for _ in range(times):
        primary, probe = circuit.use_primary()
        assert primary and not probe
        circuit.outcome(probe, relay_failed=True)


def test_it_opens_after_the_threshold_and_probes_once_the_cool_down_is_over() -> None:
    clock = Clock()
    circuit = RelayCircuit(threshold=3, cooldown_seconds=60.0, clock=clock)
    failing(circuit, 2)
    assert circuit.use_primary() == (True, False)  # still closed after two
    circuit.outcome(False, relay_failed=True)
    assert circuit.use_primary() == (False, False)  # open: the backup
    clock.now += 59.9
    assert circuit.use_primary() == (False, False)
    clock.now += 0.1
    assert circuit.use_primary() == (True, True)  # the one probe
    assert circuit.use_primary() == (False, False)  # the others keep using the backup
    circuit.outcome(True, relay_failed=False)
    assert circuit.use_primary() == (True, False)  # closed again


def test_a_failed_probe_opens_it_for_another_cool_down() -> None:
    clock = Clock()
    circuit = RelayCircuit(threshold=1, cooldown_seconds=10.0, clock=clock)
    failing(circuit, 1)
    clock.now += 10.0
    assert circuit.use_primary() == (True, True)
    circuit.outcome(True, relay_failed=True)
    assert circuit.use_primary() == (False, False)
    clock.now += 9.0
    assert circuit.use_primary() == (False, False)
    clock.now += 1.0
    assert circuit.use_primary() == (True, True)


def test_a_recipient_error_says_nothing_about_the_relay() -> None:
    circuit = RelayCircuit(threshold=1, cooldown_seconds=10.0, clock=Clock())
    _, probe = circuit.use_primary()
    circuit.outcome(probe, relay_failed=None)  # a 5xx about the mailbox
    assert circuit.use_primary() == (True, False)


def test_its_state_is_what_the_metrics_show_half_open_by_the_clock_alone() -> None:
    clock = Clock()
    provider = SmtpProvider(Settings(smtp_backup_host="127.0.0.2"))
    circuit = RelayCircuit(threshold=1, cooldown_seconds=60.0, clock=clock)
    provider._circuit = circuit
    registry = CollectorRegistry()
    registry.register(BreakerStates(ProviderRegistry({"smtp": provider})))

    def shown() -> dict[str, float | None]:
        return {
            state: registry.get_sample_value(
                "notify_circuit_breaker_state", {"breaker": "smtp", "state": state}
            )
            for state in ("closed", "open", "half_open")
        }

    assert shown() == {"closed": 1.0, "open": 0.0, "half_open": 0.0}
    failing(circuit, 1)
    assert circuit.state == "open"
    assert shown() == {"closed": 0.0, "open": 1.0, "half_open": 0.0}
    clock.now += 60.0  # nothing happened but time: the cool-down is over
    assert shown() == {"closed": 0.0, "open": 0.0, "half_open": 1.0}
    assert ProviderRegistry({"smtp": SmtpProvider(Settings())}).breaker_states() == {}
