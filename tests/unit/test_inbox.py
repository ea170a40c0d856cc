"""The inbox ring: newest first, at most ``keep``, two small writes per message; read and
archived state changed by inbox actions without adding to a delivery's writes."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest

from streams.inbox_actions import parse_inbox_action
from streams.wire import InvalidRecord
from tables import inbox


class RecordingTable(dict[str, Any]):
    """A table stand-in that counts writes (what reaches RocksDB and the changelog)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def __setitem__(self, key: str, value: Any) -> None:
        self.writes.append(key)
        super().__setitem__(key, value)


def note(n: int) -> dict[str, Any]:
    return {"notification_id": f"n{n}", "title": f"t{n}"}


def test_empty_inbox() -> None:
    assert inbox.messages(RecordingTable(), "u1") == []  # type: ignore[arg-type]


def test_newest_first_and_bounded() -> None:
    table = RecordingTable()
    for n in range(7):
        inbox.add(table, "u1", note(n), keep=3)  # type: ignore[arg-type]
    got = inbox.messages(table, "u1")  # type: ignore[arg-type]
    assert [m["notification_id"] for m in got] == ["n6", "n5", "n4"]
    assert len([k for k in table if k.startswith("u1#") and k != "u1#head"]) == 3
    assert len(table.writes) == 14  # a slot and the head per message, whatever the inbox holds


def test_users_do_not_share_a_ring() -> None:
    table = RecordingTable()
    inbox.add(table, "u1", note(1), keep=5)  # type: ignore[arg-type]
    inbox.add(table, "u2", note(2), keep=5)  # type: ignore[arg-type]
    assert [m["notification_id"] for m in inbox.messages(table, "u1")] == ["n1"]  # type: ignore[arg-type]


def test_a_new_ring_size_starts_a_fresh_ring() -> None:
    table = RecordingTable()
    for n in range(4):
        inbox.add(table, "u1", note(n), keep=2)  # type: ignore[arg-type]
    inbox.add(table, "u1", note(9), keep=5)  # type: ignore[arg-type]
    assert [m["notification_id"] for m in inbox.messages(table, "u1")] == ["n9"]  # type: ignore[arg-type]


# --------------------------------------------------------------------------- read and archived


def kept(table: RecordingTable, user_id: str = "u1") -> list[tuple[str, bool, bool]]:
    return [
        (e.message["notification_id"], e.read, e.archived)
        for e in inbox.entries(table, user_id)  # type: ignore[arg-type]
    ]


def filled(n: int, keep: int = 5) -> RecordingTable:
    table = RecordingTable()
    for i in range(n):
        assert inbox.add(table, "u1", note(i), keep=keep) == i  # type: ignore[arg-type]
    return table


def test_positions_count_every_message_ever_added() -> None:
    table = filled(7, keep=3)
    assert [e.position for e in inbox.entries(table, "u1")] == [6, 5, 4]  # type: ignore[arg-type]


def test_marking_one_read_rewrites_only_its_slot() -> None:
    table = filled(3)
    table.writes.clear()
    assert inbox.mark_read(table, "u1", "n1", at=5.0)  # type: ignore[arg-type]
    assert table.writes == ["u1#1"]
    assert kept(table) == [("n2", False, False), ("n1", True, False), ("n0", False, False)]
    assert table["u1#1"]["read_at"] == 5.0
    assert inbox.unread(inbox.entries(table, "u1")) == 2  # type: ignore[arg-type]
    assert not inbox.mark_read(table, "u1", "n1", at=6.0)  # type: ignore[arg-type]
    assert not inbox.mark_read(table, "u1", "gone", at=6.0)  # type: ignore[arg-type]
    assert table.writes == ["u1#1"]  # a repeat, or a message no longer kept, writes nothing


