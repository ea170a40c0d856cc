"""Faust web views for table inspection; each answers from the worker that owns the key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import faust
import msgspec
from faust.web import Request, Response, View

from config.logging import mask_address
from tables import (
    Tables,
    contacts,
    devices,
    inbox,
    preferences,
    status,
    suppressions,
    templates,
    user_attributes,
)


def _hh_mm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def user_snapshot(
    tables: Tables, user_id: str, mask: Callable[[str], str] = mask_address
) -> dict[str, Any]:
    """Everything the tables hold about a user. Addresses are masked for the operator's view;
    the API (api/users.py) shows them whole to a caller with the read scope."""
    prefs = preferences.get(tables.preferences, user_id)
    return {
        "user_id": user_id,
        "preferences": None
        if prefs is None
        else {
            "channels": dict(prefs.channels),
            "muted_categories": list(prefs.muted_categories),
            "quiet_hours": {
                channel: {"start": _hh_mm(start), "end": _hh_mm(end)}
                for channel, (start, end) in prefs.quiet_hours.items()
            },
            "daily_cap": prefs.daily_cap,
        },
        "devices": [
            {"token": mask(token), "platform": platform}
            for token, platform in devices.tokens(tables.devices, user_id).items()
        ],
        "contacts": {k: mask(v) for k, v in contacts.get(tables.contacts, user_id).items()},
        "attributes": user_attributes.get(tables.user_attributes, user_id),
        "suppressed": {
            mask(address): entry
            for address, entry in suppressions.suppressed(tables.suppressions, user_id).items()
        },
    }


def register_views(app: faust.App, tables: Tables) -> None:
    @app.page("/users/{user_id}/")
    class UserView(View):
        # faust's stub types a routed view as (self, request) only; the match_info argument
        # is passed by keyword at runtime.
        @app.table_route(table=tables.preferences, match_info="user_id")  # type: ignore[arg-type]
        async def get(self, request: Request, user_id: str) -> Response:
            return self.json(user_snapshot(tables, user_id))

    @app.page("/users/{user_id}/inbox/")
    class InboxView(View):
        @app.table_route(table=tables.inbox, match_info="user_id")  # type: ignore[arg-type]
        async def get(self, request: Request, user_id: str) -> Response:
            return self.json(
                {"user_id": user_id, "messages": inbox.messages(tables.inbox, user_id)}
            )

    @app.page("/notifications/{notification_id}/")
    class NotificationView(View):
        @app.table_route(table=tables.status, match_info="notification_id")  # type: ignore[arg-type]
        async def get(self, request: Request, notification_id: str) -> Response:
            found = status.get(tables.status, notification_id)
            if found is None:
                return self.notfound(f"no status for {notification_id}")
            return self.json(found)

    @app.page("/templates/{template_id}/")
    class TemplateView(View):
        """This worker's copy (a GlobalTable: every worker answers for every template, so
        the view is not routed; asking each worker shows whether a new version reached it)."""

        async def get(self, request: Request, template_id: str) -> Response:
            found = templates.stored(tables.templates, template_id)
            if found is None:
                return self.notfound(f"no template {template_id}")
            return self.json(msgspec.to_builtins(found))
