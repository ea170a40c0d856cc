"""What a classified provider failure turns into. Pure.

Faust acks a record whose agent raised, so no failure may escape: each one becomes a retry in a
delay tier, a dead letter, or an invalid-recipient clean-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from providers.base import InvalidRecipientError, ProviderError, ThrottledError, TransientError


class FailureAction(StrEnum):
    """What becomes of a failed send; a ``failed`` event's reason starts with it."""

    RETRY = "retry"
    DEAD_LETTER = "dead_letter"
    INVALID_RECIPIENT = "invalid_recipient"


RETRY = FailureAction.RETRY
DEAD_LETTER = FailureAction.DEAD_LETTER
INVALID_RECIPIENT = FailureAction.INVALID_RECIPIENT


@dataclass(frozen=True, slots=True)
class FailurePlan:
    action: FailureAction
    reason: str
    tier: float | None = None  # the retry tier (its nominal wait), for RETRY
    wait: float = 0.0  # seconds until the next attempt: the tier's, or longer if throttled


def describe(error: ProviderError) -> str:
    return f"{type(error).__name__}: {error}"


def plan_failure(
    error: ProviderError, attempts_made: int, schedule: Sequence[float]
) -> FailurePlan:
    """``attempts_made`` counts the attempts before the one that just failed."""
    reason = describe(error)
    if isinstance(error, InvalidRecipientError):
        return FailurePlan(INVALID_RECIPIENT, reason)
    if not isinstance(error, TransientError):
        return FailurePlan(DEAD_LETTER, reason)  # permanent or configuration: never retried
    if attempts_made >= len(schedule):
        return FailurePlan(
            DEAD_LETTER, f"retries exhausted after {attempts_made + 1} attempts: {reason}"
        )
    tier = schedule[attempts_made]
    wait = tier
    if isinstance(error, ThrottledError) and error.retry_after is not None:
        wait = max(tier, error.retry_after)  # the provider's Retry-After wins when longer
    return FailurePlan(RETRY, reason, tier=tier, wait=wait)
