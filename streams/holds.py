"""Held notifications (``notification-requests.held``, key = ``user_id``): a request whose
channels are in the user's quiet hours waits here, in Kafka, until its ``release_at``.

The request travels byte for byte (``msgspec.Raw``): at the release it is resolved again as
the record it was, under the user's preferences of that moment (an unsubscribe in the night
stops it). Its release carries two headers: ``x-held-from`` (the source that claimed the
request's idempotency key, so the release is not refused as its own duplicate) and
``x-release-channels`` (the channels that waited; the others went out when it arrived).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from config.vocabulary import Channel
from streams.records import Id
from streams.wire import Raw, RecordDecoder

HELD_FROM_HEADER = "x-held-from"
RELEASE_CHANNELS_HEADER = "x-release-channels"


class HoldFields(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    release_at: Annotated[float, Meta(ge=0)]
    source: Id  # topic:partition:offset of the record that claimed the idempotency key
    channels: Annotated[list[Channel], Meta(min_length=1)]
    request: msgspec.Raw  # the request's JSON, as it arrived
    # When the request was made (its ``created_at``, or its record's time): the release is
    # produced with this timestamp, so a request without ``created_at`` keeps its age (the
    # latency figures, and an erasure in the night refuses it: tables/erasures.py). 0: unknown.
    created_at: Annotated[float, Meta(ge=0)] = 0.0


class Release(msgspec.Struct, frozen=True):
    """A request coming back from its hold, as the intake reads it from the headers."""

    source: str
    channels: tuple[str, ...]


_HOLD = RecordDecoder(HoldFields, name="held request")
_ENCODER = msgspec.json.Encoder()


def hold_record(
    release_at: float,
    source: str,
    channels: Iterable[str],
    request: bytes,
    created_at: float = 0.0,
) -> bytes:
    held = HoldFields(
        release_at, source, [Channel(c) for c in channels], msgspec.Raw(request), created_at
    )
    return _ENCODER.encode(held)


def parse_hold(raw: Raw) -> HoldFields:
    return _HOLD.decode(raw)


def release_headers(hold: HoldFields) -> dict[str, bytes]:
    return {
        HELD_FROM_HEADER: hold.source.encode(),
        RELEASE_CHANNELS_HEADER: ",".join(hold.channels).encode(),
    }


def release_of(headers: Any) -> Release | None:
    """The release a request record is, from its headers; None for any other record."""
    found: dict[str, str] = {}
    for name, value in headers.items() if isinstance(headers, dict) else headers or ():
        if name in (HELD_FROM_HEADER, RELEASE_CHANNELS_HEADER):
            found[name] = value.decode(errors="replace") if isinstance(value, bytes) else value
    if HELD_FROM_HEADER not in found:
        return None
    channels = tuple(c for c in found.get(RELEASE_CHANNELS_HEADER, "").split(",") if c)
    return Release(found[HELD_FROM_HEADER], channels)
