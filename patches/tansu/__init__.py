"""Patches for the embedded broker (Tansu) only: installed with ``NOTIFY_BROKER_FLAVOR=tansu``,
never against a real Kafka cluster, which needs neither."""

from __future__ import annotations

from config.settings import Settings
from patches.tansu import fetch_wait, recovery_highwaters

PATCHES = (recovery_highwaters, fetch_wait)


def install(settings: Settings) -> None:
    recovery_highwaters.install()
    fetch_wait.install(wait_ms=settings.tansu_fetch_wait_ms)
