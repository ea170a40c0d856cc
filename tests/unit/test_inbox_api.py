"""The inbox routes' own logic: the listing's shape, the action records they write, and the
live stream's events, resume point and redirect."""

from __future__ import annotations

import orjson
import pytest
from multidict import CIMultiDict
from yarl import URL

from api.errors import ApiError
from api.inbox import action_record, include_archived
from api.inbox_schemas import page
from api.inbox_stream import event, last_event_id, missed, redirect_to
from config.vocabulary import InboxAction
from streams.inbox_actions import parse_inbox_action
from tables.inbox import InboxEntry, InboxMessage


def entry(position: int, read: bool = False, archived: bool = False) -> InboxEntry:
    message = InboxMessage(
        notification_id=f"n{position}", title="Hi", body="there", data={"k": "v"}, at=1.5
    )
    if archived:
        message["archived_at"] = 2.5
    return InboxEntry(position, message, read, archived)


class FakeRequest:
    def __init__(self, headers: dict[str, str], query: dict[str, str] | None = None) -> None:
        self.headers = CIMultiDict(headers)
        self.query = query or {}


def test_the_listing_leaves_archived_out_unless_asked_and_counts_unread() -> None:
    entries = [entry(2), entry(1, archived=True), entry(0, read=True)]
    shown = page("u1", entries, include_archived=False)
    assert shown.unread == 1
    assert [m.id for m in shown.messages] == [2, 0]
    every = page("u1", entries, include_archived=True)
    assert [(m.id, m.archived, m.archived_at) for m in every.messages][1] == (1, True, 2.5)


@pytest.mark.parametrize(("given", "wanted"), [("", False), ("true", True), ("0", False)])
def test_include_archived_reads_a_boolean(given: str, wanted: bool) -> None:
    assert include_archived({"include_archived": given}) is wanted


def test_include_archived_refuses_anything_else() -> None:
    with pytest.raises(ApiError) as refused:
        include_archived({"include_archived": "maybe"})
    assert refused.value.status == 400


def test_an_action_is_the_record_the_control_agent_parses() -> None:
    raw = action_record("u1", InboxAction.ARCHIVE, "n7")
    parsed = parse_inbox_action(raw)
    assert (parsed.user_id, parsed.action, parsed.notification_id) == ("u1", "archive", "n7")
    assert orjson.loads(action_record("u1", InboxAction.READ_ALL, None)) == {
        "user_id": "u1",
        "action": "read_all",
    }


def test_an_action_on_a_too_long_id_is_a_400_naming_the_field() -> None:
    with pytest.raises(ApiError) as refused:
        action_record("u1", InboxAction.READ, "n" * 201)
    assert refused.value.status == 400 and "notification_id" in refused.value.message


def test_an_event_carries_the_position_as_its_id_and_the_message_on_one_line() -> None:
    raw = event(entry(41))
    head, data, end = raw.split(b"\n", 2)
    assert head == b"id: 41" and end == b"\n"
    assert data.startswith(b"data: ")
    item = orjson.loads(data.removeprefix(b"data: "))
    assert (item["id"], item["notification_id"], item["read"]) == (41, "n41", False)


def test_the_resume_point_comes_from_the_header_or_the_query() -> None:
    assert last_event_id(FakeRequest({})) is None
    assert last_event_id(FakeRequest({"Last-Event-ID": "12"})) == 12
    assert last_event_id(FakeRequest({}, {"last_event_id": "3"})) == 3
    with pytest.raises(ApiError):
        last_event_id(FakeRequest({"Last-Event-ID": "-1"}))


def test_a_resumed_stream_is_sent_what_came_after_oldest_first() -> None:
    kept = [entry(5), entry(4), entry(3)]
    assert [e.position for e in missed(kept, 3)] == [4, 5]
    assert missed(kept, 5) == []
    assert missed(kept, None) == []  # a fresh stream: its client lists the inbox


def test_a_stream_asked_of_another_worker_is_redirected_to_the_same_path_there() -> None:
    here = URL("http://10.0.0.5:6066/v1/users/u%201/inbox/stream?last_event_id=4")
    owner = URL("http://10.0.0.7:6067")
    assert str(redirect_to(owner, here)) == (
        "http://10.0.0.7:6067/v1/users/u%201/inbox/stream?last_event_id=4"
    )
