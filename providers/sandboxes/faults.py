"""Which fault, if any, a sandbox answers a request with: one decision shared by all sandboxes.

Each sandbox owns a ``FaultPlan`` as ``sandbox.plan`` and only translates the fault it picks
into its own protocol's answer (an HTTP status and body, an SMTP reply). A fault has the shape
the sandbox documents, e.g. ``(429, "TooManyRequests")`` for APNs or ``503`` for webhooks.

The plan is read by the sandbox's event loop and changed from tests, the sandbox stack's HTTP
endpoint or another thread (the FCM sandbox runs on its own loop), so every read-modify-write
holds a lock: a ``fail_times`` countdown must not lose a step to a concurrent request.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

F = TypeVar("F")


def pair(first: Callable[[Any], Any], second: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Coerce a two-item JSON list (or tuple) into a typed tuple, e.g. ``[429, "X"]``."""

    def coerce(value: Any) -> tuple[Any, Any]:
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise ValueError(f"a fault here is a pair, got {value!r}")
        return first(value[0]), second(value[1])

    return coerce


def optional(kind: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else kind(value)


def integer(value: Any) -> int:
    """A JSON number that must be whole (an HTTP status, an SMTP or Twilio code)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ValueError(f"expected an integer, got {value!r}")
    return int(value)


class FaultPlan(Generic[F]):
    """Per-address faults, "fail N times then succeed", a seeded fault rate, and latency.

    Precedence for one request: ``faults[address]`` (every time), then a pending
    ``fail_times[address]`` countdown, then ``fault_rate`` (drawn from a seeded
    ``random.Random``, so a test sees the same sequence each run).
    """

    def __init__(self, coerce: Callable[[Any], F], *, retry_after: int = 1, seed: int = 0) -> None:
        self.coerce = coerce  # JSON value -> fault of this sandbox's shape; raises ValueError
        self.faults: dict[str, F] = {}
        self.fail_times: dict[str, tuple[int, F]] = {}
        self.fault_rate: tuple[float, F] | None = None
        self.latency_seconds = 0.0
        self.delays: dict[str, float] = {}
        self.retry_after = retry_after  # seconds in Retry-After on 429s (where the protocol has it)
        self.random = random.Random(seed)
        self._lock = threading.Lock()
        self._wake: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    def choose(self, address: str) -> F | None:
        """The fault for this request, or None to answer it normally. Counts down fail_times."""
        with self._lock:
            if address in self.faults:
                return self.faults[address]
            pending = self.fail_times.get(address)
            if pending is not None:
                left, fault = pending
                if left > 1:
                    self.fail_times[address] = (left - 1, fault)
                else:  # the last failure: later requests for the address succeed
                    del self.fail_times[address]
                if left >= 1:
                    return fault
            if self.fault_rate is not None:
                probability, fault = self.fault_rate
                if self.random.random() < probability:
                    return fault
            return None

    def delay(self, address: str) -> float:
        """Seconds to wait before answering a request for ``address``."""
        return self.latency_seconds + self.delays.get(address, 0.0)

    async def pause(self, address: str) -> None:
        """Wait ``delay(address)``, cut short by ``release()``.

        A stopping server waits for its running handlers; without the release it would sit
        out every injected delay (seconds, in the timeout tests).
        """
        seconds = self.delay(address)
        if seconds <= 0:
            return
        loop = asyncio.get_running_loop()
        if self._wake is None or self._wake[0] is not loop:  # an Event belongs to one loop
            self._wake = (loop, asyncio.Event())
        wake = self._wake[1]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), seconds)

    def release(self) -> None:
        """Wake every request stalled in ``pause()`` (from any thread); call on stop."""
        wake, self._wake = self._wake, None
        if wake is not None and not wake[0].is_closed():
            wake[0].call_soon_threadsafe(wake[1].set)

    def update(
        self,
        *,
        address: str | None = None,
        fault: Any = None,
        times: int | None = None,
        rate: float | None = None,
        seed: int | None = None,
        latency_seconds: float | None = None,
        delay_seconds: float | None = None,
        retry_after: int | None = None,
        clear: bool = False,
    ) -> dict[str, Any]:
        """Change the plan as one request of the stack's ``POST /faults/{sandbox}`` says.

        ``clear`` first (one address's entries, or everything), then: ``address`` + ``fault``
        [+ ``times``], ``rate`` + ``fault`` [+ ``seed``], ``address`` + ``delay_seconds``,
        ``latency_seconds``, ``retry_after``. Raises ValueError on a request that means nothing.
        """
        chosen = None if fault is None else self.coerce(fault)
        if times is not None and (chosen is None or address is None or times < 1):
            raise ValueError("times needs an address, a fault and a count of at least 1")
        if chosen is not None and (address is None) == (rate is None):
            raise ValueError("a fault goes with either an address or a rate")
        if rate is not None and ((chosen is None and rate > 0) or not 0 <= rate <= 1):
            raise ValueError("rate is a probability from 0 to 1, with a fault")
        if delay_seconds is not None and address is None:
            raise ValueError("delay_seconds needs an address (latency_seconds is for all)")
        with self._lock:
            if clear:
                self._clear(address)
            if chosen is not None and address is not None:
                if times is None:
                    self.faults[address] = chosen
                else:
                    self.fail_times[address] = (times, chosen)
            if rate is not None:
                self.fault_rate = (rate, chosen) if chosen is not None and rate > 0 else None
            if seed is not None:
                self.random.seed(seed)
            if address is not None and delay_seconds is not None:
                self.delays[address] = delay_seconds
            if latency_seconds is not None:
                self.latency_seconds = latency_seconds
            if retry_after is not None:
                self.retry_after = retry_after
        return self.describe()

    def _clear(self, address: str | None) -> None:
        if address is None:
            self.faults.clear()
            self.fail_times.clear()
            self.delays.clear()
            self.fault_rate = None
            self.latency_seconds = 0.0
            return
        for table in (self.faults, self.fail_times, self.delays):
            table.pop(address, None)

    def describe(self) -> dict[str, Any]:
        """The plan as JSON-ready data (tuples become lists on the way out)."""
        with self._lock:
            return {
                "faults": dict(self.faults),
                "fail_times": dict(self.fail_times),
                "fault_rate": self.fault_rate,
                "latency_seconds": self.latency_seconds,
                "delays": dict(self.delays),
                "retry_after": self.retry_after,
            }


class FaultInjectable(Generic[F]):
    """The plan's fields as sandbox attributes, so ``sandbox.faults[addr] = ...`` keeps working."""

    plan: FaultPlan[F]

    @property
    def faults(self) -> dict[str, F]:
        return self.plan.faults

    @property
    def fail_times(self) -> dict[str, tuple[int, F]]:
        return self.plan.fail_times

    @property
    def delays(self) -> dict[str, float]:
        return self.plan.delays

    @property
    def fault_rate(self) -> tuple[float, F] | None:
        return self.plan.fault_rate

    @fault_rate.setter
    def fault_rate(self, value: tuple[float, F] | None) -> None:
        self.plan.fault_rate = value

    @property
    def latency_seconds(self) -> float:
        return self.plan.latency_seconds

    @latency_seconds.setter
    def latency_seconds(self, value: float) -> None:
        self.plan.latency_seconds = value

    @property
    def retry_after(self) -> int:
        return self.plan.retry_after

    @retry_after.setter
    def retry_after(self, value: int) -> None:
        self.plan.retry_after = value
