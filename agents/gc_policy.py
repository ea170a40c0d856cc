"""The worker's garbage collector: what is alive once the worker is ready is frozen out of
every later collection, and the young generation is collected less often.

CPython's full (generation 2) collection walks every container object in generation 2 and
pauses the event loop, and with it every agent, for as long as that takes. Measured in the
storm phase (``bench.run storm``, README, "Urgent first in a storm"): a ready worker held about
425,000 such objects (modules, the app, its agents, topics and tables, what start-up built),
nearly all alive for the life of the process, and its full collections each paused it 150 to
275 ms, 47 times in one storm. The high requests caught in one of them waited that much more:
they were the storm's p99 and max.

``gc.freeze()`` moves every object tracked at that moment into the permanent generation, which
no collection walks again; reference counting still frees those objects as before, only a
reference cycle among them would outlive its use. Frozen once the worker is ready, after one
collection so that nothing already garbage is frozen, no collection over 20 ms was seen in the
rest of the storm. A young threshold far above CPython's 700 lets most objects made for one
record die by reference count before any collection sees them, so fewer are promoted towards
generation 2, and the worker runs fewer collections.
"""

from __future__ import annotations

import asyncio
import gc
import logging

import faust

from agents.health import readiness
from config.settings import Settings

log = logging.getLogger(__name__)

# How often a starting worker checks whether it is ready (the freeze happens once).
READY_POLL_SECONDS = 1.0


def set_young_threshold(threshold: int) -> None:
    """Generation 0's threshold; the older generations keep theirs."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(threshold, older, oldest)


def freeze_what_is_alive() -> int:
    """Collects what is garbage now, then freezes the rest; returns the objects frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def register(app: faust.App, settings: Settings) -> None:
    set_young_threshold(settings.gc_young_threshold)
    if not settings.gc_freeze_when_ready:
        return

    async def freeze_once_ready() -> None:
        # Ready: the first assignment held and its tables recovered, so that what recovery
        # built is frozen too.
        while True:
            if readiness(app).ok:
                break
            await asyncio.sleep(READY_POLL_SECONDS)
        frozen = freeze_what_is_alive()
        log.info("froze %d long-lived objects out of the garbage collector's full passes", frozen)

    app.task(freeze_once_ready)
