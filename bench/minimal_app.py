"""The smallest useful Faust app: one naive pass-through agent, for the benchmark's baseline.

``faust -A bench.minimal_app worker -l info``, configured through the same ``NOTIFY_*``
variables as the real worker. Its Faust settings are the app's (``streams.faust_config``; ``app``
itself cannot be imported here: importing it builds the whole pipeline), so that the
pipeline/minimal ratio measures the pipeline's own work, not a difference in configuration.
It runs without the quiet monitor and, unless ``BENCH_MINIMAL_EAGER_HANDOFF=1`` (``bench.run
--minimal-eager-handoff``), without the app's Faust patches: it is the naive baseline the issue
measures the pipeline against; the option shows what the hand-off patch alone gives it.
"""

from __future__ import annotations

import os

import aiohttp
import faust

from config.settings import get_settings
from patches import eager_handoff
from patches.tansu import fetch_wait
from streams.faust_config import faust_settings
from streams.faust_types import Stream

IN_TOPIC = os.environ.get("BENCH_MINIMAL_IN", "bench-minimal-in")
OUT_TOPIC = os.environ.get("BENCH_MINIMAL_OUT", "bench-minimal-out")

settings = get_settings()
if settings.broker_flavor == "tansu":
    # A broker work-around, not a speed-up: without it every idle fetch waits 1.5 s.
    fetch_wait.install(wait_ms=settings.tansu_fetch_wait_ms)
if os.environ.get("BENCH_MINIMAL_EAGER_HANDOFF") == "1":
    eager_handoff.install()
# No tables: nothing to store.
app = faust.App(settings.app_id, **{**faust_settings(settings), "store": "memory://"})

source = app.topic(IN_TOPIC, key_serializer="raw", value_serializer="raw")
sink = app.topic(OUT_TOPIC, key_serializer="raw", value_serializer="raw")


# With a URL, every event is also POSTed there first (one kept-alive aiohttp session): the same
# naive agent plus the cheapest real provider call, a floor for what one delivery can cost.
POST_URL = os.environ.get("BENCH_MINIMAL_POST_URL", "")


@app.agent(source)
async def pass_through(stream: Stream) -> None:
    # The naive shape on purpose: one awaited send per event, as most Faust code is written.
    async with aiohttp.ClientSession() as session:
        async for value in stream:
            if POST_URL:
                async with session.post(POST_URL, data=value) as response:
                    await response.read()
            await sink.send(value=value)
