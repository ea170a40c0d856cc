"""The HTTP API, served by every worker on its web port (``NOTIFY_WEB_PORT``).

``gate(settings)`` is made before the Faust app (its middleware goes into the web app's
options); ``register_api`` then adds the routes of every module and ``/openapi.json``.
"""

from __future__ import annotations

import logging

import faust
from faust.web import Request, Response, View

from api import erasure, inbox, key_routes, notifications, receipts, templates, users
from api.context import ApiContext
from api.guard import ApiGate, operation
from api.keys import KeyRing, Scope
from api.openapi import ApiSpec
from config.settings import Settings
from tables import api_keys

log = logging.getLogger(__name__)

API_VERSION = "1.0.0"


def gate(settings: Settings) -> ApiGate:
    keys = KeyRing.from_json(settings.api_keys)
    if not keys.enabled:
        log.warning(
            "NOTIFY_API_KEYS is empty: the HTTP API and every web view on port %d are open "
            "to anyone who can reach it (set keys: README, HTTP API)",
            settings.web_port,
        )
    return ApiGate(keys, ApiSpec("notify", API_VERSION), settings.api_rate_per_second)


def register_api(app: faust.App, ctx: ApiContext, gate: ApiGate) -> None:
    # Keys made through the API: every worker looks them up in its copy of the keys table.
    gate.keys.from_topic = lambda key: api_keys.get(ctx.tables.api_keys, key)
    key_routes.register(app, ctx, gate.keys)
    notifications.register(app, ctx)
    receipts.register(app, ctx)
    users.register(app, ctx)
    templates.register(app, ctx)
    erasure.register(app, ctx)
    inbox.register(app, ctx)

    @app.page("/openapi.json")
    class OpenApi(View):
        @operation(ctx, "GET", "/openapi.json", Scope.READ, summary="This document")
        async def get(self, request: Request) -> Response:
            return self.json(ctx.spec.document())
