"""Crash and failover acceptance runs: SIGKILL workers while the delivery lanes are busy, then
count what was lost, what was sent twice and which status views stayed behind.

    .venv/bin/python -m scripts.crash_runs --scenario failover --runs 10
    .venv/bin/python -m scripts.crash_runs --scenario restart --requests 2000 --json out.json

Each run gets a fresh embedded broker (its memory engine never frees data, and topics or
commits must not leak between runs), 500 users and a burst of requests over every channel and
priority, produced with confluent-kafka: librdkafka's CRC32 partitioner puts most of them off
their user's murmur2 partition, so the app's re-keying hop is part of every run.

- ``failover``: two workers share the group; at 30 % of the expected deliveries one of them is
  SIGKILLed and never comes back; the survivor must finish.
- ``restart``: one worker, SIGKILLed three times and restarted on the same data directory; the
  second kill lands 1-2.5 s after the restarted worker reported ready, before its first commit
  (the window README's "Delivery guarantees" describes).

Exit status 1 when any run lost a delivery, left a status view stale, or failed outright.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from providers.sandboxes.stack import SandboxStack
from scripts import crash_checks
from scripts.crash_checks import Pair
from scripts.embedded_broker import EmbeddedBroker
from scripts.worker_process import WorkerProcess
from scripts.workload import RequestMix, User, make_users, setup_users, wait_for_users
from streams import topics
from streams.partitioning import partition_for
from streams.records import CHANNELS, PRIORITIES
from tests.integration.pipeline_harness import (
    PARTITIONS,
    expected_deliveries,
    received_pairs,
    start_worker,
    worker_settings,
)

SCENARIOS = ("failover", "restart")
DEFAULT_OUT = Path(tempfile.gettempdir()) / "crash-runs"
# Far above the ~20 requests each user gets in a 10,000 burst: nothing is rate limited, so
# every request that passes the preferences is an expected delivery.
RATE_LIMIT = 1000
PRIORITY_WEIGHTS = {"high": 0.3, "normal": 0.6, "low": 0.1}
FAILOVER_KILL_AT = 0.30


@dataclass(frozen=True)
class Kill:
    """When to SIGKILL: at a fraction of the expected deliveries, or a random delay (drawn per
    run) after the previous start's "Worker ready"."""

    at: float | None = None
    after_ready: tuple[float, float] | None = None


# The middle kill ignores progress: it must land before the restarted worker's first commit
# (~3 s after readiness), which no delivery fraction can promise.
RESTART_PLAN = (Kill(at=0.20), Kill(after_ready=(1.0, 2.5)), Kill(at=0.70))


@dataclass(frozen=True)
class Options:
    scenario: str
    runs: int = 1
    requests: int = 10_000
    users: int = 500
    out_dir: Path = DEFAULT_OUT
    seed: int = 1
    status_sample: int = 0  # 0: every notification
    idle_timeout: float = 60.0  # give up waiting once no delivery arrived for this long


@dataclass
class RunResult:
    index: int
    scenario: str
    run_dir: str
    requests: int = 0
    rekeyed: int = 0  # requests produced off their user's murmur2 partition
    expected: int = 0
    received: int = 0
    lost: int = 0
    duplicates: int = 0
    duplicate_pct: float = 0.0
    unexpected: int = 0
    statuses_checked: int = 0
    status_seconds: float = 0.0  # the views' check, stale re-polls included
    stale: int = 0
    stale_reasons: dict[str, int] = field(default_factory=dict)
    stale_classes: dict[str, int] = field(default_factory=dict)  # by what delivery-events hold
    lost_classes: dict[str, int] = field(default_factory=dict)
    # Copies beyond the first, by when the first copy arrived relative to the nearest kill.
    duplicate_classes: dict[str, int] = field(default_factory=dict)
    crashes: list[str] = field(default_factory=list)
    tracebacks: int = 0
    timeline: list[dict[str, Any]] = field(default_factory=list)
    # The last delivery's arrival after the last kill: the survivor's (or restarted worker's)
    # takeover, table recovery included, and the rest of the burst.
    after_last_kill_seconds: float = 0.0
    seconds: float = 0.0
    error: str | None = None

    @property
    def failed(self) -> bool:
        return bool(self.lost or self.stale or self.error)


class RunFailed(Exception):
    """The run could not go on (a worker died by itself, the lanes stalled before a kill)."""


