"""The urgent topics' partitions get a fetch loop and broker connections of their own, so an
urgent record never waits for a fetch of bulk records.

aiokafka keeps one fetch in flight per broker, naming every partition the consumer reads from
that broker (``Fetcher._get_actions_per_node``: a node with a fetch in flight gets no other).
In a storm the bulk partitions always have records, so every fetch brings up to 16 KiB from
each of them, and a high-priority record produced just after a fetch left waits for that
fetch's answer, for its parsing, and for the next fetch; resting caught-up partitions
(``patches/resting_partitions.py``) made the fetches shorter but not separate. Measured in the
storm before this patch (README, "Urgent first in a storm"): high p99 272-322 ms, about half of
it before the intake took the request.

Here a second fetch loop, a shallow copy of the consumer's Fetcher, fetches only the urgent
topics' partitions, over a connection group of its own (a broker answers the requests of one
connection in order, so a fetch on the bulk connection would queue behind the bulk fetch). The
consumer's own loop fetches every other partition. The copy shares the record buffer, the
subscription state and the consumer's waiters, so ``getmany`` reads both loops' records as
before, and each partition is fetched by exactly one loop, whose positions move as upstream
moves them. Its records are put first in the buffer, so a ``getmany`` that stops at its record
limit takes them before the bulk ones. The same holds on Kafka: two connections per broker, as
the coordinator already has.
"""

from __future__ import annotations

import asyncio
import copy
import functools
from collections.abc import Callable, Collection
from typing import Any

from aiokafka.client import AIOKafkaClient, ConnectionGroup
from aiokafka.consumer.fetcher import Fetcher
from aiokafka.structs import TopicPartition

from patches.pin import require_unchanged, tune_fetcher_on_start, tune_worker_consumers
from patches.resting_partitions import AssignmentView

WORKS_AROUND = "aiokafka: one fetch in flight per broker, so urgent partitions wait for bulk ones"

# What this relies on: the loop's own state is ``_in_flight``, ``_pending_tasks``,
# ``_wait_consume_future`` and ``_fetch_task`` (set in __init__, the rest is shared settings and
# buffers); the loop asks ``_get_actions_per_node`` for each round's requests; responses land in
# ``_records``; ``fetched_records`` and the seeks wake the loop through
# ``_notify(_wait_consume_future)``; every request goes through ``_client.send``; connections
# are keyed by (node, group) and a group is only a key.
EXPECTED_SOURCE = {
    "Fetcher.__init__": "bf21ecb7",
    "Fetcher.close": "1cd24bc1",
    "Fetcher._fetch_requests_routine": "2a8ec593",
    "Fetcher._get_actions_per_node": "1dab2cf9",
    "Fetcher._proc_fetch_request": "59bf948f",
    "Fetcher.fetched_records": "be434889",
    "AIOKafkaClient._get_conn": "68ce5d83",
}

# The key of the urgent loop's connections in the client's (node, group) table.
URGENT_CONNECTIONS = "urgent-fetch"

Actions = tuple[Any, Any, float, bool, list[Any]]


class OwnConnections:
    """The consumer's client, with every default-group request on connections of ``group``."""

    def __init__(self, client: Any, group: object) -> None:
        self._client = client
        self._group = group

    async def send(
        self, node_id: Any, request: Any, *, group: Any = ConnectionGroup.DEFAULT
    ) -> Any:
        own = self._group if group is ConnectionGroup.DEFAULT else group
        return await self._client.send(node_id, request, group=own)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def only(
    actions: Callable[[Any], Actions], keep: Callable[[TopicPartition], bool]
) -> Callable[[Any], Actions]:
    """A fetch loop's round planner that considers only the partitions ``keep`` accepts.

    An assignment's partitions never change (aiokafka builds a new Assignment at each
    rebalance), so they are filtered once per assignment, not once per round: each loop plans
    20-40 rounds a second over every partition the worker reads."""
    seen: Any = None  # the assignment of the last round
    kept: frozenset[TopicPartition] = frozenset()  # its partitions that ``keep`` accepts

    def planned(assignment: Any) -> Actions:
        nonlocal seen, kept
        if assignment is not seen:
            seen, kept = assignment, frozenset(filter(keep, assignment.tps))
        return actions(AssignmentView(assignment, kept))

    return planned


