"""Which record a request record is, for its idempotency claim: itself, the record a replay
copies (``x-replay-of``), or the record it was passed on from (``x-request-of``). The intake
claims a key as that record; ``scripts.replay`` reads and writes the same headers."""

from __future__ import annotations

from typing import Any

# Set by ``scripts.replay`` on a copy of a request: the ``topic:partition:offset`` of the record
# it copies. The copy then stands for that record in the dedup check, so it is resolved as a
# replay of it (fanned out again, the ledger dropping what went out) and not refused as a
# duplicate; a copy of a record that never claimed its key is still one.
REPLAY_OF_HEADER = "x-replay-of"
# A request passed on (to its priority's topic, or re-keyed) names the record it came from, so
# the copy that resolves it claims the idempotency key as that record: a replay of either copy
# then re-sends as the same request (scripts/replay_read.py reads it).
REQUEST_OF_HEADER = "x-request-of"
_ORIGIN_HEADERS = (REPLAY_OF_HEADER, REQUEST_OF_HEADER)
ORIGIN_HEADERS = (REPLAY_OF_HEADER, REQUEST_OF_HEADER)


def header_items(headers: Any) -> list[tuple[str, bytes]]:
    """A record's headers (a mapping or pairs, values bytes or text) as (name, bytes) pairs."""
    items = headers.items() if isinstance(headers, dict) else headers or ()
    return [
        (name, value if isinstance(value, bytes) else str(value).encode()) for name, value in items
    ]


def source_of(message: Any) -> str:
    """The record this one is, for the dedup claim: itself, the one a replay copies, or the one
    it was passed on from."""
    found = dict(header_items(message.headers))
    for name in ORIGIN_HEADERS:
        if name in found:
            return found[name].decode(errors="replace")
    return f"{message.topic}:{message.partition}:{message.offset}"


def passed_on_headers(message: Any) -> list[tuple[str, bytes]]:
    """The headers of a request passed on: its own, naming its origin unless it already does."""
    headers = header_items(message.headers)
    if not any(name in ORIGIN_HEADERS for name, _ in headers):
        headers.append((REQUEST_OF_HEADER, source_of(message).encode()))
    return headers