class Slot:
    """One worker identity: its settings (data dir, web port) survive restarts, and each
    incarnation logs to its own file, so a log shows one process's life from start to kill."""

    def __init__(self, name: str, values: dict[str, Any], run_dir: Path) -> None:
        self.name = name
        self.values = values
        self.run_dir = run_dir
        self.logs: list[Path] = []
        self.worker: WorkerProcess | None = None
        self.ready_at = 0.0

    def start(self) -> None:
        log = self.run_dir / f"worker-{self.name}.{len(self.logs)}.log"
        self.logs.append(log)
        self.worker = start_worker(self.values, log)
        self.ready_at = time.monotonic()

    @property
    def web_url(self) -> str:
        assert self.worker is not None
        return self.worker.web_url

    def alive(self) -> bool:
        return (
            self.worker is not None
            and self.worker.process is not None
            and (self.worker.process.poll() is None)
        )

    def kill(self) -> None:
        if self.worker is not None:
            self.worker.kill()

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop(timeout=20)


def received_count(stack: SandboxStack) -> int:
    """Records at the sandboxes, cheaply: ``stack.received()`` copies and sorts them all, which
    at ten polls a second would take CPU from the workers under test."""
    return sum(len(sandbox.received) for sandbox in stack.sandboxes.values())


@dataclass
class Run:
    """What the scenario steps share: the stack to watch, the live workers and a timeline."""

    stack: SandboxStack
    slots: list[Slot]
    total: int
    rng: random.Random
    idle_timeout: float
    started: float = field(default_factory=time.monotonic)
    timeline: list[dict[str, Any]] = field(default_factory=list)

    def note(self, event: str, slot: Slot, **extra: Any) -> None:
        count = received_count(self.stack)
        entry = {
            "event": event,
            "worker": slot.name,
            "at": datetime.now().isoformat(sep=" ", timespec="milliseconds"),  # as faust logs
            "epoch": time.time(),
            "run_seconds": round(time.monotonic() - self.started, 2),
            "received": count,
            "fraction": round(count / self.total, 3) if self.total else 0.0,
            **extra,
        }
        self.timeline.append(entry)
        print(
            f"    {event} {slot.name}: {entry['fraction']:.0%} received, {entry['at']}", flush=True
        )

    def wait_for_fraction(self, fraction: float) -> None:
        target = int(self.total * fraction)
        last, changed = -1, time.monotonic()
        while (count := received_count(self.stack)) < target:
            if count != last:
                last, changed = count, time.monotonic()
            elif time.monotonic() - changed > self.idle_timeout:
                raise RunFailed(f"stalled at {count}/{self.total} before the {fraction:.0%} kill")
            self.check_alive()
            time.sleep(0.05)

    def check_alive(self) -> None:
        for slot in self.slots:
            if not slot.alive():
                tail = slot.logs[-1].read_text(errors="replace")[-3000:]
                raise RunFailed(f"worker {slot.name} exited by itself:\n{tail}")

    def kill(self, slot: Slot, **extra: Any) -> None:
        slot.kill()
        self.slots.remove(slot)
        self.note("kill", slot, **extra)

    def restart(self, slot: Slot) -> None:
        slot.start()
        self.slots.append(slot)
        self.note("ready", slot, log=slot.logs[-1].name)


def failover(run: Run, index: int) -> Slot:
    victim, survivor = run.slots[index % 2], run.slots[1 - index % 2]
    run.wait_for_fraction(FAILOVER_KILL_AT)
    run.kill(victim)
    return survivor


def restart(run: Run, index: int) -> Slot:
    [slot] = run.slots
    for kill in RESTART_PLAN:
        if kill.at is not None:
            run.wait_for_fraction(kill.at)
            run.kill(slot)
        else:
            assert kill.after_ready is not None
            delay = run.rng.uniform(*kill.after_ready)
            time.sleep(max(0.0, slot.ready_at + delay - time.monotonic()))
            run.check_alive()
            run.kill(slot, seconds_after_ready=round(time.monotonic() - slot.ready_at, 2))
        run.restart(slot)
    return slot


# ---------------------------------------------------------------------------- workload