def put_first(records: Any, urgent_topics: frozenset[str]) -> None:
    """Moves the urgent partitions' fetched records to the front of the shared buffer."""
    for tp in [tp for tp in records if tp.topic in urgent_topics]:
        records.move_to_end(tp, last=False)


def split_urgent_fetches(fetcher: Any, urgent_topics: frozenset[str]) -> Any:
    """Starts the urgent fetch loop beside ``fetcher``'s, narrows ``fetcher``'s to the other
    partitions, and returns the urgent loop's Fetcher."""
    urgent = copy.copy(fetcher)
    urgent._client = OwnConnections(fetcher._client, URGENT_CONNECTIONS)
    urgent._in_flight = set()
    urgent._pending_tasks = set()
    urgent._wait_consume_future = None

    def is_urgent(tp: TopicPartition) -> bool:
        return tp.topic in urgent_topics

    # The consumer's loop keeps whatever planner it has (the resting one); urgent partitions
    # never rest, so the urgent loop plans with upstream's.
    fetcher._get_actions_per_node = only(
        fetcher._get_actions_per_node, lambda tp: not is_urgent(tp)
    )
    urgent._get_actions_per_node = only(
        functools.partial(Fetcher._get_actions_per_node, urgent), is_urgent
    )
    fetch = functools.partial(Fetcher._proc_fetch_request, urgent)

    async def fetch_then_put_first(assignment: Any, node_id: Any, request: Any) -> bool:
        has_new_data: bool = await fetch(assignment, node_id, request)
        if has_new_data:
            put_first(urgent._records, urgent_topics)
        return has_new_data

    urgent._proc_fetch_request = fetch_then_put_first
    wake_consumer_loop = fetcher._notify

    def wake_both(future: Any) -> None:
        # The consumer takes records and seeks through the original Fetcher only: whatever
        # wakes its loop (records taken, a seek, a reset) may concern the urgent loop too.
        wake_consumer_loop(future)
        if future is fetcher._wait_consume_future:
            wake_consumer_loop(urgent._wait_consume_future)

    fetcher._notify = wake_both
    close_consumer_loop = fetcher.close

    async def close_both() -> None:
        await urgent.close()
        await close_consumer_loop()

    fetcher.close = close_both
    urgent._fetch_task = asyncio.ensure_future(urgent._fetch_requests_routine())
    return urgent


def tune_on_start(consumer: Any, urgent_topics: frozenset[str]) -> None:
    tune_fetcher_on_start(
        consumer,
        "_in_flight",
        lambda fetcher: split_urgent_fetches(fetcher, urgent_topics),
    )


def check_upstream() -> None:
    upstream = {
        "Fetcher.__init__": Fetcher.__init__,
        "Fetcher.close": Fetcher.close,
        "Fetcher._fetch_requests_routine": Fetcher._fetch_requests_routine,
        "Fetcher._get_actions_per_node": Fetcher._get_actions_per_node,
        "Fetcher._proc_fetch_request": Fetcher._proc_fetch_request,
        "Fetcher.fetched_records": Fetcher.fetched_records,
        "AIOKafkaClient._get_conn": AIOKafkaClient._get_conn,
    }
    require_unchanged("patches/urgent_fetch.py", upstream, EXPECTED_SOURCE)


def install(enabled: bool, urgent_topics: Collection[str]) -> None:
    """Idempotent; installs nothing when not ``enabled``. Install after the other fetcher
    tunings, so that the copy starts with their settings. Raises UpstreamChanged on upstream
    code this was not written against."""
    if not enabled:
        return
    check_upstream()
    urgent = frozenset(urgent_topics)
    tune_worker_consumers("__urgent_fetch__", lambda consumer: tune_on_start(consumer, urgent))
