"""``GET /metrics`` on each worker's web port: the app's own registry in Prometheus's text
format, with the scrape-time collectors (agents/metrics_collectors.py) registered beside the
declared metrics (agents/metrics.py)."""

from __future__ import annotations

import faust
from faust.web import Request, Response, View
from prometheus_client import generate_latest

from agents.counters import FAILURES
from agents.hot_key_counters import HOT_KEYS
from agents.metrics import Metrics
from agents.metrics_collectors import (
    BreakerStates,
    CampaignProgress,
    ConsumerOffsets,
    FailureCountersCollector,
    HotKeyEvents,
    StreamBuffers,
)
from providers.registry import ProviderRegistry
from tables import Tables

# What generate_latest writes: the classic text format (every name here is plain ASCII). Named,
# not prometheus_client's CONTENT_TYPE_LATEST, which 0.26 turned into ``version=1.0.0``, a
# version Prometheus 2.x servers do not know.
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"


def register(app: faust.App, tables: Tables, providers: ProviderRegistry, metrics: Metrics) -> None:
    registry = metrics.registry
    registry.register(ConsumerOffsets(app))
    registry.register(StreamBuffers())
    registry.register(BreakerStates(providers))
    registry.register(FailureCountersCollector(FAILURES))
    registry.register(CampaignProgress(tables))
    registry.register(HotKeyEvents(HOT_KEYS))

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            # The Content-Type carries the text format's version and a charset, which
            # aiohttp refuses in ``content_type=``: so it goes in as a header.
            return self.bytes(generate_latest(registry), headers={"Content-Type": TEXT_FORMAT})
