"""What every route module gets: the app, its settings, topics and tables, the spec its
operations are declared in, and a send that returns once the broker has the record."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import faust
import msgspec
from aiohttp import web
from faust.web import Response

from agents import produce
from agents.inbox_hub import InboxHub
from api.openapi import ApiSpec
from config.settings import Settings
from streams.faust_types import Channel
from streams.topics import Topics
from tables import Tables

Record = tuple[bytes, bytes | None]  # key, value


@dataclass(frozen=True)
class ApiContext:
    app: faust.App
    settings: Settings
    topics: Topics
    tables: Tables
    spec: ApiSpec
    # This worker's live inbox streams (api/inbox_stream.py); None: no stream is served.
    inbox_hub: InboxHub | None = None

    async def send(
        self, channel: Channel, key: bytes, value: bytes | None, headers: Any = None
    ) -> None:
        """A 202 means the record is on the broker: the write is acked before the answer."""
        await produce.send_and_wait(channel, key, value, headers)

    async def send_all(self, channel: Channel, records: Sequence[Record]) -> None:
        """Many records, one wait: each is handed to the producer (batched by its linger),
        then every acknowledgement is awaited together."""
        pending = [await produce.send_pending(channel, key, value) for key, value in records]
        await asyncio.gather(*(p for p in pending if p is not None))


def reply(body: Any, status: int = 200) -> Response:
    """A JSON answer from a struct (or plain data), outside a View's ``self.json``."""
    return cast(Response, web.json_response(msgspec.to_builtins(body), status=status))
