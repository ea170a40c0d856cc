"""Resolve: decide whether a valid request may go out, and on which channels. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from config.vocabulary import Channel, RejectReason
from streams.records import NotificationRequest, Preferences

# Rejection reasons, as they appear in ``delivery-events``, under their older names.
DUPLICATE = RejectReason.DUPLICATE
CATEGORY_MUTED = RejectReason.CATEGORY_MUTED
NO_CHANNEL_ALLOWED = RejectReason.NO_CHANNEL_ALLOWED
RATE_LIMITED = RejectReason.RATE_LIMITED
NO_ADDRESS = RejectReason.NO_ADDRESS
_EVERY_CHANNEL = tuple(Channel)


@dataclass(frozen=True, slots=True)
class Decision:
    channels: tuple[str, ...] = ()
    reason: RejectReason | None = None  # set when rejected
    replay: bool = False  # the very record that claimed the key, read again after a restart
    fanned_out: int = 0  # deliveries produced, once fan-out has run

    @property
    def accepted(self) -> bool:
        return self.reason is None


@dataclass(frozen=True, slots=True)
class UserState:
    """What the tables know about the user at the moment of the decision."""

    dedup_claim: str | None  # source that claimed this request's idempotency key, if any
    preferences: Preferences | None
    recent_accepted: Sequence[float]
    erased: bool = False  # the user was erased after this request was made (tables/erasures.py)


@dataclass(frozen=True, slots=True)
class Limits:
    per_user: int
    exempt_categories: frozenset[str] = frozenset({"security"})


def decide(request: NotificationRequest, state: UserState, source: str, limits: Limits) -> Decision:
    """Order matters: a duplicate is reported as such even if the user is also over the limit."""
    if state.erased:
        return Decision(reason=RejectReason.USER_ERASED)
    channels = allowed_channels(request, state.preferences)
    if state.dedup_claim is not None:
        if state.dedup_claim == source:
            # Replaying our own record (crash before the offset commit): emit the same
            # deliveries again; their stable ids let the delivery ledger drop what went out.
            return Decision(channels, replay=True)
        return Decision(reason=DUPLICATE)
    if state.preferences and request.category in state.preferences.muted_categories:
        return Decision(reason=CATEGORY_MUTED)
    if not channels:
        return Decision(reason=NO_CHANNEL_ALLOWED)
    if request.category not in limits.exempt_categories and (
        len(state.recent_accepted) >= limits.per_user
    ):
        return Decision(reason=RATE_LIMITED)
    return Decision(channels)


def allowed_channels(
    request: NotificationRequest, preferences: Preferences | None
) -> tuple[str, ...]:
    wanted = request.channels or _EVERY_CHANNEL
    if preferences is None:
        return tuple(wanted)
    return tuple(c for c in wanted if preferences.allows_channel(c))