def test_mark_all_read_is_one_write_and_later_messages_are_unread() -> None:
    table = filled(4, keep=3)
    table.writes.clear()
    assert inbox.mark_all_read(table, "u1")  # type: ignore[arg-type]
    assert table.writes == ["u1#head"]
    assert not inbox.mark_all_read(table, "u1")  # type: ignore[arg-type]  # nothing new
    inbox.add(table, "u1", note(9), keep=3)  # type: ignore[arg-type]
    assert kept(table) == [("n9", False, False), ("n3", True, False), ("n2", True, False)]
    assert inbox.unread(inbox.entries(table, "u1")) == 1  # type: ignore[arg-type]


def test_a_delivery_still_writes_two_values_whatever_the_state() -> None:
    table = filled(3)
    inbox.mark_all_read(table, "u1")  # type: ignore[arg-type]
    inbox.archive(table, "u1", "n0", at=1.0)  # type: ignore[arg-type]
    table.writes.clear()
    inbox.add(table, "u1", note(3), keep=5)  # type: ignore[arg-type]
    assert table.writes == ["u1#3", "u1#head"]


def test_an_archived_message_is_kept_but_not_counted_unread() -> None:
    table = filled(2)
    assert inbox.archive(table, "u1", "n1", at=2.0)  # type: ignore[arg-type]
    assert not inbox.archive(table, "u1", "n1", at=3.0)  # type: ignore[arg-type]
    assert kept(table) == [("n1", False, True), ("n0", False, False)]
    assert inbox.unread(inbox.entries(table, "u1")) == 1  # type: ignore[arg-type]
    assert inbox.mark_read(table, "u1", "n1", at=4.0)  # type: ignore[arg-type]
    assert kept(table)[0] == ("n1", True, True)  # both kept on the slot


def test_a_message_pushed_out_of_the_ring_takes_its_state_with_it() -> None:
    table = filled(2, keep=2)
    inbox.mark_read(table, "u1", "n0", at=1.0)  # type: ignore[arg-type]
    inbox.add(table, "u1", note(2), keep=2)  # type: ignore[arg-type]  # overwrites n0's slot
    assert kept(table) == [("n2", False, False), ("n1", False, False)]


def test_a_head_written_before_read_state_existed_reads_as_nothing_read() -> None:
    table = RecordingTable()
    table["u1#head"] = {"count": 1, "keep": 5}
    table["u1#0"] = note(0)
    assert kept(table) == [("n0", False, False)]


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ({"action": "read", "notification_id": "n0"}, [("n1", False, False), ("n0", True, False)]),
        ({"action": "read_all"}, [("n1", True, False), ("n0", True, False)]),
        (
            {"action": "archive", "notification_id": "n1"},
            [("n1", False, True), ("n0", False, False)],
        ),
    ],
)
def test_an_action_record_applies_its_change(
    action: dict[str, str], expected: list[tuple[str, bool, bool]]
) -> None:
    table = filled(2)
    record = parse_inbox_action(orjson.dumps({"user_id": "u1", **action}))
    assert inbox.apply(table, record, now=7.0)  # type: ignore[arg-type]
    assert kept(table) == expected


def test_an_action_takes_the_time_the_user_acted_when_given() -> None:
    table = filled(1)
    record = parse_inbox_action(b'{"user_id":"u1","action":"read","notification_id":"n0","at":3.5}')
    inbox.apply(table, record, now=7.0)  # type: ignore[arg-type]
    assert table["u1#0"]["read_at"] == 3.5


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"user_id":"u1","action":"read"}', "'notification_id' is required to read a message"),
        (b'{"user_id":" ","action":"read_all"}', "'user_id' is required"),
        (b'{"user_id":"u1","action":"delete"}', "Invalid enum value 'delete' - at `$.action`"),
        (b'{"action":"read_all"}', "missing user_id"),
        (b"[]", "expected a JSON object, got list"),
    ],
)
def test_a_bad_action_record_is_refused_with_its_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidRecord, match=re.escape(reason)):
        parse_inbox_action(raw)
