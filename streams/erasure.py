"""The records of erasure and unsubscribe (seed 000 §4).

Both are control records, keyed by ``user_id``, applied on the user's own partition by the
control agent (agents/control.py, agents/erasure.py):

- ``user-erasures``: ``{"user_id": "u-1", "requested_at": 1795318497.6}`` forgets the user.
- ``user-unsubscribes``: ``{"user_id": "u-1", "category": "orders"}`` (or ``"channel":
  "email"``) mutes one category or one channel. A record naming only what changes, not the whole
  preferences: the read-modify-write happens on the owner partition, against the preferences
  of that moment, so an API call can never overwrite a preference change it did not see.

``erased-users`` (key = user_id, compacted, one partition) carries each erasure's marker to
every worker (tables/erasures.py); ``audit-events`` (key = user_id) what was done, with no PII
beyond the user id (addresses masked).
"""

from __future__ import annotations

import msgspec

from config.vocabulary import AuditActionField, ChannelField
from streams.records import Id, InvalidRecord
from streams.wire import Raw, RecordDecoder


class UserErasure(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    user_id: Id
    # When the user asked (epoch seconds): deliveries of requests made up to then are
    # cancelled. 0: the record's timestamp.
    requested_at: float = 0.0
    requested_by: str = ""  # who asked (the API key's id), for the audit event


class Unsubscribe(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    user_id: Id
    category: str = ""  # the category to mute, or
    channel: ChannelField | None = None  # the channel to switch off
    source: str = "one_click"  # how it came (the audit event says)


class ErasedMarker(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    user_id: Id
    erased_at: float  # deliveries of requests made up to then are never sent


class AuditEvent(msgspec.Struct, frozen=True, omit_defaults=True):
    action: AuditActionField
    user_id: str
    at: float
    # What was done, masked (config.logging.mask_address): tables cleared, the category muted...
    details: dict[str, str] = msgspec.field(default_factory=dict)


_ERASURE = RecordDecoder(UserErasure)
_UNSUBSCRIBE = RecordDecoder(Unsubscribe)
_MARKER = RecordDecoder(ErasedMarker)
_ENCODER = msgspec.json.Encoder()


def _non_blank_user(user_id: str) -> None:
    if not user_id.strip():
        raise InvalidRecord("'user_id' must not be blank")


def parse_erasure(raw: Raw) -> UserErasure:
    record = _ERASURE.decode(raw)
    _non_blank_user(record.user_id)
    return record


def parse_unsubscribe(raw: Raw) -> Unsubscribe:
    record = _UNSUBSCRIBE.decode(raw)
    _non_blank_user(record.user_id)
    if bool(record.category) == (record.channel is not None):
        raise InvalidRecord("an unsubscribe names one 'category' or one 'channel'")
    return record


def parse_marker(raw: Raw) -> ErasedMarker:
    record = _MARKER.decode(raw)
    _non_blank_user(record.user_id)
    return record


def encode(record: msgspec.Struct) -> bytes:
    return _ENCODER.encode(record)
