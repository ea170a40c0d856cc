"""The design's record shape and nothing else: what one delivery costs on Faust, with this app's
settings, patches, table class and produce path, when every stage only makes the table reads and
writes and the sends DESIGN.md asks of it. The pipeline's CPU per delivery minus this one is
what the pipeline's own logic costs; this one is what no change to that logic can remove.

``faust -A bench.floor_app worker -l info`` (``python -m bench.run floor``), configured through
the same ``NOTIFY_*`` variables as the real worker. Three agents, one record at a time
(``BENCH_FLOOR_SHAPE=per-event``) or in ``take_events()`` batches (``batched``):

- the intake on ``bench-floor-requests`` (key: the user): the request's dedup key looked up
  and claimed, the user's rate window read and counted, then each of the request's deliveries
  on ``bench-floor-lane`` (key: the user) and one ``accepted`` event on ``bench-floor-events``
  (key: the notification);
- the deliver agent on the lane: the ledger looked up, one POST to the webhook sandbox (the
  cheapest real provider call), the ledger written, one ``sent`` event;
- the status agent on the events: the notification's status read and written.

Per delivery, at the pipeline workload's 1.89 deliveries per request, that is 6.6 records
(the request's share, the lane record, the ``sent`` event and the ``accepted`` event's share,
and changelog writes for the ledger, the status, the dedup key and the rate window) against
the pipeline's 7.6 (``python -m bench.records``: the pipeline also passes normal and low
requests on to their own topics and keeps an inbox).
"""

from __future__ import annotations

import asyncio
import os
import time
import weakref
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

import aiohttp
import faust
import orjson
from faust.streams import _current_event
from faust.types import TableT, TopicT

import patches
from agents import produce
from config.settings import get_settings
from providers.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from streams.changelog_buffer import limit_changelog_buffer
from streams.faust_config import faust_settings
from streams.faust_types import Event, Stream
from streams.quiet_monitor import QuietMonitor
from tables.notify_table import NotifyTable

REQUESTS_TOPIC = os.environ.get("BENCH_FLOOR_REQUESTS", "bench-floor-requests")
LANE_TOPIC = os.environ.get("BENCH_FLOOR_LANE", "bench-floor-lane")
EVENTS_TOPIC = os.environ.get("BENCH_FLOOR_EVENTS", "bench-floor-events")
# Where every delivery is POSTed (the harness's webhook sandbox), signed as the webhook
# provider signs (providers/webhook.py), so that the sandbox accepts it.
POST_URL = os.environ.get("BENCH_FLOOR_POST_URL", "")
SIGNING_SECRET = os.environ.get("BENCH_FLOOR_SIGNING_SECRET", "")

settings = get_settings()
# The real worker's Faust as app.faust_app builds it (app itself cannot be imported here:
# importing it builds the whole pipeline). No urgent topics: nothing here is urgent.
patches.install(settings, ())
app = faust.App(
    settings.app_id, Monitor=QuietMonitor, Table=NotifyTable, **faust_settings(settings)
)
limit_changelog_buffer(app, settings.changelog_buffer_messages)


def _topic(name: str) -> TopicT:
    return app.topic(
        name, key_serializer="raw", value_serializer="raw", partitions=settings.partitions
    )


requests_topic = _topic(REQUESTS_TOPIC)
lane_topic = _topic(LANE_TOPIC)
events_topic = _topic(EVENTS_TOPIC)


def _table(name: str) -> TableT[str, Any]:
    # JSON values, Faust's default serializer, as the app's tables.
    return app.Table(name, partitions=settings.partitions)


dedup = _table("floor_dedup")
rate_windows = _table("floor_rate_windows")
ledger = _table("floor_ledger")
status = _table("floor_status")


def event(notification_id: str, state: str) -> bytes:
    return orjson.dumps({"notification_id": notification_id, "status": state})


Record = tuple[TopicT, bytes | None, bytes]


def admitted(key: bytes | None, value: bytes) -> list[Record]:
    """A request, ``{"id", "user_id", "deliveries"}``: its table work, and the records it makes."""
    request = orjson.loads(value)
    request_id: str = request["id"]
    if dedup.get(request_id) is not None:
        return []
    dedup[request_id] = 1
    user_id: str = request["user_id"]
    rate_windows[user_id] = int(rate_windows.get(user_id) or 0) + 1
    records: list[Record] = [
        (lane_topic, key, orjson.dumps({"delivery_id": f"{request_id}:{n}", "request": request_id}))
        for n in range(request["deliveries"])
    ]
    records.append((events_topic, request_id.encode(), event(request_id, "accepted")))
    return records


