"""What a crash run checks once the sandboxes have gone quiet: lost and duplicated deliveries,
status views that lag behind what arrived, faust crash lines in the worker logs, and, for every
lost delivery, where its records sit against the group's committed offsets.

Shared by ``scripts.crash_runs`` (the acceptance runner) and its integration test; the pair
counting is ``tests/integration/pipeline_harness``'s, so the runner and the pipeline tests
agree on what "expected" means.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from scripts.workload import User, topic_names
from streams import topics
from streams.deliveries import ACCEPTED, SUCCESSES, delivery_id_for
from tests.integration.pipeline_harness import sandbox_address

Pair = tuple[str, str]  # (notification_id, address as the sandbox records it)
GROUP = "notify"  # Settings.app_id: the consumer group every worker joins
# Overall statuses a notification may legitimately show once everything it expects arrived.
_COMPLETE = {"sent"}
_NOTHING_TO_SEND = {"rejected"}  # every requested channel switched off for the user


@dataclass(frozen=True)
class Tally:
    expected: int  # deliveries the preferences and addresses allow
    received: int  # records at the sandboxes, copies included
    lost: int  # expected pairs that never arrived
    duplicates: int  # copies beyond the first of an expected pair
    unexpected: int  # pairs nobody asked for (a channel switched off, a wrong address)

    @property
    def duplicate_pct(self) -> float:
        return 100.0 * self.duplicates / self.expected if self.expected else 0.0


def tally(expected: Counter[Pair], got: Counter[Pair]) -> Tally:
    return Tally(
        expected=sum(expected.values()),
        received=sum(got.values()),
        lost=sum(1 for pair in expected if pair not in got),
        duplicates=sum(max(0, n - expected[p]) for p, n in got.items() if p in expected),
        unexpected=sum(n for p, n in got.items() if p not in expected),
    )


# A send whose ledger write had not reached the broker when its worker was killed is sent again
# by the partition's next reader: its first copy arrived shortly before the kill (measured:
# within 150 ms), or just after it when the request was already on its way (measured: 4 ms).
IN_FLIGHT_WINDOW_SECONDS = 1.0
ARRIVED_AFTER_KILL_SECONDS = 0.25


def classify_duplicates(
    records: Iterable[Mapping[str, Any]], kills: Sequence[float]
) -> Counter[str]:
    """Copies beyond the first of each (notification, address), by whether the first copy
    arrived within IN_FLIGHT_WINDOW_SECONDS before a kill or ARRIVED_AFTER_KILL_SECONDS after it
    (in flight at it) or not."""
    first: dict[Pair, float] = {}
    copies: Counter[Pair] = Counter()
    for record in records:
        pair = (record["notification_id"], record["address"])
        at = float(record["received_at"])
        copies[pair] += 1
        first[pair] = min(first.get(pair, at), at)
    classes: Counter[str] = Counter()
    for pair, n in copies.items():
        if n < 2:
            continue
        at = first[pair]
        near = any(
            -ARRIVED_AFTER_KILL_SECONDS <= kill - at <= IN_FLIGHT_WINDOW_SECONDS for kill in kills
        )
        classes["in flight at a kill" if near else "not near a kill"] += n - 1
    return classes


def duplicate_timings(
    records: Iterable[Mapping[str, Any]], kills: Sequence[float]
) -> list[dict[str, Any]]:
    """Each duplicated pair's arrival times, in seconds relative to the nearest kill before
    the first copy's next one: where the copies fall says which window they came from."""
    arrivals: dict[Pair, list[float]] = {}
    channels: dict[Pair, str] = {}
    for record in records:
        pair = (record["notification_id"], record["address"])
        arrivals.setdefault(pair, []).append(float(record["received_at"]))
        channels[pair] = str(record.get("sandbox", ""))
    timings: list[dict[str, Any]] = []
    for pair, times in arrivals.items():
        if len(times) < 2:
            continue
        times.sort()
        kill = min(kills, key=lambda k: abs(k - times[0])) if kills else times[0]
        timings.append(
            {
                "pair": list(pair),
                "channel": channels[pair],
                "after_kill": [round(t - kill, 3) for t in times],
            }
        )
    return sorted(timings, key=lambda t: float(t["after_kill"][0]))


