"""Every change this project makes to faust-streaming and aiokafka internals, in one place.

Each module replaces or wraps named upstream functions, pins the sha256 of their source
(``patches/pin.py``: a mismatch refuses to start and says what to re-read) and states in
``WORKS_AROUND`` the upstream bug or missing option it exists for, so that it can be reported
and later deleted. ``install(settings)`` is the one entry point (``app.build_app`` calls it);
importing a module installs nothing. The embedded-broker patches are in ``patches/tansu`` and
are installed only with ``NOTIFY_BROKER_FLAVOR=tansu``.
"""

from __future__ import annotations

from collections.abc import Collection

from config.settings import Settings
from patches import (
    bounded_flush,
    commit_assignment,
    commit_guard,
    eager_handoff,
    fetch_backoff,
    livelock_holds,
    private_api,
    resting_partitions,
    seek_uncommitted,
    skipped_records,
    tansu,
    urgent_fetch,
)

# Correctness first, in the order they build on each other: the commit guard's seek wrapper
# must be in place before the seek lock wraps the same method.
CORRECTNESS = (commit_guard, skipped_records, seek_uncommitted, bounded_flush)


def install(settings: Settings, urgent_topics: Collection[str]) -> None:
    """Installs every patch the settings ask for. Idempotent. ``urgent_topics``: the topics the
    consumer names in every fetch and reads through its urgent fetch loop
    (``streams.topics.URGENT``; patches import no stage)."""
    private_api.check()
    for patch in CORRECTNESS:
        patch.install()
    commit_assignment.install()
    livelock_holds.install()
    fetch_backoff.install(settings.consumer_prefetch_backoff_ms)
    resting_partitions.install(settings.fetch_rest_ms, urgent_topics)
    # After the fetcher tunings above: the urgent loop is a copy of the tuned fetcher.
    urgent_fetch.install(settings.urgent_fetch, urgent_topics)
    if settings.eager_handoff:
        eager_handoff.install()
    if settings.broker_flavor == "tansu":
        tansu.install(settings)


def works_around() -> dict[str, str]:
    """Module -> the upstream bug or missing option it works around (README, Patches)."""
    modules = (
        *CORRECTNESS,
        commit_assignment,
        livelock_holds,
        fetch_backoff,
        resting_partitions,
        urgent_fetch,
        eager_handoff,
        private_api,
        *tansu.PATCHES,
    )
    return {module.__name__: module.WORKS_AROUND for module in modules}
