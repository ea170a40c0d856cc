"""The SMTP relay circuit (providers/smtp.py), on a clock the test steps."""

from __future__ import annotations

from providers.smtp import RelayCircuit


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