def expected_ids(
    requests: Iterable[Mapping[str, Any]], users: Mapping[str, User], inapp_url: str
) -> dict[Pair, str]:
    """Each expected pair's delivery id, computed the way the fan-out does (from the raw
    address), so a lost pair can be found on the lanes, in the ledger and in the status view."""
    ids: dict[Pair, str] = {}
    for request in requests:
        nid = request["notification_id"]
        for channel in request["channels"]:
            for address in users[request["user_id"]].addresses(channel, inapp_url):
                ids[(nid, sandbox_address(address))] = delivery_id_for(nid, channel, address)
    return ids


# ---------------------------------------------------------------------------- status views


async def fetch_statuses(
    web_url: str, nids: Sequence[str], concurrency: int = 16
) -> dict[str, dict[str, Any] | None]:
    """GET /notifications/<id>/ for each id (None on 404): a handful at a time, so the
    worker under test is not starved of the CPU it still needs for its own lanes."""
    import aiohttp

    found: dict[str, dict[str, Any] | None] = {}
    gate = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=30)

    async def one(session: aiohttp.ClientSession, nid: str) -> None:
        async with gate, session.get(f"{web_url}/notifications/{nid}/") as response:
            found[nid] = orjson.loads(await response.read()) if response.status == 200 else None

    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(one(session, nid) for nid in nids))
    return found


def status_problem(view: Mapping[str, Any] | None, delivered_ids: Iterable[str]) -> str | None:
    """Why a notification's view is stale although all its deliveries arrived, or None.

    ``delivered_ids``: the delivery ids the sandboxes saw for it (none when every requested
    channel is switched off, and then the request is rejected)."""
    ids = list(delivered_ids)
    if view is None:
        return "missing"
    status = view.get("status")
    if not ids:
        return None if status in _NOTHING_TO_SEND else f"status={status} (nothing to send)"
    if status not in _COMPLETE:
        return f"status={status}"
    entries = view.get("deliveries") or {}
    for did in ids:
        shown = (entries.get(did) or {}).get("status")
        if shown not in SUCCESSES:
            return f"delivery status={shown}"
    return None


@dataclass(frozen=True)
class StatusCheck:
    checked: int
    stale: dict[str, str]  # notification_id -> problem
    seconds: float

    @property
    def reasons(self) -> Counter[str]:
        return Counter(self.stale.values())


def check_statuses(
    web_url: str,
    complete: Mapping[str, set[str]],
    sample: int,
    seed: int,
    settle_seconds: float = 30.0,
) -> StatusCheck:
    """Check the view of every complete notification (``sample`` of them when > 0).

    ``complete``: notification_id -> delivery ids received, for notifications none of whose
    expected deliveries is missing. Stale ones are asked again until ``settle_seconds`` pass:
    delivery events reach the status table a little after the send, so only a view that stays
    behind counts."""
    started = time.monotonic()
    nids = sorted(complete)
    if 0 < sample < len(nids):
        nids = sorted(random.Random(seed).sample(nids, sample))
    stale = _stale(asyncio.run(fetch_statuses(web_url, nids)), complete)
    deadline = time.monotonic() + settle_seconds
    while stale and time.monotonic() < deadline:
        time.sleep(2.0)
        stale = _stale(asyncio.run(fetch_statuses(web_url, sorted(stale))), complete)
    return StatusCheck(len(nids), stale, time.monotonic() - started)


def _stale(
    views: Mapping[str, dict[str, Any] | None], complete: Mapping[str, set[str]]
) -> dict[str, str]:
    problems = {nid: status_problem(view, complete[nid]) for nid, view in views.items()}
    return {nid: problem for nid, problem in problems.items() if problem is not None}


def stale_diagnostics(
    bootstrap: str, stale: Mapping[str, str], complete: Mapping[str, set[str]], web_url: str
) -> dict[str, Any]:
    """For each stale notification: its view, and what ``delivery-events`` holds for it. Tells
    a deliver stage that never reported a send, a request resolved (and accepted) again, and a
    status fold that counted one event twice (read again after a kill: the view then waits
    for more deliveries than the accepted events announced)."""
    views = asyncio.run(fetch_statuses(web_url, sorted(stale)))
    trail: dict[str, list[Any]] = {}
    for record in asyncio.run(read_topics(bootstrap, [topics.DELIVERY_EVENTS])):
        value = _json(record.value)
        if value.get("notification_id") in stale:
            trail.setdefault(value["notification_id"], []).append(
                [record.partition, record.offset, value.get("status"), value.get("delivery_id")]
                + ([value.get("deliveries")] if value.get("status") == ACCEPTED else [])
            )
    entries = {}
    for nid, problem in sorted(stale.items()):
        events = trail.get(nid, [])
        view = views.get(nid) or {}
        entries[nid] = {
            "problem": problem,
            "class": _stale_class(complete[nid], events, view.get("expected")),
            "expected_in_view": view.get("expected"),
            "delivered": len(complete[nid]),
            "view": views.get(nid),
            "events": events,  # [partition, offset, status, delivery_id(, deliveries)]
        }
    classes = Counter(str(e["class"]) for e in entries.values())
    return {"classes": dict(classes), "stale": entries}


