"""The one faust-streaming version the project's patches of Faust internals were written for.

Each patch (``streams/faust_seek.py``, ``streams/faust_handoff.py``, ``streams/fetch_backoff.py``,
``streams/tansu_fetch.py``, ``tables/tansu_recovery.py``) refuses to install on any other
version, so an upgrade fails at start-up instead of running changed upstream code through stale
assumptions.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

SUPPORTED_FAUST = "0.15.3"


def require_supported_faust(patch: str) -> None:
    if faust.__version__ != SUPPORTED_FAUST:
        raise RuntimeError(
            f"{patch} targets faust-streaming {SUPPORTED_FAUST}, found {faust.__version__}"
        )


def source_digest(function: Any) -> str:
    """sha256 (first 8 hex digits) of an upstream function's source, also once a patch
    (``functools.wraps`` or ``__wrapped__``) has replaced it: what each patch pins."""
    upstream = inspect.unwrap(function)
    return hashlib.sha256(inspect.getsource(upstream).encode()).hexdigest()[:8]


def require_unchanged(
    patch: str, upstream: Mapping[str, Any], expected: Mapping[str, str]
) -> None:
    """Raises unless faust is the supported version and every upstream function a patch
    replaces (``upstream``: name -> function) still has the source digest it was written for."""
    require_supported_faust(patch)
    for name, function in upstream.items():
        if source_digest(function) != expected[name]:
            raise RuntimeError(f"faust {name} changed upstream; re-check {patch}")


def is_patched(function: Any, marker: str) -> bool:
    """Whether ``function`` or anything it wraps (``__wrapped__``) carries ``marker``: patches
    that wrap the same upstream method stay idempotent in whatever order they install."""
    while function is not None:
        if getattr(function, marker, False):
            return True
        function = getattr(function, "__wrapped__", None)
    return False


def tune_worker_consumers(marker: str, tune: Callable[[Any], None]) -> None:
    """Runs ``tune(consumer)`` on every aiokafka consumer Faust's consumer thread creates,
    before it starts. Idempotent per ``marker``, whatever else wraps the same method."""
    thread_cls: Any = faust_aiokafka.AIOKafkaConsumerThread
    original = thread_cls._create_worker_consumer
    if is_patched(original, marker):
        return

    def _create_worker_consumer(self: Any, *args: Any, **kwargs: Any) -> Any:
        consumer = original(self, *args, **kwargs)
        tune(consumer)
        return consumer

    setattr(_create_worker_consumer, marker, True)
    _create_worker_consumer.__wrapped__ = original  # type: ignore[attr-defined]
    thread_cls._create_worker_consumer = _create_worker_consumer
