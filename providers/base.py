"""The provider contract: what the delivery stage hands a provider, and what comes back.

Providers never import faust. Vendor errors are translated here, at the boundary, into the
small vocabulary below so that the pipeline decides retry / dead letter / feedback without
knowing which vendor it talked to. The words a message is made of (channels, priorities,
platforms, push options) are the wire records' own (config/vocabulary.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

import msgspec
from msgspec import UNSET, UnsetType

from config.errors import NotifyError
from config.vocabulary import (
    NO_PUSH_OPTIONS,
    ChannelField,
    PlatformField,
    Priority,
    PriorityField,
    PushOptions,
)


class ProviderName(StrEnum):
    """Each provider client's name: the registry's keys, ``SendResult.provider``, the ledger's
    and the events' ``provider``."""

    APNS = "apns"
    FCM = "fcm"
    SMTP = "smtp"
    SMTP_BACKUP = "smtp-backup"  # the SMTP provider's backup relay took the mail
    SMS = "sms"
    WEBHOOK = "webhook"
    # Status callbacks to callers (agents/callbacks.py): POSTed and signed like webhooks, by a
    # client of their own with no circuit breaker, so one caller's dead endpoint never opens
    # the breaker of the users' webhooks (nor of the other callers' callbacks).
    CALLBACK = "callback"


class OutboundMessage(msgspec.Struct, frozen=True):
    """One delivery to one address (device token, e-mail address, phone number or URL).

    Built from a ``streams.deliveries.Delivery`` field by field by name (agents/deliver.py):
    every field here must be one of the delivery's, under the same name and type."""

    delivery_id: str
    notification_id: str
    user_id: str
    channel: ChannelField
    address: str
    title: str
    body: str
    priority: PriorityField = Priority.NORMAL
    platform: PlatformField | None = None  # push only
    data: Mapping[str, str] = msgspec.field(default_factory=dict)
    collapse_key: str | None = None
    ttl_seconds: int | None = None
    category: str = ""
    # How a push is presented (sound, badge, image, ...); carried on every channel.
    push: PushOptions = NO_PUSH_OPTIONS
    html: str | UnsetType = UNSET  # e-mail only: a template's HTML part (``body``: its text)


@dataclass(frozen=True, slots=True)
class SendResult:
    provider: str
    provider_message_id: str | None = None
    segments: int | None = None  # SMS: billed message segments


class ProviderError(NotifyError):
    """Base of every classified provider failure."""

    def __init__(self, provider: str, code: str, detail: str = "") -> None:
        super().__init__(f"{provider}: {code}{': ' + detail if detail else ''}")
        self.provider = provider
        self.code = code
        self.detail = detail


class TransientError(ProviderError):
    """Worth retrying: 5xx, timeouts, dropped connections, SMTP 4xx."""


class ThrottledError(TransientError):
    """The provider asked us to slow down; ``retry_after`` is in seconds when it said so."""

    def __init__(
        self, provider: str, code: str, detail: str = "", retry_after: float | None = None
    ) -> None:
        super().__init__(provider, code, detail)
        self.retry_after = retry_after


class PermanentError(ProviderError):
    """Never worth retrying as is: malformed payload, SMTP 5xx hard bounce."""


class ConfigurationError(PermanentError):
    """Our side is wrong (bad topic, bad credentials): no retry, somebody must be alerted."""


class InvalidRecipientError(PermanentError):
    """The address is dead (unregistered token, invalid number): remove it, never retry."""


def not_started(provider: str) -> ConfigurationError:
    """What every provider raises for a send before its ``start()`` (or after ``stop()``)."""
    return ConfigurationError(provider, "not_started", "send() before start()")


@runtime_checkable
class Provider(Protocol):
    """An async client for one vendor. Opened and closed by a faust Service, never global."""

    @property
    def name(self) -> str: ...  # its ProviderName

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(self, message: OutboundMessage) -> SendResult: ...


BREAKER_STATES = ("closed", "open", "half_open")


@runtime_checkable
class ReportsBreakers(Protocol):
    """A provider with circuit breakers says what state each is in (one of BREAKER_STATES),
    by breaker name; the metrics read it at every scrape (``notify_circuit_breaker_state``).
    Read, not pushed: a breaker turns half-open when its cool-down ends, with no event."""

    def breaker_states(self) -> Mapping[str, str]: ...