def _stale_class(delivered: set[str], events: list[Any], expected_in_view: Any) -> str:
    sent = {event[3] for event in events if event[2] in SUCCESSES}
    accepted = [event[4] or 0 for event in events if event[2] == ACCEPTED]
    if delivered - sent:
        return "sent deliveries without a sent event"
    if len(accepted) > 1:
        return "accepted event on the topic more than once"
    if isinstance(expected_in_view, int) and expected_in_view > sum(accepted):
        return "view expects more than accepted announced: an event folded twice"
    return "events complete, view behind"


# ---------------------------------------------------------------------------- worker logs

_CRASH = re.compile(r"crashed", re.IGNORECASE)
_COMMIT = re.compile(r"^\[(?P<at>[^\]]+)\].*\bcommitted (?P<offsets>\S+=\d+(?: \S+=\d+)*)\s*$")


def crash_lines(log_paths: Iterable[Path]) -> list[str]:
    """faust's crash lines ("Crashed reason=..." from mode, "... crashed: ..." from the app's
    rebalance callbacks), each prefixed with its log's name."""
    found = []
    for path in log_paths:
        for line in path.read_text(errors="replace").splitlines():
            if _CRASH.search(line):
                found.append(f"{path.name}: {line.strip()[:300]}")
    return found


def traceback_count(log_paths: Iterable[Path]) -> int:
    return sum(path.read_text(errors="replace").count("Traceback") for path in log_paths)


def first_commits_past(
    log_paths: Iterable[Path], records: Iterable[tuple[str, int, int]]
) -> dict[str, str]:
    """For each (topic, partition, offset): the first commit line (in each log's order, logs
    in the given order) that moved the group past it, as "<log> <time> committed=<offset>".
    Tells which worker incarnation acked the record: where a lost delivery's bug acted."""
    wanted: dict[str, list[int]] = {}
    for topic, partition, offset in records:
        wanted.setdefault(f"{topic}:{partition}", []).append(offset)
    found: dict[str, str] = {}
    for path in log_paths:
        for line in path.read_text(errors="replace").splitlines():
            match = _COMMIT.match(line)
            if match is None:
                continue
            for token in match["offsets"].split():
                tp, _, raw = token.rpartition("=")
                for offset in wanted.get(tp, ()):
                    label = f"{tp}@{offset}"
                    if int(raw) > offset and label not in found:
                        found[label] = f"{path.name} {match['at']} committed={raw}"
    return found


# ---------------------------------------------------------------------------- lost deliveries


async def read_topics(
    bootstrap: str, names: Iterable[str], idle_seconds: float = 2.0, timeout: float = 90.0
) -> list[Any]:
    """Every record of ``names``, read from the start until the broker has nothing more for
    ``idle_seconds``. Not until the end offsets: Tansu's ListOffsets(LATEST) answers the newest
    batch's base offset + 1 (README, The embedded broker), which would stop short."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    records: list[Any] = []
    try:
        existing = await consumer.topics()
        tps = [
            TopicPartition(name, p)
            for name in names
            if name in existing
            for p in sorted(consumer.partitions_for_topic(name) or ())
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < idle_seconds and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            if any(batch.values()):
                quiet_since = time.monotonic()
            for part in batch.values():
                records.extend(part)
    finally:
        await consumer.stop()
    return records


async def committed_offsets(bootstrap: str, tps: Iterable[tuple[str, int]]) -> dict[str, Any]:
    """The group's committed offset per "topic:partition" (None: never committed)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    group = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=GROUP, enable_auto_commit=False)
    await group.start()
    try:
        return {
            f"{topic}:{partition}": await group.committed(TopicPartition(topic, partition))
            for topic, partition in sorted(set(tps))
        }
    finally:
        await group.stop()


def _json(raw: bytes | None) -> dict[str, Any]:
    try:
        value = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _where(record: Any) -> tuple[str, int, int]:
    return (record.topic, record.partition, record.offset)


