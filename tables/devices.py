"""Push device tokens per user (from the ``device-registrations`` control topic)."""

from __future__ import annotations

import faust
from faust.types import TableT

from config.settings import Settings
from streams.records import DeviceRegistration

# Tokens beyond this are the oldest registrations of long-gone devices.
MAX_DEVICES_PER_USER = 20


def declare(app: faust.App, settings: Settings) -> TableT:
    return app.Table(
        "devices",
        default=dict,
        partitions=settings.partitions,
        key_type=bytes,  # raw keys: table_route must hash the bytes the record was keyed by
        help="user_id -> {token: platform}",
    )


def tokens(table: TableT, user_id: str) -> dict[str, str]:
    """token -> platform, oldest registration first."""
    return dict(table[user_id])


def apply(table: TableT, registration: DeviceRegistration) -> None:
    current = dict(table[registration.user_id])
    current.pop(registration.token, None)  # re-registering moves a token to the newest slot
    if registration.action == "register":
        current[registration.token] = registration.platform
        while len(current) > MAX_DEVICES_PER_USER:
            current.pop(next(iter(current)))
    table[registration.user_id] = current
