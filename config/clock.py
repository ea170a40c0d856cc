"""The wall clock quiet hours and daily caps read: the system's, or a stepped one for tests.

Quiet hours depend on the time of day in the user's zone; an integration test cannot wait for
night. With ``NOTIFY_CLOCK_FILE`` set, the clock reads the epoch seconds written in that file
and runs on from the moment the file was written, so a test steps a running worker's clock by
rewriting it (tests/integration/test_templates_and_quiet_hours.py). Nothing else in the
worker (offsets, TTLs, the ledger) follows it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

Clock = Callable[[], float]


class FileClock:
    """``value in the file + seconds since the file was written``; the system clock while the
    file is missing or empty."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self) -> float:
        try:
            stat = os.stat(self.path)
            text = self.path.read_text().strip()
        except OSError:
            return time.time()
        if not text:
            return time.time()
        return float(text) + max(0.0, time.time() - stat.st_mtime)


def step_clock(path: Path, now: float) -> None:
    """Set a FileClock to ``now`` (atomically: a reader never sees a half-written value)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(repr(now))
    os.replace(tmp, path)


def clock_from(path: Path | None) -> Clock:
    return time.time if path is None else FileClock(path)
