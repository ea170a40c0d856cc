"""Scaffolding shared by the provider and sandbox tests: messages, settings, start/stop, ports."""

from __future__ import annotations

import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol, TypeVar

from config.settings import Settings
from providers.base import OutboundMessage


class Startable(Protocol):
    """Sandboxes and providers alike: ``start()`` before use, ``stop()`` after."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


S = TypeVar("S", bound=Startable)


@asynccontextmanager
async def running(thing: S) -> AsyncIterator[S]:
    """Start a sandbox or a provider and stop it however the block ends."""
    await thing.start()
    try:
        yield thing
    finally:
        await thing.stop()


def make_settings(**fields: object) -> Settings:
    # model_validate: sandboxes hand over dict[str, object], which Settings(**...) can't type.
    return Settings.model_validate(fields)


class MessageBuilder:
    """``OutboundMessage`` factory with one test module's defaults.

    Ids are ``d-{n}`` / ``n-{n}``; with ``n=None`` as the builder's default every message gets
    fresh random ids instead (tests that send many and match them up by id).
    """

    def __init__(
        self, channel: str, address: str = "", *, n: int | None = 1, **defaults: object
    ) -> None:
        self.channel, self.address, self.n, self.defaults = channel, address, n, defaults

    def __call__(
        self, address: str | None = None, n: int | None = None, **extra: object
    ) -> OutboundMessage:
        n = self.n if n is None else n
        suffix = secrets.token_hex(4) if n is None else str(n)
        fields: dict[str, object] = {
            "delivery_id": f"d-{suffix}",
            "notification_id": f"n-{suffix}",
            "user_id": "u-1",
            "channel": self.channel,
            "address": self.address if address is None else address,
            "title": "",
            "body": "",
            **self.defaults,
            **extra,
        }
        return OutboundMessage(**fields)  # type: ignore[arg-type]


def apns_token() -> str:
    """A well-formed APNs device token (64 hex digits)."""
    return secrets.token_hex(32)


def fcm_token() -> str:
    """A plausible FCM registration token."""
    return secrets.token_urlsafe(48)


def closed_port() -> int:
    """A local port nobody listens on: bound once, then released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
