"""Push device tokens per user (from the ``device-registrations`` control topic)."""

from __future__ import annotations

from typing import TypeAlias

import faust
from faust.types import TableT

from config.settings import Settings
from config.vocabulary import DeviceAction
from streams.records import DeviceRegistration

# Tokens beyond this are the oldest registrations of long-gone devices.
MAX_DEVICES_PER_USER = 20

DeviceTokens: TypeAlias = dict[str, str]  # token -> its Platform, oldest registration first
DevicesTable: TypeAlias = TableT[str, DeviceTokens]  # user_id -> tokens


def declare(app: faust.App, settings: Settings) -> DevicesTable:
    return app.Table(
        "devices",
        default=dict,
        partitions=settings.partitions,
        key_type=bytes,  # raw keys: table_route must hash the bytes the record was keyed by
        help="user_id -> {token: platform}",
    )


def tokens(table: DevicesTable, user_id: str) -> DeviceTokens:
    """token -> platform, oldest registration first."""
    return dict(table[user_id])


def apply(table: DevicesTable, registration: DeviceRegistration) -> None:
    current = dict(table[registration.user_id])
    current.pop(registration.token, None)  # re-registering moves a token to the newest slot
    if registration.action == DeviceAction.REGISTER:
        current[registration.token] = registration.platform
        while len(current) > MAX_DEVICES_PER_USER:
            current.pop(next(iter(current)))
    table[registration.user_id] = current