def unsent(value: bytes) -> bool:
    return ledger.get(orjson.loads(value)["delivery_id"]) is None


async def post(session: aiohttp.ClientSession, value: bytes) -> None:
    timestamp = str(int(time.time()))
    headers = {
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(SIGNING_SECRET, timestamp, value),
    }
    async with session.post(POST_URL, data=value, headers=headers) as response:
        await response.read()


def sent(value: bytes) -> Record:
    """The ledger written for a delivery the provider took, and its ``sent`` event."""
    delivery = orjson.loads(value)
    ledger[delivery["delivery_id"]] = "webhook"
    request_id: str = delivery["request"]
    return (events_topic, request_id.encode(), event(request_id, "sent"))


def fold(notification_id: str, state: str, sends: int) -> None:
    before = status.get(notification_id)
    earlier = int(before["sent"]) if isinstance(before, dict) else 0
    status[notification_id] = {"status": state, "sent": earlier + sends}


async def send_all(records: list[Record]) -> None:
    for topic, key, value in records:
        await produce.send(topic, key, value)


async def intake_per_event(stream: Stream) -> None:
    async for key, value in stream.items():
        await send_all(admitted(key, value))


async def deliver_per_event(stream: Stream) -> None:
    async with aiohttp.ClientSession() as session:
        async for value in stream:
            if unsent(value):
                await post(session, value)
                await send_all([sent(value)])


async def status_per_event(stream: Stream) -> None:
    async for value in stream:
        folded = orjson.loads(value)
        fold(folded["notification_id"], folded["status"], folded["status"] == "sent")


# Batched: ``take_events()`` batches, each table write made as its own event (so it lands in
# that event's partition), the batch's POSTs at once, and one status write per notification
# per batch: the shape issue 15 names, with the same table writes as above otherwise.
BATCH = int(os.environ.get("BENCH_FLOOR_BATCH", "500"))
WITHIN_SECONDS = 0.01


def as_current(event: Event) -> None:
    _current_event.set(weakref.ref(event))


def batches(stream: Stream) -> AsyncIterator[Sequence[Event]]:
    # faust.Stream has take_events; its StreamT interface does not declare it.
    taken: AsyncIterator[Sequence[Event]] = cast(faust.Stream[Any], stream).take_events(
        BATCH, within=WITHIN_SECONDS
    )
    return taken


async def intake_batched(stream: Stream) -> None:
    async for events in batches(stream):
        records: list[Record] = []
        for each in events:
            as_current(each)
            records += admitted(each.key, each.value)
        await send_all(records)


async def deliver_batched(stream: Stream) -> None:
    async with aiohttp.ClientSession() as session:
        async for events in batches(stream):
            todo = []
            for each in events:
                as_current(each)
                if unsent(each.value):
                    todo.append(each)
            await asyncio.gather(*(post(session, each.value) for each in todo))
            records = []
            for each in todo:
                as_current(each)
                records.append(sent(each.value))
            await send_all(records)


async def status_batched(stream: Stream) -> None:
    async for events in batches(stream):
        # notification -> (its last event, its last status, sends in this batch)
        folded: dict[str, tuple[Event, str, int]] = {}
        for each in events:
            change = orjson.loads(each.value)
            notification_id: str = change["notification_id"]
            _, _, sends = folded.get(notification_id, (each, "", 0))
            folded[notification_id] = (each, change["status"], sends + (change["status"] == "sent"))
        for notification_id, (last, state, sends) in folded.items():
            as_current(last)
            fold(notification_id, state, sends)


SHAPE = os.environ.get("BENCH_FLOOR_SHAPE", "per-event")
if SHAPE == "batched":
    agents = (intake_batched, deliver_batched, status_batched)
elif SHAPE == "per-event":
    agents = (intake_per_event, deliver_per_event, status_per_event)
else:
    raise ValueError(f"BENCH_FLOOR_SHAPE={SHAPE!r}: per-event or batched")
for topic, body in zip((requests_topic, lane_topic, events_topic), agents, strict=True):
    app.agent(topic, name=f"floor_{body.__name__}")(body)
