"""Campaign progress and cancel over HTTP, from any worker.

A campaign's progress is spread over every partition (tables/campaign_progress.py) and so over
every worker: ``GET /campaigns/<id>/`` asks each worker the partition assignment names (Faust's
router metadata) for the partitions it owns (``GET /campaigns/<id>/local/``) and adds them
up; a worker that does not answer leaves its partitions under ``missing_partitions``.
``POST /campaigns/<id>/cancel/`` writes the cancel record to ``campaigns``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import aiohttp
import faust
import orjson
from faust.web import Request, Response, View
from yarl import URL

from agents import produce
from config.vocabulary import ScanStatus
from streams.topics import Topics
from tables import Tables, campaign_progress

ASK_TIMEOUT_SECONDS = 5.0


def local_progress(app: faust.App, tables: Tables, campaign_id: str) -> dict[str, Any]:
    """What this worker holds of the campaign: the partitions it owns right now."""
    actives = app.assignor.assigned_actives()
    progress_topic = tables.campaign_progress.changelog_topic.get_topic_name()
    outcomes_topic = tables.campaign_outcomes.changelog_topic.get_topic_name()
    scans: dict[str, Any] = {}
    outcomes: dict[str, Any] = {}
    for tp in actives:
        if tp.topic == progress_topic:
            found = campaign_progress.get(tables.campaign_progress, campaign_id, tp.partition)
            scans[str(tp.partition)] = found
        elif tp.topic == outcomes_topic:
            counted = campaign_progress.outcomes(
                tables.campaign_outcomes, campaign_id, tp.partition
            )
            outcomes[str(tp.partition)] = counted
    return {"partitions": scans, "outcomes": outcomes}


def summarize(campaign_id: str, partitions: int, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Pure: the campaign's totals from each worker's local answer."""
    scans: dict[str, Any] = {}
    outcomes: dict[str, Any] = {}
    for part in parts:
        scans.update(part.get("partitions", {}))
        outcomes.update(part.get("outcomes", {}))
    known = [s for s in scans.values() if s is not None]
    skipped: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    for scan in known:
        skipped.update(scan["skipped"])
    for counted in outcomes.values():
        if counted is not None:
            rejected.update(counted["rejected"])
    states = {s["state"] for s in known}
    cancelled = any(s.get("cancel_requested") for s in known)
    state: str
    if not known:
        state = "unknown"
    elif states <= {ScanStatus.DONE, ScanStatus.CANCELLED}:
        state = ScanStatus.CANCELLED if ScanStatus.CANCELLED in states else ScanStatus.DONE
    elif states == {ScanStatus.SCHEDULED}:
        state = ScanStatus.SCHEDULED
    else:
        state = ScanStatus.RUNNING
    return {
        "campaign_id": campaign_id,
        "state": state,
        "cancel_requested": cancelled,
        "scanned": sum(s["scanned"] for s in known),
        "targeted": sum(s["targeted"] for s in known),
        "enqueued": sum(s["enqueued"] for s in known),
        "skipped": dict(skipped),
        "delivered": sum(c["delivered"] for c in outcomes.values() if c),
        "failed": sum(c["failed"] for c in outcomes.values() if c),
        "rejected": dict(rejected),
        "partitions": {p: scans[p] for p in sorted(scans, key=int)},
        "missing_partitions": [p for p in range(partitions) if str(p) not in scans],
    }


async def _ask(session: aiohttp.ClientSession, url: URL) -> dict[str, Any]:
    try:
        async with session.get(url) as response:
            if response.status != 200:
                return {}
            answer: dict[str, Any] = orjson.loads(await response.read())
            return answer
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
        return {}  # its partitions are reported missing


async def gather_progress(
    app: faust.App, tables: Tables, campaign_id: str, partitions: int
) -> dict[str, Any]:
    here = URL(str(app.conf.canonical_url))
    parts = [local_progress(app, tables, campaign_id)]
    others = [
        URL(host)
        for host in app.router.table_metadata(tables.campaign_progress.name)
        if URL(host) != here
    ]
    if others:
        timeout = aiohttp.ClientTimeout(total=ASK_TIMEOUT_SECONDS)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            parts += await asyncio.gather(
                *(_ask(session, host / "campaigns" / campaign_id / "local/") for host in others)
            )
    return summarize(campaign_id, partitions, parts)


def register_views(app: faust.App, topics: Topics, tables: Tables, partitions: int) -> None:
    @app.page("/campaigns/{campaign_id}/")
    class CampaignView(View):
        async def get(self, request: Request, campaign_id: str) -> Response:
            return self.json(await gather_progress(app, tables, campaign_id, partitions))

    @app.page("/campaigns/{campaign_id}/local/")
    class LocalCampaignView(View):
        async def get(self, request: Request, campaign_id: str) -> Response:
            return self.json(local_progress(app, tables, campaign_id))

    @app.page("/campaigns/{campaign_id}/cancel/")
    class CancelCampaignView(View):
        async def post(self, request: Request, campaign_id: str) -> Response:
            record = orjson.dumps({"campaign_id": campaign_id, "action": "cancel"})
            await produce.send_and_wait(topics.campaigns, campaign_id.encode(), record)
            return self.json({"campaign_id": campaign_id, "cancel": "requested"})
