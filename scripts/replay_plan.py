"""What a replay would send, and why. Pure: every input is what the topics say.

A record in a replay window is judged by what the pipeline already knows about it: the status
folded from ``delivery-events`` (tables/status.fold), the delivery ledger's changelog, the
suppressed addresses and unregistered tokens on the control topics, and the replay audit log.
Only a delivery without a final good outcome goes again: one the status or the ledger says was
sent (or that reached the person by its fallback channel) never does; one past its
``ttl_seconds`` or to an address that is now suppressed is reported, not sent; a request the
resolve stage refused (muted, over the rate window, a duplicate) stays refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from config.vocabulary import SUCCESSES, EventStatus, NotificationStatus
from streams.deliveries import Delivery
from streams.records import NotificationRequest
from tables.status import DeliveryState, NotificationState

# How a failed event's reason starts when the provider said the address is dead
# (providers/base.py's error kinds): the resolve stage drops such an address from then on.
INVALID_RECIPIENT = "invalid_recipient"
MAX_REASON_CHARS = 72  # of a provider error quoted in a plan line


class Verdict(StrEnum):
    WOULD_SEND = "would-send"  # a real run re-produces it
    SENT = "sent"  # the status or the ledger says it went out
    EXPIRED = "expired"  # past its ttl_seconds: too late to be of use
    SUPPRESSED = "suppressed"  # the address bounced, complained or is dead
    REJECTED = "rejected"  # the resolve stage refused the request (muted, rate window, ...)
    REPLAYED = "replayed"  # an earlier replay re-sent it and no outcome has come back yet
    REPEATED = "repeated"  # an earlier record in the window is the same notification or delivery
    COPY = "copy"  # a replay's own copy of another record: the original is what counts
    TOO_OLD = "too-old"  # older than the ledger remembers: its sent siblings would go again
    UNREADABLE = "unreadable"  # not a record this topic carries (it was dead-lettered then)


@dataclass(frozen=True)
class Knowledge:
    """What the pipeline knows, read from its topics just before the plan is made."""

    statuses: Mapping[str, NotificationState] = field(default_factory=dict)  # by notification
    ledger: Mapping[str, str] = field(default_factory=dict)  # delivery id -> provider, unexpired
    suppressed: frozenset[tuple[str, str]] = frozenset()  # (user_id, address or token)
    replayed: Mapping[str, float] = field(default_factory=dict)  # source ref -> last re-sent at
    # NOTIFY_DEDUP_TTL_SECONDS: how long the ledger (and the dedup claim) remember a send.
    ledger_seconds: float = 86400.0
    _sent_by_notification: dict[str, tuple[str, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Delivery ids are ``<notification_id>:<channel>:<hash>`` (streams.deliveries): the
        # ledger tells a request's sends apart even when no event about them came through.
        index: dict[str, list[str]] = {}
        for delivery_id in self.ledger:
            index.setdefault(delivery_id.rsplit(":", 2)[0], []).append(delivery_id)
        sent = {nid: tuple(ids) for nid, ids in index.items()}
        object.__setattr__(self, "_sent_by_notification", sent)

    def ledger_sends_of(self, notification_id: str) -> tuple[str, ...]:
        return self._sent_by_notification.get(notification_id, ())


@dataclass(frozen=True)
class RequestCandidate:
    ref: str  # topic:partition:offset
    request: NotificationRequest
    # The record the request's idempotency key was claimed as: itself, or the one it was passed
    # on from (agents/intake.py names it in ``x-request-of``). A replay re-sends it as that one.
    origin: str


@dataclass(frozen=True)
class DeliveryCandidate:
    ref: str
    delivery: Delivery


@dataclass(frozen=True)
class Unreadable:
    ref: str
    reason: str


@dataclass(frozen=True)
class ReplayCopy:
    ref: str
    copy_of: str


Candidate = RequestCandidate | DeliveryCandidate | Unreadable | ReplayCopy


@dataclass(frozen=True)
class Judgement:
    ref: str
    verdict: Verdict
    why: str
    subject: str = ""  # the notification id (requests) or delivery id (deliveries)
    # A request's deliveries a real run would send again (known ones: a delivery never
    # reported is counted in ``why`` only).
    deliveries: tuple[str, ...] = ()

    @property
    def sends(self) -> bool:
        return self.verdict is Verdict.WOULD_SEND


def plan(
    candidates: Iterable[Candidate], knowledge: Knowledge, now: float, again: bool = False
) -> list[Judgement]:
    """One judgement per record, in window order. With ``again``, a record an earlier replay
    re-sent is judged afresh even before its outcome is known (the ledger still stops a second
    send of what went out)."""
    seen: set[str] = set()
    out = []
    for candidate in candidates:
        judgement = _judge(candidate, knowledge, now, again)
        if judgement.subject and judgement.subject in seen:
            judgement = Judgement(
                candidate.ref,
                Verdict.REPEATED,
                "an earlier record in the window",
                judgement.subject,
            )
        elif judgement.subject:
            seen.add(judgement.subject)
        out.append(judgement)
    return out


def _judge(candidate: Candidate, knowledge: Knowledge, now: float, again: bool) -> Judgement:
    if isinstance(candidate, Unreadable):
        return Judgement(candidate.ref, Verdict.UNREADABLE, candidate.reason)
    if isinstance(candidate, ReplayCopy):
        return Judgement(candidate.ref, Verdict.COPY, f"replay copy of {candidate.copy_of}")
    if isinstance(candidate, RequestCandidate):
        return judge_request(candidate, knowledge, now, again)
    return judge_delivery(candidate, knowledge, now, again)


def judge_request(
    candidate: RequestCandidate, knowledge: Knowledge, now: float, again: bool = False
) -> Judgement:
    request, ref = candidate.request, candidate.ref
    nid = request.notification_id
    if request.created_at and request.created_at + knowledge.ledger_seconds < now:
        # A request replay fans every delivery out again and trusts the ledger to drop the
        # ones that went out; past its window the ledger has forgotten them.
        why = "older than the delivery ledger's window: replay its lane or the DLQ instead"
        return Judgement(ref, Verdict.TOO_OLD, why, nid)
    expired = _expired(request.created_at, request.ttl_seconds, now)
    state = knowledge.statuses.get(nid)
    if state is None:
        if expired:
            return Judgement(ref, Verdict.EXPIRED, expired, nid)
        return _unless_replayed(
            Judgement(ref, Verdict.WOULD_SEND, "no status: never resolved", nid),
            knowledge,
            0.0,
            again,
        )
    if state["status"] == NotificationStatus.REJECTED:
        return Judgement(ref, Verdict.REJECTED, f"status: rejected, {state.get('reason')}", nid)
    fallback = _reached_by_fallback(state)
    if fallback:
        return Judgement(ref, Verdict.SENT, fallback, nid)
    verdicts = {
        delivery_id: _delivery_verdict(delivery_id, state["deliveries"].get(delivery_id), knowledge)
        for delivery_id in (*state["deliveries"], *knowledge.ledger_sends_of(nid))
    }
    pending = tuple(d for d, (v, _) in verdicts.items() if v is Verdict.WOULD_SEND)
    unreported = max(0, state["expected"] - len(verdicts))
    if not pending and not unreported:
        # Nothing to send: "suppressed" if a delivery never got out (so that the operator
        # sees why it is not replayed), "sent" if every one did.
        if any(v is Verdict.SUPPRESSED for v, _ in verdicts.values()):
            return Judgement(ref, Verdict.SUPPRESSED, _summary(verdicts, 0), nid)
        return Judgement(ref, Verdict.SENT, _summary(verdicts, 0), nid)
    if expired:
        return Judgement(ref, Verdict.EXPIRED, expired, nid)
    judgement = Judgement(ref, Verdict.WOULD_SEND, _summary(verdicts, unreported), nid, pending)
    # Not the notification's last event: a replay's copy reports ``accepted`` long before its
    # deliveries' outcomes; the oldest news of a delivery still to send is what counts.
    reports = [
        state["deliveries"].get(d, DeliveryState(attempts=0)).get("at", 0.0) for d in pending
    ]
    last_event = min(reports) if reports and not unreported else 0.0
    return _unless_replayed(judgement, knowledge, last_event, again)


def judge_delivery(
    candidate: DeliveryCandidate, knowledge: Knowledge, now: float, again: bool = False
) -> Judgement:
    d, ref = candidate.delivery, candidate.ref
    state = knowledge.statuses.get(d.notification_id)
    entry = None if state is None else state["deliveries"].get(d.delivery_id)
    verdict, why = _delivery_verdict(d.delivery_id, entry, knowledge)
    if verdict is Verdict.WOULD_SEND and state is not None and not d.is_fallback:
        why = _reached_by_fallback(state) or why
        verdict = Verdict.SENT if why.startswith("fell back") else verdict
    if verdict is Verdict.WOULD_SEND and (d.user_id, d.address) in knowledge.suppressed:
        verdict, why = Verdict.SUPPRESSED, "address suppressed (or token unregistered) since"
    if verdict is Verdict.WOULD_SEND:
        if expired := _expired(d.requested_at, d.ttl_seconds, now):
            return Judgement(ref, Verdict.EXPIRED, expired, d.delivery_id)
        last_event = 0.0 if entry is None else entry.get("at", 0.0)
        judgement = Judgement(ref, verdict, why, d.delivery_id, (d.delivery_id,))
        return _unless_replayed(judgement, knowledge, last_event, again)
    return Judgement(ref, verdict, why, d.delivery_id)


def _delivery_verdict(
    delivery_id: str, entry: DeliveryState | None, knowledge: Knowledge
) -> tuple[Verdict, str]:
    provider = knowledge.ledger.get(delivery_id)
    if provider is not None:
        return Verdict.SENT, f"ledger: sent by {provider}"
    status = None if entry is None else entry.get("status")
    reason = None if entry is None else entry.get("reason")
    if status in SUCCESSES:
        return Verdict.SENT, f"status: {status}"
    if status in (EventStatus.BOUNCED, EventStatus.COMPLAINED):
        return Verdict.SUPPRESSED, f"status: {status}"
    if status == EventStatus.FAILED and (reason or "").startswith(INVALID_RECIPIENT):
        return Verdict.SUPPRESSED, f"status: failed, {reason}"
    if status is None:
        return Verdict.WOULD_SEND, "no outcome reported"
    if reason and len(reason) > MAX_REASON_CHARS:
        reason = f"{reason[:MAX_REASON_CHARS]}..."  # the whole error is in the DLQ's history
    return Verdict.WOULD_SEND, f"status: {status}" + (f", {reason}" if reason else "")


def _reached_by_fallback(state: NotificationState) -> str:
    """Non-empty when every delivery failed, the fallback channel was used and one succeeded:
    the person was reached, so the failed ones are not sent after the fact."""
    fell_back = state.get("fell_back")
    if not fell_back:
        return ""
    if any(d.get("status") in SUCCESSES for d in state["deliveries"].values()):
        return f"fell back to {fell_back['channel']}, which was sent"
    return ""


def _expired(since: float, ttl_seconds: int | None, now: float) -> str:
    if not ttl_seconds or since <= 0 or since + ttl_seconds > now:
        return ""
    return f"ttl {ttl_seconds}s ran out {now - since - ttl_seconds:.0f}s ago"


def _unless_replayed(
    judgement: Judgement, knowledge: Knowledge, last_event: float, again: bool
) -> Judgement:
    """An earlier replay re-sent this record and nothing was reported after it: its outcome is
    still on its way, and sending once more would only race it."""
    replayed_at = knowledge.replayed.get(judgement.ref)
    if replayed_at is None or again or last_event >= replayed_at:
        return judgement
    return Judgement(
        judgement.ref,
        Verdict.REPLAYED,
        f"re-sent by a replay {replayed_at:.0f}, outcome not in yet (--again to send anyway)",
        judgement.subject,
    )


def _summary(verdicts: Mapping[str, tuple[Verdict, str]], unreported: int) -> str:
    """'2 of 3 deliveries: status: failed, ...; 1 sent' style detail for a request."""
    counts: dict[str, int] = {}
    for verdict, why in verdicts.values():
        label = why if verdict is Verdict.WOULD_SEND else verdict.value
        counts[label] = counts.get(label, 0) + 1
    if unreported:
        counts["never reported"] = unreported
    total = len(verdicts) + unreported
    parts = [f"{n} {label}" for label, n in counts.items()]
    return f"{total} deliveries: " + "; ".join(parts)
