"""``GET /`` on each worker's web port: the operator page (agents/operator_html.py), and
``GET /operator/state``, the JSON it refreshes from (agents/operator_state.py)."""

from __future__ import annotations

import time

import faust
from faust.web import Request, Response, View

from agents.counters import FAILURES
from agents.metrics import Metrics
from agents.operator_html import PAGE
from agents.operator_state import state


def register(app: faust.App, metrics: Metrics) -> None:
    page = PAGE.encode()

    @app.page("/")
    class OperatorPage(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(page, content_type="text/html", headers={"Cache-Control": "no-store"})

    @app.page("/operator/state")
    class OperatorState(View):
        async def get(self, request: Request) -> Response:
            return self.json(state(metrics.registry, FAILURES.recent_dead_letters, time.time()))