def make_requests(users: Sequence[User], count: int, rng: random.Random, prefix: str) -> list[Any]:
    """RequestMix's random channels, with priorities drawn 30/60/10 like real traffic rather
    than RequestMix's even thirds."""
    requests = RequestMix(users, seed=rng.randrange(1 << 30), prefix=prefix).make(count)
    weights = [PRIORITY_WEIGHTS[p] for p in PRIORITIES]
    for request, priority in zip(
        requests, rng.choices(PRIORITIES, weights, k=len(requests)), strict=True
    ):
        request["priority"] = priority
    if count >= 100:  # a small burst may miss a combination by chance; a real one must not
        seen = {(c, r["priority"]) for r in requests for c in r["channels"]}
        assert seen == {(c, p) for c in CHANNELS for p in PRIORITIES}, sorted(seen)
    return requests


def produce_burst(bootstrap: str, requests: Sequence[dict[str, Any]]) -> int:
    """Produce with confluent-kafka and librdkafka's default partitioner; returns how many
    records landed off their user's murmur2 partition (each goes through the re-keying hop)."""
    from confluent_kafka import KafkaError, Message, Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    failures: list[str] = []
    rekeyed = 0

    def delivered(err: KafkaError | None, message: Message) -> None:
        nonlocal rekeyed
        if err is not None:
            failures.append(str(err))
            return
        user_id = (message.key() or b"").decode()
        rekeyed += message.partition() != partition_for(user_id, PARTITIONS)

    for request in requests:
        value, key = orjson.dumps(request), request["user_id"].encode()
        while True:
            try:
                producer.produce(topics.REQUESTS, value, key, on_delivery=delivered)
                break
            except BufferError:  # the local queue is full: let librdkafka send some first
                producer.poll(0.1)
        producer.poll(0)
    unsent = producer.flush(60)
    if unsent or failures:
        raise RunFailed(f"producer: {unsent} unsent, {len(failures)} failed: {failures[:3]}")
    return rekeyed


def wait_until_delivered(stack: SandboxStack, expected: Counter[Pair], idle_timeout: float) -> None:
    """Until every expected pair arrived, or nothing new arrived for ``idle_timeout``."""
    total, wanted = sum(expected.values()), set(expected)
    last, changed = -1, time.monotonic()
    while time.monotonic() - changed < idle_timeout:
        count = received_count(stack)
        if count != last:
            last, changed = count, time.monotonic()
            # The full comparison only once enough records arrived (duplicates may hide a loss).
            if count >= total and wanted <= set(received_pairs(stack.received())):
                return
        time.sleep(0.5)


def wait_quiet(stack: SandboxStack, quiet: float = 5.0, limit: float = 30.0) -> None:
    """Let late copies arrive (replays after a restart, bytes a killed worker left in its
    sockets) so the duplicate count is final."""
    deadline = time.monotonic() + limit
    last, changed = received_count(stack), time.monotonic()
    while time.monotonic() - changed < quiet and time.monotonic() < deadline:
        time.sleep(0.5)
        if (count := received_count(stack)) != last:
            last, changed = count, time.monotonic()


# ---------------------------------------------------------------------------- one run


def run_once(options: Options, stack: SandboxStack, index: int, base: Path) -> RunResult:
    run_dir = base / f"run-{index}"
    run_dir.mkdir(parents=True, exist_ok=True)
    result = RunResult(index, options.scenario, str(run_dir))
    print(f"run {index}: {options.scenario}, logs in {run_dir}", flush=True)
    started = time.monotonic()
    stack.clear()
    slots: list[Slot] = []
    try:
        with EmbeddedBroker(log_path=run_dir / "broker.log") as bootstrap:
            try:
                _run(options, stack, index, bootstrap, run_dir, slots, result)
            except RunFailed as exc:
                result.error = str(exc)
            finally:
                for slot in slots:
                    slot.stop()
    except Exception as exc:  # one broken run must not hide the other runs' numbers
        result.error = f"{type(exc).__name__}: {exc}"
    logs = [log for slot in slots for log in slot.logs]
    result.crashes = crash_checks.crash_lines(logs)
    result.tracebacks = crash_checks.traceback_count(logs)
    result.seconds = round(time.monotonic() - started, 1)
    (run_dir / "run.json").write_bytes(orjson.dumps(asdict(result), option=orjson.OPT_INDENT_2))
    print(run_line(result), flush=True)
    return result


