"""RocksDB-backed tables. Each module: the table declaration and a few typed accessors."""

from __future__ import annotations

from dataclasses import dataclass

import faust

from config.settings import Settings
from tables import (
    api_keys,
    campaign_progress,
    contacts,
    daily_caps,
    dedup,
    devices,
    fallbacks,
    inbox,
    ledger,
    preferences,
    rate_windows,
    status,
    suppressions,
    templates,
    user_attributes,
)
from tables.api_keys import ApiKeysTable
from tables.campaign_progress import OutcomesTable, ProgressTable
from tables.contacts import ContactsTable
from tables.daily_caps import DailyCapsTable
from tables.dedup import DedupTable
from tables.devices import DevicesTable
from tables.fallbacks import FallbacksTable
from tables.inbox import InboxTable
from tables.ledger import LedgerTable
from tables.preferences import PreferencesTable
from tables.rate_windows import RateWindowsTable
from tables.status import StatusTable
from tables.suppressions import SuppressionsTable
from tables.templates import TemplatesTable
from tables.user_attributes import AttributesTable


@dataclass(frozen=True)
class Tables:
    """Each table typed by its values (declared in its module), so what an accessor reads and
    writes is checked."""

    dedup: DedupTable
    rate_windows: RateWindowsTable
    preferences: PreferencesTable
    devices: DevicesTable
    contacts: ContactsTable
    ledger: LedgerTable
    status: StatusTable
    suppressions: SuppressionsTable
    fallbacks: FallbacksTable
    inbox: InboxTable
    user_attributes: AttributesTable
    campaign_progress: ProgressTable
    campaign_outcomes: OutcomesTable
    templates: TemplatesTable  # a GlobalTable: every worker holds every template
    daily_caps: DailyCapsTable
    api_keys: ApiKeysTable  # a GlobalTable: every worker holds every key from the topic


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
        user_attributes=user_attributes.declare(app, settings),
        campaign_progress=campaign_progress.declare(app, settings),
        campaign_outcomes=campaign_progress.declare_outcomes(app, settings),
        templates=templates.declare(app, settings),
        daily_caps=daily_caps.declare(app, settings),
        api_keys=api_keys.declare(app, settings),
    )