def _classify(
    lane: list[tuple[str, int, int]], committed: Mapping[str, Any], sent_event: bool, ledger: bool
) -> str:
    """One word for where a lost delivery went missing; the order of the tests matters: a
    lane record the group committed past, never sent, is the classic lost-on-crash case."""
    if sent_event:
        return "sent event, not at the sandbox"
    if ledger:
        return "in the ledger, never sent"
    if not lane:
        return "never on a lane"
    if all((committed.get(f"{t}:{p}") or 0) > o for t, p, o in lane):
        return "lane record committed past, never sent"
    return "lane record not committed, never sent"


def lost_diagnostics(
    bootstrap: str,
    lost: Mapping[Pair, str],
    log_paths: Sequence[Path],
    views: Mapping[str, dict[str, Any] | None],
) -> dict[str, Any]:
    """For each lost (pair -> delivery id): the request's records, the delivery's lane and
    retry records, its delivery events, whether the ledger changelog has it, the status view,
    the group's committed offsets there and which worker's commit passed the record first."""
    return asyncio.run(_lost_diagnostics(bootstrap, lost, log_paths, views))


async def _lost_diagnostics(
    bootstrap: str,
    lost: Mapping[Pair, str],
    log_paths: Sequence[Path],
    views: Mapping[str, dict[str, Any] | None],
) -> dict[str, Any]:
    nids = {nid for nid, _ in lost}
    ids = set(lost.values())
    names = await topic_names(bootstrap)
    requests_topics = [
        topics.REQUESTS,
        topics.REQUESTS_BY_USER,
        topics.REQUESTS_HIGH,
        topics.REQUESTS_NORMAL,
        topics.REQUESTS_LOW,
    ]
    lanes = [n for n in names if n.startswith("deliveries.")]
    ledger = [n for n in names if "delivery_ledger" in n and n.endswith("-changelog")]
    records = await read_topics(bootstrap, [*requests_topics, *lanes, *ledger])
    events = await read_topics(bootstrap, [topics.DELIVERY_EVENTS])

    request_at: dict[str, list[tuple[str, int, int]]] = {}
    lane_at: dict[str, list[tuple[str, int, int]]] = {}
    in_ledger: set[str] = set()
    for record in records:
        if record.topic in ledger:  # values: {delivery_id: {exp, provider}} (tables/expiring.py)
            in_ledger.update(ids.intersection(_json(record.value)))
            continue
        value = _json(record.value)
        if record.topic in requests_topics and value.get("notification_id") in nids:
            request_at.setdefault(value["notification_id"], []).append(_where(record))
        elif value.get("delivery_id") in ids:
            lane_at.setdefault(value["delivery_id"], []).append(_where(record))
    trail: dict[str, list[dict[str, Any]]] = {}
    for record in events:
        value = _json(record.value)
        if value.get("notification_id") in nids:
            trail.setdefault(value["notification_id"], []).append(
                {k: value.get(k) for k in ("status", "delivery_id", "channel", "reason")}
            )

    places = [p for ps in (*request_at.values(), *lane_at.values()) for p in ps]
    committed = await committed_offsets(bootstrap, [(t, p) for t, p, _ in places])
    passed = first_commits_past(log_paths, places)
    entries = []
    for (nid, address), did in sorted(lost.items()):
        lane = lane_at.get(did, [])
        sent = any(e["delivery_id"] == did and e["status"] in SUCCESSES for e in trail.get(nid, []))
        entries.append(
            {
                "notification_id": nid,
                "address": address,
                "delivery_id": did,
                "class": _classify(lane, committed, sent, did in in_ledger),
                "request_records": request_at.get(nid, []),
                "lane_records": lane,
                "first_commit_past": {
                    f"{t}:{p}@{o}": passed.get(f"{t}:{p}@{o}") for t, p, o in lane
                },
                "events": trail.get(nid, []),
                "in_ledger": did in in_ledger,
                "status_view": views.get(nid),
            }
        )
    return {
        "classes": dict(Counter(e["class"] for e in entries)),
        "committed": committed,
        "group": await _group_description(bootstrap),
        "lost": entries,
    }


async def _group_description(bootstrap: str) -> str:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return repr(await admin.describe_consumer_groups([GROUP]))
    except Exception as exc:  # diagnostics only: never hide the lost deliveries behind this
        return repr(exc)
    finally:
        await admin.close()
