"""CPU time and memory of a process, read from /proc (Linux only, like the embedded broker).

Reading /proc costs nothing in the measured process, unlike an in-process profiler or psutil
call made from inside the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def parse_cpu_seconds(stat_line: str, ticks_per_second: int = _CLOCK_TICKS) -> float:
    """utime + stime (all threads) of one ``/proc/<pid>/stat`` line, in seconds.

    The command name (field 2) is in parentheses and may itself hold spaces or ")", so the
    fields are counted from the last ")": utime and stime are fields 14 and 15 overall.
    """
    fields = stat_line[stat_line.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state), so field 14 is fields[11].
    return (int(fields[11]) + int(fields[12])) / ticks_per_second


def parse_status_kb(status_text: str, key: str) -> int | None:
    """A ``kB`` value such as VmHWM or VmRSS from ``/proc/<pid>/status``."""
    for line in status_text.splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return None


def cpu_seconds(pid: int) -> float:
    return parse_cpu_seconds(Path(f"/proc/{pid}/stat").read_text())


def memory_kb(pid: int, key: str = "VmHWM") -> int | None:
    """VmHWM is the kernel's own peak RSS for the process's life; None once it has exited."""
    try:
        return parse_status_kb(Path(f"/proc/{pid}/status").read_text(), key)
    except FileNotFoundError:
        return None


@dataclass
class CpuMeter:
    """CPU seconds a set of processes used between ``start()`` and ``stop()``."""

    pids: list[int]
    started: float = 0.0
    used: float = 0.0

    def _total(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids)

    def start(self) -> CpuMeter:
        self.started = self._total()
        return self

    def stop(self) -> float:
        self.used = self._total() - self.started
        return self.used


class RssSampler:
    """Polls VmRSS of some processes in a thread and keeps the largest sum seen.

    VmHWM is exact per process but covers its whole life (start-up included) and cannot be
    summed across workers meaningfully; the sampled sum answers "how much memory did the
    workers hold together at the busiest moment of this phase"."""

    def __init__(self, pids: list[int], interval: float = 0.2) -> None:
        self.pids = pids
        self.interval = interval
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            total = sum(memory_kb(pid, "VmRSS") or 0 for pid in self.pids)
            self.peak_kb = max(self.peak_kb, total)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Measured:
    """One measured run: whether it completed, when, the CPU of each process and the peak RSS
    of the workers (sampled, summed)."""

    complete: bool
    finished: float  # epoch seconds
    cpu_seconds_by_process: dict[str, float]
    peak_worker_rss_kb: float


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The harness's own cyclic garbage collector off while it measures. The sandboxes answer,
    and the producers stamp each request's ``created_at``, in this process: its full passes
    over what it has received (hundreds of thousands of records by the end of a storm) paused
    it up to 470 ms, and every delivery in flight counted the pause as its own latency.
    Reference counting still frees nearly everything; the rest waits for the end."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def measure_run(
    worker_pids: Sequence[int],
    broker_pid: int,
    load: Callable[[], Coroutine[Any, Any, None]],
    wait: Callable[[], bool],
) -> Measured:
    """CPU and RSS over ``load`` (run to its end) and ``wait`` (until the deliveries are in);
    the sandboxes answer in this process, so its CPU is reported as the harness's."""
    worker_cpu = CpuMeter(list(worker_pids)).start()
    broker_cpu, harness_cpu = cpu_seconds(broker_pid), time.process_time()
    with RssSampler(list(worker_pids)) as rss, collector_paused():
        asyncio.run(load())
        complete = wait()
    finished = time.time()
    return Measured(
        complete,
        finished,
        {
            "worker": worker_cpu.stop(),
            "broker": cpu_seconds(broker_pid) - broker_cpu,
            "harness": time.process_time() - harness_cpu,
        },
        rss.peak_kb,
    )
