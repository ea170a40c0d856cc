"""The one rule for which topic resolves which request (streams/request_routes.py)."""

from __future__ import annotations

import pytest

from streams import topics
from streams.request_routes import next_topic

DEFERRED = ("normal", "low")


@pytest.mark.parametrize(
    "topic,priority,on_home,deferred,expected",
    [
        # The intake resolves high requests and hands the others to their own topic, whether
        # or not the record sits on its user's partition (the pass-on is keyed by user).
        (topics.REQUESTS, "high", True, DEFERRED, None),
        (topics.REQUESTS, "normal", True, DEFERRED, topics.REQUESTS_NORMAL),
        (topics.REQUESTS, "low", False, DEFERRED, topics.REQUESTS_LOW),
        (topics.REQUESTS, "normal", True, (), None),
        # Off its user's partition, a record is re-keyed on its own level.
        (topics.REQUESTS, "high", False, DEFERRED, topics.REQUESTS_BY_USER),
        (topics.REQUESTS_HIGH, "high", False, DEFERRED, topics.REQUESTS_HIGH),
        (topics.REQUESTS_NORMAL, "normal", False, (), topics.REQUESTS_NORMAL),
        # The re-keyed twin is never re-keyed again.
        (topics.REQUESTS_BY_USER, "high", False, DEFERRED, None),
        (topics.REQUESTS_NORMAL, "normal", True, (), None),
    ],
)
def test_next_topic(
    topic: str, priority: str, on_home: bool, deferred: tuple[str, ...], expected: str | None
) -> None:
    assert next_topic(topic, priority, on_home, deferred) == expected
