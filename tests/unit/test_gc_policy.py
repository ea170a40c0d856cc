"""The worker's garbage-collector policy (agents/gc_policy.py)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from agents.gc_policy import freeze_what_is_alive, set_young_threshold


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_only_the_young_threshold_moves() -> None:
    gc.set_threshold(700, 11, 12)

    set_young_threshold(50_000)

    assert gc.get_threshold() == (50_000, 11, 12)


@pytest.mark.usefixtures("restored_collector")
def test_garbage_is_collected_before_the_rest_is_frozen() -> None:
    class Node:
        other: Node | None = None

    alive, cycle = Node(), Node()
    cycle.other = Node()
    cycle.other.other = cycle  # garbage that only a collection frees
    cycle_gone = weakref.ref(cycle)
    del cycle

    frozen = freeze_what_is_alive()

    assert frozen == gc.get_freeze_count() > 0
    # Frozen first, the cycle would never be collected.
    assert cycle_gone() is None
    assert gc.is_tracked(alive)
