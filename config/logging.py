"""Logging set-up: every log line has e-mail addresses, phone numbers and device tokens masked."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
_PHONE = re.compile(r"\+\d{6,14}(\d{2})\b")
# A hex token (APNs: 64 characters) has letters among its digits; a long number (a duration,
# an offset, a timestamp with its fraction) has none and is left alone.
_TOKEN = re.compile(
    r"\b(?=[0-9]*[a-fA-F])[0-9a-fA-F]{12,}([0-9a-fA-F]{4})\b|\b[A-Za-z0-9_:-]{60,}\b"
)


def mask(text: str) -> str:
    """Mask personal addresses in free text, keeping just enough to tell them apart."""
    text = _EMAIL.sub(r"\1***@\2", text)
    text = _PHONE.sub(r"+***\1", text)
    return _TOKEN.sub(lambda m: "tok…" + (m.group(1) or m.group(0)[-4:]), text)


def mask_address(address: str) -> str:
    """An address shown in a view or log: e-mail, phone, token or URL (a webhook's path and
    query often name the user: only its scheme and host are shown)."""
    if address.startswith(("http://", "https://")):
        scheme, _, rest = address.partition("://")
        host = rest.split("/", 1)[0].split("?", 1)[0].rpartition("@")[2]  # no credentials
        return f"{scheme}://{host}/***"
    return mask(address) if address else address


def configure_logging(log_commits: bool = False) -> None:
    """Install a record factory (not a handler filter) so the masking also covers the handlers
    faust installs later at worker start."""
    logging.getLogger("notify.commits").setLevel(logging.INFO if log_commits else logging.WARNING)
    previous: Callable[..., logging.LogRecord] = logging.getLogRecordFactory()
    if getattr(previous, "__masks_pii__", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if record.args or isinstance(record.msg, str):
            try:
                message = record.getMessage()
            except (TypeError, ValueError):
                return record
            record.msg, record.args = mask(message), ()
        return record

    factory.__masks_pii__ = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
    # httpx (under firebase-admin and google-auth, should either use it) logs every request at
    # INFO: one line, and one masking pass, per request. Their warnings still come through.
    for chatty in ("httpx", "httpcore", "hpack", "h2"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