@dataclass(frozen=True)
class Workload:
    users: dict[str, User]
    requests: list[dict[str, Any]]
    expected: Counter[Pair]  # as the pipeline tests count them
    ids: dict[Pair, str]  # each expected pair's delivery id

    @classmethod
    def make(
        cls, options: Options, stack: SandboxStack, index: int, rng: random.Random
    ) -> Workload:
        users = make_users(options.users, stack.webhook.url("/"), seed=rng.randrange(1 << 30))
        prefix = f"{options.scenario[0]}{index}"  # ids tell the run apart in logs and topics
        requests = make_requests(users, options.requests, rng, prefix)
        by_id, inapp_url = {u.user_id: u for u in users}, stack.webhook.url("/inbox")
        expected = expected_deliveries(requests, by_id, inapp_url)
        return cls(by_id, requests, expected, crash_checks.expected_ids(requests, by_id, inapp_url))


def _run(
    options: Options,
    stack: SandboxStack,
    index: int,
    bootstrap: str,
    run_dir: Path,
    slots: list[Slot],
    result: RunResult,
) -> None:
    rng = random.Random(options.seed * 1000 + index)
    for name in ["a", "b"] if options.scenario == "failover" else ["a"]:
        values = worker_settings(
            bootstrap, stack, run_dir / f"data-{name}", rate_limit_per_user=RATE_LIMIT
        )
        slots.append(Slot(name, values, run_dir))
        slots[-1].start()

    work = Workload.make(options, stack, index, rng)
    result.requests, result.expected = len(work.requests), sum(work.expected.values())
    asyncio.run(setup_users(bootstrap, list(work.users.values())))
    for slot in slots:  # each view answers from the owner: asking each proves the routing
        asyncio.run(wait_for_users(slot.web_url, list(work.users.values())))
    result.rekeyed = produce_burst(bootstrap, work.requests)

    run = Run(stack, list(slots), result.expected, rng, options.idle_timeout)
    result.timeline = run.timeline
    survivor = (failover if options.scenario == "failover" else restart)(run, index)
    wait_until_delivered(stack, work.expected, options.idle_timeout)
    wait_quiet(stack)
    logs = [log for slot in slots for log in slot.logs]
    check(options, stack, bootstrap, run_dir, work, survivor.web_url, logs, result)


def check(
    options: Options,
    stack: SandboxStack,
    bootstrap: str,
    run_dir: Path,
    work: Workload,
    web_url: str,
    logs: Sequence[Path],
    result: RunResult,
) -> None:
    """Count, check the status views, and write what explains each lost or stale one."""
    records = stack.received()
    got = received_pairs(records)
    counts = crash_checks.tally(work.expected, got)
    kills = [e["epoch"] for e in result.timeline if e["event"] == "kill"]
    result.duplicate_classes = dict(crash_checks.classify_duplicates(records, kills))
    _write(run_dir / "duplicates.json", crash_checks.duplicate_timings(records, kills))
    result.received, result.lost = counts.received, counts.lost
    result.duplicates, result.unexpected = counts.duplicates, counts.unexpected
    result.duplicate_pct = round(counts.duplicate_pct, 3)
    if kills and records:
        last_arrival = max(float(r["received_at"]) for r in records)
        result.after_last_kill_seconds = round(last_arrival - kills[-1], 1)

    by_nid: dict[str, set[str]] = {r["notification_id"]: set() for r in work.requests}
    for (nid, _), did in work.ids.items():
        by_nid[nid].add(did)
    lost = {pair: did for pair, did in work.ids.items() if pair not in got}
    lost_nids = {nid for nid, _ in lost}
    complete = {nid: dids for nid, dids in by_nid.items() if nid not in lost_nids}
    statuses = crash_checks.check_statuses(web_url, complete, options.status_sample, options.seed)
    result.statuses_checked, result.stale = statuses.checked, len(statuses.stale)
    result.status_seconds = round(statuses.seconds, 1)
    result.stale_reasons = dict(statuses.reasons)

    if statuses.stale:
        found = _diagnose(
            run_dir / "stale.json",
            lambda: crash_checks.stale_diagnostics(bootstrap, statuses.stale, complete, web_url),
        )
        result.stale_classes = found.get("classes", {})
    if lost:

        def lost_report() -> dict[str, Any]:
            views = asyncio.run(crash_checks.fetch_statuses(web_url, sorted(lost_nids)))
            return crash_checks.lost_diagnostics(bootstrap, lost, logs, views)

        result.lost_classes = _diagnose(run_dir / "lost.json", lost_report).get("classes", {})


