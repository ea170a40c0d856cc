"""Run ``faust -A app worker`` as a child process, for the demo, the tests and the benchmark."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from pydantic import SecretStr

ROOT = Path(__file__).resolve().parent.parent
READY_LINE = "Worker ready"
# uvloop: +9 % per event, more on batched paths (BROKER.md). -l info, not warn: with warn
# faust's spinner handler sets the root logger to DEBUG.
WORKER_ARGS = ("worker", "-l", "info")


def settings_env(values: Mapping[str, object]) -> dict[str, str]:
    """Settings field values -> ``NOTIFY_*`` environment variables (lists as JSON, which is
    how pydantic-settings reads complex fields)."""

    def encode(value: object) -> str:
        if isinstance(value, (list, tuple, dict)):
            return json.dumps(value)
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        return str(value)

    return {f"NOTIFY_{k.upper()}": encode(v) for k, v in values.items() if v is not None}


class WorkerProcess:
    """One worker; its log goes to ``log_path`` so readiness and failures can be read."""

    def __init__(self, env: Mapping[str, str], log_path: Path, app_module: str = "app") -> None:
        self.app_module = app_module
        # The repository first; a caller's own PYTHONPATH (a profiler, a debug hook) after it.
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        self.env = {**os.environ, **env, "PYTHONPATH": path}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log_start = 0

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.env.get('NOTIFY_WEB_PORT', '6066')}"

    def start(self, ready_timeout: float = 60.0) -> WorkerProcess:
        self.launch()
        self.wait_ready(ready_timeout)
        return self

    def launch(self) -> WorkerProcess:
        """Starts the process without waiting for it to be ready (``wait_ready`` does)."""
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")  # the child owns it
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "faust",
                "--loop",
                "uvloop",
                "-A",
                self.app_module,
                *WORKER_ARGS,
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    def log_text(self) -> str:
        with open(self.log_path, "rb") as fh:
            fh.seek(self._log_start)
            return fh.read().decode(errors="replace")

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if READY_LINE in self.log_text():
                return
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"worker exited during start:\n{self.log_text()[-3000:]}")
            time.sleep(0.1)
        raise TimeoutError(f"worker not ready after {timeout}s:\n{self.log_text()[-3000:]}")

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful stop: faust commits offsets and flushes the producer on SIGTERM."""
        self.terminate()
        self.wait_stopped(timeout)

    def terminate(self) -> None:
        """SIGTERM, without waiting: ``stop_all`` stops several workers at once."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait_stopped(self, timeout: float = 30.0) -> None:
        """Waits for a terminated worker's graceful stop; killed past ``timeout``."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """Crash: no commit, no flush. What was not committed is read again on restart."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def stop_all(workers: Iterable[WorkerProcess], timeout: float = 30.0) -> None:
    """Every worker told to stop first, then waited for: their graceful stops (commits, the
    producer's flush, leaving the group) overlap instead of adding up."""
    workers = list(workers)
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.wait_stopped(timeout)
