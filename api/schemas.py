"""The API's own bodies: what it answers, and the public records it accepts with the parts a
path or a header supplies made optional. The record types themselves are the topics' wire
structs (streams/records.py, streams/campaigns.py): one schema for both ways in."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from api.errors import FieldError
from streams.campaigns import AttributeName, AttributeValue, CampaignFields
from streams.records import (
    ContactFields,
    DeviceFields,
    Id,
    PreferencesFields,
    RequestFields,
)
from streams.templates import TemplateFields

MAX_BULK = 1000


def _without(record: type[Any], name: str, optional: frozenset[str]) -> Any:
    """``record``'s fields, keyword-only, those in ``optional`` no longer required (a path or
    a header fills them in), for the API's view of a topic record."""
    fields: list[tuple[str, Any, Any] | tuple[str, Any]] = []
    for f in msgspec.structs.fields(record):
        if f.name in optional:
            fields.append((f.name, f.type | None, None))
        elif f.required:
            fields.append((f.name, f.type))
        else:
            default = (
                f.default
                if f.default is not msgspec.NODEFAULT
                else msgspec.field(default_factory=f.default_factory)
            )
            fields.append((f.name, f.type, default))
    return msgspec.defstruct(name, fields, kw_only=True, frozen=True)


# A request as the API takes it: ``notification_id`` may be left out (one is made, from the
# Idempotency-Key when there is one, so that a retried POST names the same notification).
NotificationBody: Any = _without(RequestFields, "NotificationBody", frozenset({"notification_id"}))
# The user comes from the path.
PreferencesBody: Any = _without(PreferencesFields, "PreferencesBody", frozenset({"user_id"}))
DeviceBody: Any = _without(DeviceFields, "DeviceBody", frozenset({"user_id"}))
ContactsBody: Any = _without(ContactFields, "ContactsBody", frozenset({"user_id"}))
CampaignBody: Any = CampaignFields
TemplateBody: Any = _without(TemplateFields, "TemplateBody", frozenset({"template_id"}))


class AttributesBody(msgspec.Struct, frozen=True, kw_only=True):
    attributes: dict[AttributeName, AttributeValue | None]  # null removes one


class BulkBody(msgspec.Struct, frozen=True, kw_only=True):
    notifications: Annotated[list[dict[str, Any]], Meta(min_length=1, max_length=MAX_BULK)]


class Accepted(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Written to the broker; the pipeline takes it from there (the status URL follows it)."""

    status: str = "accepted"
    notification_id: str | None = None
    status_url: str | None = None
    user_id: str | None = None
    campaign_id: str | None = None


class TemplateAccepted(msgspec.Struct, frozen=True, kw_only=True):
    status: str = "accepted"
    template_id: str
    version: int


class BulkItem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    index: int
    status: str  # accepted | invalid
    notification_id: str | None = None
    errors: list[FieldError] = msgspec.field(default_factory=list)


class BulkResult(msgspec.Struct, frozen=True, kw_only=True):
    accepted: int
    invalid: int
    results: list[BulkItem]


class NotificationStatusView(msgspec.Struct, frozen=True, kw_only=True):
    """The status table's row (tables/status.py ``NotificationState``: these fields and more)."""

    notification_id: str
    status: str
    user_id: str
    deliveries: dict[str, dict[str, Any]]  # delivery id -> channel, status, attempts, reason
    expected: int
    updated_at: float | None = None
    reason: str | None = None


class UserView(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    preferences: dict[str, Any] | None = None
    devices: list[dict[str, Any]] = msgspec.field(default_factory=list)
    contacts: dict[str, str] = msgspec.field(default_factory=dict)
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)
    suppressed: dict[str, Any] = msgspec.field(default_factory=dict)


UserId = Id
