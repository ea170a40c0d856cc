"""The one faust-streaming version the project's patches of Faust internals were written for.

Each patch (``streams/faust_seek.py``, ``streams/faust_handoff.py``, ``streams/tansu_fetch.py``,
``tables/tansu_recovery.py``) refuses to install on any other version, so an upgrade fails at
start-up instead of running changed upstream code through stale assumptions.
"""

from __future__ import annotations

import hashlib
import inspect
from typing import Any

import faust

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


def is_patched(function: Any, marker: str) -> bool:
    """Whether ``function`` or anything it wraps (``__wrapped__``) carries ``marker``: patches
    that wrap the same upstream method stay idempotent in whatever order they install."""
    while function is not None:
        if getattr(function, marker, False):
            return True
        function = getattr(function, "__wrapped__", None)
    return False
