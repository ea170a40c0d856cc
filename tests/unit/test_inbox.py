"""The inbox ring: newest first, at most ``keep``, two small writes per message."""

from __future__ import annotations

from typing import Any

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
