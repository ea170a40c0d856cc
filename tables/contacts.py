"""E-mail address, phone number and webhook URL per user (``user-contacts`` control topic)."""

from __future__ import annotations

from typing import TypeAlias

import faust
from faust.types import TableT

from config.settings import Settings
from streams.records import ContactUpdate

Contacts: TypeAlias = dict[str, str]  # ContactField -> address; a field left out is unknown
ContactsTable: TypeAlias = TableT[str, Contacts]  # user_id -> contacts


def declare(app: faust.App, settings: Settings) -> ContactsTable:
    return app.Table(
        "contacts",
        default=dict,
        partitions=settings.partitions,
        key_type=bytes,  # raw keys: table_route must hash the bytes the record was keyed by
        help="user_id -> {email, phone, webhook_url}",
    )


def get(table: ContactsTable, user_id: str) -> Contacts:
    return dict(table[user_id])


def apply(table: ContactsTable, update: ContactUpdate) -> None:
    current = dict(table[update.user_id])
    for field, value in update.changes.items():
        if value is None:
            current.pop(field, None)
        else:
            current[field] = value
    table[update.user_id] = current
