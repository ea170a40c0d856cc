"""How the crash runner explains duplicates (scripts/crash_checks.py)."""

from __future__ import annotations

from typing import Any

from scripts.crash_checks import classify_duplicates, duplicate_timings

KILL = 1000.0


def arrival(nid: str, at: float) -> dict[str, Any]:
    return {"notification_id": nid, "address": "a", "received_at": at, "sandbox": "webhook"}


RECORDS = [
    arrival("before", KILL - 0.15), arrival("before", KILL + 5.0),  # sent, then the kill
    arrival("on-its-way", KILL + 0.004), arrival("on-its-way", KILL + 5.4),
    arrival("long-before", KILL - 30.0), arrival("long-before", KILL + 5.0),
    arrival("once", KILL - 1.0),
]  # fmt: skip


def test_a_copy_whose_first_arrived_around_a_kill_was_in_flight_at_it() -> None:
    assert classify_duplicates(RECORDS, [KILL]) == {
        "in flight at a kill": 2,
        "not near a kill": 1,
    }


def test_timings_are_relative_to_the_nearest_kill_earliest_first() -> None:
    timings = duplicate_timings(RECORDS, [KILL])
    assert [t["pair"][0] for t in timings] == ["long-before", "before", "on-its-way"]
    assert timings[1]["after_kill"] == [-0.15, 5.0] and timings[1]["channel"] == "webhook"
