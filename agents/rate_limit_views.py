"""``GET /rate-limits/``: this worker's view of every provider's token bucket (where its tokens
come from, the current rate after throttles, waits and throttles counted)."""

from __future__ import annotations

import faust
from faust.web import Request, Response, View

from providers.rate_limits import ProviderRateLimits


def register_views(app: faust.App, limits: ProviderRateLimits) -> None:
    @app.page("/rate-limits/")
    class RateLimitsView(View):
        async def get(self, request: Request) -> Response:
            return self.json(limits.snapshot())
