"""A held-whole table's own writes read back from its changelog (tables/held_whole.py): the
ones a later write of its own replaced are skipped; the latest, and every other worker's
record, are applied. On the real broker: the template test in
tests/integration/test_templates_and_quiet_hours.py, which read a replaced version back."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from tables.held_whole import HeldWholeTable


@dataclass
class _Message:
    key: bytes
    value: bytes | None


@dataclass
class _Event:
    message: _Message


class _Writes:
    """The part of HeldWholeTable that ``_replaced`` reads."""

    def __init__(self, *written: tuple[bytes, bytes | None]) -> None:
        self._own_writes: defaultdict[bytes | None, list[bytes | None]] = defaultdict(list)
        for key, value in written:
            self._own_writes[key].append(value)


def replaced(writes: _Writes, key: bytes, value: bytes | None) -> bool:
    event: Any = _Event(_Message(key, value))
    return HeldWholeTable._replaced(writes, event)  # type: ignore[arg-type]


def test_an_own_write_replaced_by_a_later_one_is_skipped_and_the_latest_applied() -> None:
    writes = _Writes((b"t", b"v1"), (b"t", b"v2"))

    assert replaced(writes, b"t", b"v1")  # v2 is in the store already
    assert not replaced(writes, b"t", b"v2")  # the same as the store: applied, and forgotten
    assert not writes._own_writes


def test_other_workers_records_are_applied_and_leave_the_own_writes_waiting() -> None:
    writes = _Writes((b"t", b"v1"), (b"t", b"v2"))

    assert not replaced(writes, b"t", b"theirs")
    assert not replaced(writes, b"other", b"v1")
    assert writes._own_writes == {b"t": [b"v1", b"v2"]}


def test_a_write_whose_record_never_came_back_does_not_hold_up_the_later_ones() -> None:
    writes = _Writes((b"t", b"lost"), (b"t", b"v2"), (b"t", None))

    assert replaced(writes, b"t", b"v2")  # the deletion after it is in the store
    assert writes._own_writes == {b"t": [None]}
    assert not replaced(writes, b"t", None)
    assert not writes._own_writes
