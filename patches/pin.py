"""How every patch in this package pins the upstream code it relies on.

A patch names each upstream function it replaces, wraps or depends on, with the sha256 of that
function's source in the versions below. ``require_unchanged`` refuses to install on another
faust-streaming or aiokafka version or on a changed function, so an upgrade fails at start-up
with a message saying what to re-read, instead of running new upstream code through stale
assumptions.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

from config.errors import NotifyError

SUPPORTED = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}


class UpstreamChanged(NotifyError):
    """The installed faust-streaming or aiokafka is not the code a patch was written for."""


Libraries = Mapping[str, str]  # distribution -> the version the patch was written for


def require_supported_versions(patch: str, libraries: Libraries = SUPPORTED) -> None:
    for library, version in libraries.items():
        found = installed_version(library)
        if found != version:
            raise UpstreamChanged(
                f"{patch} was written for {library} {version}, found {found}: "
                f"read {patch}'s docstring, check whether the new version fixes what it works "
                "around (then delete the patch) or re-check it and update patches/pin.py"
            )


def installed_version(distribution: str) -> str:
    # The distribution's metadata, not ``module.__version__``: mode-streaming reports 0.0.1
    # there and aioapns has none.
    return importlib.metadata.version(distribution)


def source_digest(function: Any) -> str:
    """sha256 (first 8 hex digits) of an upstream function's source, also once a patch
    (``functools.wraps`` or ``__wrapped__``) has replaced it: what each patch pins."""
    upstream = inspect.unwrap(function)
    return hashlib.sha256(inspect.getsource(upstream).encode()).hexdigest()[:8]


def require_unchanged(
    patch: str,
    upstream: Mapping[str, Any],
    expected: Mapping[str, str],
    libraries: Libraries = SUPPORTED,
) -> None:
    """Raises ``UpstreamChanged`` unless ``libraries`` are the supported versions and every
    upstream function ``patch`` relies on (``upstream``: name -> function) still has the source
    digest it was written for (``expected``: name -> digest)."""
    require_supported_versions(patch, libraries)
    for name, function in upstream.items():
        found = source_digest(function)
        if found != expected[name]:
            raise UpstreamChanged(
                f"{name} changed upstream (source digest {found}, {patch} expects "
                f"{expected[name]}): re-read it against {patch} and either delete the patch "
                "(fixed upstream) or adapt it and update its digest"
            )


def is_patched(function: Any, marker: str) -> bool:
    """Whether ``function`` or anything it wraps (``__wrapped__``) carries ``marker``: patches
    that wrap the same upstream method stay idempotent in whatever order they install."""
    while function is not None:
        if getattr(function, marker, False):
            return True
        function = getattr(function, "__wrapped__", None)
    return False


def wrap_method(
    owner: Any,
    attribute: str,
    marker: str,
    patch: str,
    digest: str,
    wrap: Callable[[Any], Callable[..., Any]],
) -> None:
    """Replaces ``owner.attribute`` by ``wrap(original)`` once per ``marker`` (whatever else
    wraps the same method), after checking that the original still has ``digest``."""
    original = getattr(owner, attribute)
    if is_patched(original, marker):
        return
    name = f"{owner.__name__}.{attribute}"
    require_unchanged(patch, {name: original}, {name: digest})
    wrapper = wrap(original)
    setattr(wrapper, marker, True)
    wrapper.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(owner, attribute, wrapper)


def tune_worker_consumers(marker: str, tune: Callable[[Any], None]) -> None:
    """Runs ``tune(consumer)`` on every aiokafka consumer Faust's consumer thread creates,
    before it starts. Idempotent per ``marker``, whatever else wraps the same method."""

    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        def _create_worker_consumer(self: Any, *args: Any, **kwargs: Any) -> Any:
            consumer = original(self, *args, **kwargs)
            tune(consumer)
            return consumer

        return _create_worker_consumer

    wrap_method(
        faust_aiokafka.AIOKafkaConsumerThread,
        "_create_worker_consumer",
        marker,
        f"the {marker} consumer tuning",
        "c2701bfc",
        wrap,
    )


def tune_fetcher_on_start(consumer: Any, attribute: str, tune: Callable[[Any], None]) -> None:
    """Runs ``tune(fetcher)`` as soon as ``consumer.start()`` has built its Fetcher (aiokafka
    builds it there, not in the constructor); fails loudly if the Fetcher lost ``attribute``,
    the private part the tuning touches."""
    start: Callable[[], Awaitable[None]] = consumer.start

    async def start_then_tune() -> None:
        await start()
        fetcher = getattr(consumer, "_fetcher", None)
        if fetcher is None or not hasattr(fetcher, attribute):
            raise RuntimeError(f"aiokafka's Fetcher no longer has {attribute}")
        tune(fetcher)

    consumer.start = start_then_tune
