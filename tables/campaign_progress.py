"""Campaign progress: one entry per (campaign, partition), written on that partition.

``campaign_progress`` (key ``<campaign_id>:<partition>``) is the scan's durable state on the
partition it scans: the cursor (the last user id handled, in the store's key order) and the
counts up to it, written together after the requests up to the cursor reached the broker. The
partition's next owner recovers it from the changelog and resumes after the cursor.

``campaign_outcomes`` (key ``<campaign_id>:<partition>``, the ``delivery-events`` partition
the status agent folded the event on) counts the campaign's notifications by their current
status: delivered (a delivery went out), failed, rejected by reason. Entering a status adds
one, leaving it takes one away, so a notification read again never counts twice.

Keys name their partition explicitly, because they do not hash to it: no table_route for
these; agents/campaign_views.py asks each worker for the partitions it owns.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NotRequired, TypeAlias, TypedDict

import faust
from faust.types import TableT

from config.settings import Settings
from config.vocabulary import NotificationStatus, ScanStatus


class ScanState(TypedDict):
    state: str  # a ScanStatus
    cursor: str | None  # last user id handled; None: nothing yet
    scanned: int  # users read from the table
    targeted: int  # users the segment matched
    enqueued: int  # requests produced
    skipped: dict[str, int]  # reason -> matching users not sent (opted out, ...)
    throttle_per_second: float  # this partition's share
    updated_at: float
    started_at: NotRequired[float]
    finished_at: NotRequired[float]
    cancel_requested: NotRequired[bool]


class Outcomes(TypedDict):
    delivered: int
    failed: int
    rejected: dict[str, int]  # reason -> notifications


ProgressTable: TypeAlias = TableT[str, ScanState]
OutcomesTable: TypeAlias = TableT[str, Outcomes]

SCHEDULED, RUNNING, DONE, CANCELLED = (
    ScanStatus.SCHEDULED,
    ScanStatus.RUNNING,
    ScanStatus.DONE,
    ScanStatus.CANCELLED,
)
FINISHED = (DONE, CANCELLED)
_DELIVERED = (NotificationStatus.SENT, NotificationStatus.PARTIALLY_SENT, NotificationStatus.READ)


def key(campaign_id: str, partition: int) -> str:
    return f"{campaign_id}:{partition}"


def declare(app: faust.App, settings: Settings) -> ProgressTable:
    return app.Table(
        "campaign_progress",
        default=None,
        partitions=settings.partitions,
        key_type=bytes,
        help="<campaign_id>:<partition> -> {state, cursor, scanned, targeted, enqueued, skipped}",
    )


def declare_outcomes(app: faust.App, settings: Settings) -> OutcomesTable:
    return app.Table(
        "campaign_outcomes",
        default=None,
        partitions=settings.partitions,
        key_type=bytes,
        help="<campaign_id>:<partition> -> {delivered, failed, rejected: {reason: n}}",
    )


def new_scan(throttle: float, now: float) -> ScanState:
    return ScanState(
        state=SCHEDULED,
        cursor=None,
        scanned=0,
        targeted=0,
        enqueued=0,
        skipped={},
        throttle_per_second=throttle,
        updated_at=now,
    )


def _copy(scan: ScanState) -> ScanState:
    """The scan mutates its state as it goes: what is stored must be a snapshot (the RocksDB
    store serializes on write; the in-memory one would keep the live object)."""
    copied = ScanState(**scan)
    copied["skipped"] = dict(scan["skipped"])
    return copied


def get(table: ProgressTable, campaign_id: str, partition: int) -> ScanState | None:
    value = table.get(key(campaign_id, partition))
    return _copy(value) if value is not None else None


def put(table: ProgressTable, campaign_id: str, partition: int, scan: ScanState) -> None:
    """Writes ``scan``, keeping a cancel that was requested since it was read."""
    stored = table.get(key(campaign_id, partition))
    scan = _copy(scan)
    if stored is not None and stored.get("cancel_requested"):
        scan["cancel_requested"] = True
    table[key(campaign_id, partition)] = scan


def request_cancel(table: ProgressTable, campaign_id: str, partition: int, now: float) -> None:
    stored = get(table, campaign_id, partition) or new_scan(0.0, now)
    stored["cancel_requested"] = True
    if stored["state"] not in FINISHED and not stored.get("started_at"):
        stored["state"] = CANCELLED  # never started: nothing will run to record it
        stored["finished_at"] = now
    stored["updated_at"] = now
    table[key(campaign_id, partition)] = stored


def cancel_requested(table: ProgressTable, campaign_id: str, partition: int) -> bool:
    stored = table.get(key(campaign_id, partition))
    return bool(stored and stored.get("cancel_requested"))


def _bucket(status: str | None, reason: str | None) -> str | None:
    if status in _DELIVERED:
        return "delivered"
    if status in (NotificationStatus.FAILED, NotificationStatus.EXPIRED):
        return "failed"  # an expired notification reached nobody either
    if status == NotificationStatus.REJECTED:
        return f"rejected:{reason or 'unknown'}"
    return None


def tally(
    table: OutcomesTable,
    campaign_id: str,
    partition: int,
    before: tuple[str | None, str | None],
    after: tuple[str | None, str | None],
) -> None:
    """One notification moved from status ``before`` to ``after`` ((status, reason) each)."""
    left, entered = _bucket(*before), _bucket(*after)
    if left == entered:
        return
    k = key(campaign_id, partition)
    stored = table.get(k)
    counts = (
        Outcomes(delivered=0, failed=0, rejected={})
        if stored is None
        else Outcomes(
            delivered=stored["delivered"],
            failed=stored["failed"],
            rejected=dict(stored["rejected"]),
        )
    )
    for bucket, step in ((left, -1), (entered, 1)):
        if bucket is None:
            continue
        if bucket.startswith("rejected:"):
            reason = bucket.removeprefix("rejected:")
            counts["rejected"][reason] = max(0, counts["rejected"].get(reason, 0) + step)
        elif bucket == "delivered":
            counts["delivered"] = max(0, counts["delivered"] + step)
        else:
            counts["failed"] = max(0, counts["failed"] + step)
    table[k] = counts


def outcomes(table: OutcomesTable, campaign_id: str, partition: int) -> Outcomes | None:
    value = table.get(key(campaign_id, partition))
    return Outcomes(**value) if value is not None else None


def entries(table: ProgressTable | OutcomesTable) -> Iterator[tuple[str, int, Any]]:
    """(campaign_id, partition, stored value) of every entry on this worker's active
    partitions: what the metrics export (agents/metrics_collectors.py)."""
    for raw, value in table.items():
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        campaign_id, _, partition = text.rpartition(":")
        if campaign_id and partition.isdigit() and value is not None:
            yield campaign_id, int(partition), value
