"""RocksDB-backed tables. Each module: the table declaration and a few typed accessors."""

from __future__ import annotations

from dataclasses import dataclass

import faust
from faust.types import TableT

from config.settings import Settings
from tables import (
    contacts,
    dedup,
    devices,
    fallbacks,
    inbox,
    ledger,
    preferences,
    rate_windows,
    status,
    suppressions,
)


@dataclass(frozen=True)
class Tables:
    dedup: TableT
    rate_windows: TableT
    preferences: TableT
    devices: TableT
    contacts: TableT
    ledger: TableT
    status: TableT
    suppressions: TableT
    fallbacks: TableT
    inbox: TableT


def declare_tables(app: faust.App, settings: Settings) -> Tables:
    return Tables(
        dedup=dedup.declare(app, settings),
        rate_windows=rate_windows.declare(app, settings),
        preferences=preferences.declare(app, settings),
        devices=devices.declare(app, settings),
        contacts=contacts.declare(app, settings),
        ledger=ledger.declare(app, settings),
        status=status.declare(app, settings),
        suppressions=suppressions.declare(app, settings),
        fallbacks=fallbacks.declare(app, settings),
        inbox=inbox.declare(app, settings),
    )
