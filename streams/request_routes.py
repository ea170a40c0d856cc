"""Where a request record goes next: resolved where it is, passed on to its priority's own
request topic, or re-keyed. One rule, used by the intake agents.

Every request topic's agent reads its partitions in FIFO order, so an urgent request queued
behind a burst waits for the whole burst. The priority topics keep the bursts apart: the agents
that pass records on (the public topic's and the high topic's) only resolve what is theirs and
hand every deferred priority on, untouched, keyed by ``user_id``.
"""

from __future__ import annotations

from collections.abc import Collection

from config.vocabulary import Priority
from streams import topics

PRIORITY_TOPICS: dict[str, str] = {
    Priority.HIGH: topics.REQUESTS_HIGH,
    Priority.NORMAL: topics.REQUESTS_NORMAL,
    Priority.LOW: topics.REQUESTS_LOW,
}
# Topics producers write to; a record there off its user's partition is re-keyed once.
PUBLIC_TOPICS = frozenset({topics.REQUESTS, *PRIORITY_TOPICS.values()})


def next_topic(
    topic: str | None, priority: str, on_home: bool, deferred: Collection[str]
) -> str | None:
    """The topic a record read from ``topic`` by an agent that defers ``deferred`` is passed on
    to; None: resolved here."""
    if priority in deferred:
        return PRIORITY_TOPICS[priority]
    if topic in PUBLIC_TOPICS and not on_home:
        # Re-keyed on the same level: a priority topic's record stays on its priority's topic.
        return topic if topic != topics.REQUESTS else topics.REQUESTS_BY_USER
    return None
