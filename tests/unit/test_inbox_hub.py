"""The live inbox hub: a new message reaches every stream open for its user, a slow client is
dropped rather than waited on, and streams end when told to."""

from __future__ import annotations

import pytest

from agents.inbox_hub import FeedClosed, InboxChange, InboxHub
from tables.inbox import InboxEntry, InboxMessage


def entry(position: int) -> InboxEntry:
    message = InboxMessage(
        notification_id=f"n{position}", title="t", body="b", data={}, at=float(position)
    )
    return InboxEntry(position, message, read=False, archived=False)


async def test_a_message_reaches_every_stream_of_its_user_only() -> None:
    hub = InboxHub(queue_size=4)
    first, second, other = hub.subscribe("u1"), hub.subscribe("u1"), hub.subscribe("u2")
    hub.publish("u1", 0, entry(0).message)
    assert await first.next_entry(1.0) == entry(0)
    assert await second.next_entry(1.0) == entry(0)
    assert await other.next_entry(0.01) is None  # nothing for u2: a heartbeat's turn
    assert hub.open_streams == 3


async def test_a_state_change_reaches_its_users_streams_in_order_with_the_messages() -> None:
    hub = InboxHub(queue_size=4)
    feed, other = hub.subscribe("u1"), hub.subscribe("u2")
    assert hub.listens("u1") and not hub.listens("u3")
    read = InboxChange("read", "n0", unread=0)
    hub.publish("u1", 0, entry(0).message)
    hub.publish_change("u1", read)
    assert await feed.next_entry(1.0) == entry(0)
    assert await feed.next_entry(1.0) == read
    assert await other.next_entry(0.01) is None


async def test_publishing_to_nobody_keeps_nothing() -> None:
    hub = InboxHub(queue_size=4)
    hub.publish("u1", 0, entry(0).message)
    feed = hub.subscribe("u1")
    assert await feed.next_entry(0.01) is None  # subscribed after: not sent it


async def test_a_slow_client_is_dropped_and_the_others_go_on() -> None:
    drops: list[None] = []
    hub = InboxHub(queue_size=2, on_drop=lambda: drops.append(None))
    slow, quick = hub.subscribe("u1"), hub.subscribe("u1")
    for position in range(3):
        hub.publish("u1", position, entry(position).message)
        assert await quick.next_entry(1.0) == entry(position)
    assert hub.dropped == len(drops) == 1 and hub.open_streams == 1
    with pytest.raises(FeedClosed, match="slow client"):
        await slow.next_entry(1.0)  # what it had queued is dropped with it: it resumes by id


async def test_closing_the_streams_of_moved_users() -> None:
    hub = InboxHub(queue_size=4)
    moved, stays = hub.subscribe("u1"), hub.subscribe("u2")
    assert hub.close_where(lambda user_id: user_id == "u1", "moved") == 1
    with pytest.raises(FeedClosed, match="moved"):
        await moved.next_entry(1.0)
    hub.publish("u2", 0, entry(0).message)
    assert await stays.next_entry(1.0) == entry(0)


async def test_stopping_the_hub_ends_every_stream() -> None:
    hub = InboxHub(queue_size=4)
    feed = hub.subscribe("u1")
    await hub.on_stop()
    with pytest.raises(FeedClosed, match="stopping"):
        await feed.next_entry(1.0)
    hub.unsubscribe(feed)  # the stream's own cleanup after the hub let go: harmless
    assert hub.open_streams == 0
