"""Failure counters: what went wrong on the paths that must never stop a worker.

Plain in-process counters, bumped only when something fails, so they cost nothing on the hot
path. One typed object: agents/metrics_collectors.py exports each field as one ``notify_*``
series when Prometheus scrapes (the key of each Counter becomes its labels).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields


@dataclass
class FailureCounters:
    # by stage: records a parser refused (each one dead-lettered with its reason)
    invalid_records: Counter[str] = field(default_factory=Counter)
    # by stage: unexpected exceptions in a handler (each record dead-lettered as internal error)
    internal_errors: Counter[str] = field(default_factory=Counter)
    # by dead-letter topic: records written there, and those of them cut to a prefix
    dead_letters: Counter[str] = field(default_factory=Counter)
    dead_letters_truncated: Counter[str] = field(default_factory=Counter)
    # by (dead-letter topic, reason kind): why records were sent there, counted as decided
    # (invalid_record, internal_error, reroute_refused, retries_exhausted, permanent,
    # configuration): the bounded part of the reason, whose text stays on the letter
    dead_letter_reasons: Counter[tuple[str, str]] = field(default_factory=Counter)
    # by dead-letter topic: records that could not be dead-lettered at all (only the log holds
    # them now)
    dead_letter_failures: Counter[str] = field(default_factory=Counter)
    # by topic: records the producer refused at send time or failed after its retries
    produce_failures: Counter[str] = field(default_factory=Counter)
    # by agent name: crashed actors restarted by agents.supervision.RestartingSupervisor
    agent_restarts: Counter[str] = field(default_factory=Counter)

    def reset(self) -> None:
        """For tests: counters are process-wide."""
        for f in fields(self):
            getattr(self, f.name).clear()


FAILURES = FailureCounters()