def _diagnose(path: Path, gather: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Write ``gather()`` to ``path``; a failure there is written instead and never replaces
    the counts the run already has."""
    try:
        found = gather()
    except Exception as exc:
        found = {"error": f"{type(exc).__name__}: {exc}"}
    _write(path, found)
    return found


def _write(path: Path, value: Any) -> None:
    path.write_bytes(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))


# ---------------------------------------------------------------------------- reporting


def run_line(r: RunResult) -> str:
    line = (
        f"run {r.index} {r.scenario}: {r.requests} requests, {r.expected} deliveries expected, "
        f"{r.received} received; lost {r.lost}, duplicates {r.duplicates} "
        f"({r.duplicate_pct:.2f} %), stale statuses {r.stale}/{r.statuses_checked}, "
        f"crash lines {len(r.crashes)}, {r.seconds:.0f} s, "
        f"last delivery {r.after_last_kill_seconds:.1f} s after the last kill"
    )
    if r.duplicate_classes:
        line += f"; duplicates: {r.duplicate_classes}"
    if r.lost_classes:
        line += f"; lost: {r.lost_classes}"
    if r.stale_reasons:
        line += f"; stale: {r.stale_reasons} {r.stale_classes}"
    if r.error:
        line += f"; ERROR {r.error.splitlines()[0]}"
    return line


def summary(results: Sequence[RunResult]) -> str:
    rows = [("run", "lost", "duplicates", "dup %", "stale", "crashes", "seconds", "error")]
    for r in results:
        rows.append(
            (
                str(r.index),
                str(r.lost),
                str(r.duplicates),
                f"{r.duplicate_pct:.2f}",
                str(r.stale),
                str(len(r.crashes)),
                f"{r.seconds:.0f}",
                (r.error or "").splitlines()[0][:40] if r.error else "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    # Numbers right-aligned; the error column (last) as it comes.
    table = [
        "  ".join([*(c.rjust(w) for c, w in zip(row[:-1], widths, strict=False)), row[-1]])
        for row in rows
    ]
    deliveries = sum(r.expected for r in results)
    dups = sum(r.duplicates for r in results)
    failed = sum(r.failed for r in results)
    table.append(
        f"{len(results)} runs, {failed} failed; lost {sum(r.lost for r in results)}, "
        f"duplicates {dups} of {deliveries} deliveries "
        f"({100.0 * dups / deliveries if deliveries else 0.0:.2f} %), "
        f"stale statuses {sum(r.stale for r in results)}"
    )
    return "\n".join(table)


# ---------------------------------------------------------------------------- entry points


def run_scenario(options: Options, stack: SandboxStack | None = None) -> list[RunResult]:
    """``options.runs`` runs; ``stack`` (already started) is reused, else one is started for
    the invocation and stopped after it. Run directories go under a timestamped directory."""
    base = options.out_dir / datetime.now().strftime("%Y%m%d-%H%M%S")
    base.mkdir(parents=True, exist_ok=True)
    own = stack is None
    stack = stack or SandboxStack(base / "sandboxes").start()
    try:
        return [run_once(options, stack, i, base) for i in range(1, options.runs + 1)]
    finally:
        if own:
            stack.stop()
            shutil.rmtree(base / "sandboxes", ignore_errors=True)  # only TLS material


def parse(argv: Sequence[str] | None) -> tuple[Options, Path | None]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=SCENARIOS, required=True)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--status-sample", type=int, default=0, help="notifications to check (0: all)"
    )
    parser.add_argument("--idle-timeout", type=float, default=60.0)
    parser.add_argument("--json", type=Path, help="write every run's result here")
    args = parser.parse_args(argv)
    options = Options(
        scenario=args.scenario,
        runs=args.runs,
        requests=args.requests,
        users=args.users,
        out_dir=args.out_dir,
        seed=args.seed,
        status_sample=args.status_sample,
        idle_timeout=args.idle_timeout,
    )
    return options, args.json


def main(argv: Sequence[str] | None = None) -> int:
    options, json_path = parse(argv)
    results = run_scenario(options)
    print(summary(results))
    print(f"run directories: {Path(results[0].run_dir).parent}" if results else "no runs")
    if json_path is not None:
        report = {
            "options": {**asdict(options), "out_dir": str(options.out_dir)},
            "runs": [asdict(r) for r in results],
        }
        json_path.write_text(json.dumps(report, indent=2))
    return 1 if any(r.failed for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
