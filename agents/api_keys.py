"""Applies ``api-keys`` records to the keys table every worker holds; an unreadable record
goes to ``api-keys.dlq`` with its reason."""

from __future__ import annotations

import logging

import faust

from agents import safe
from agents.supervision import supervised_agent
from streams.api_keys import parse_key_record
from streams.faust_types import Agent, Event, Stream
from streams.topics import Topics
from tables import Tables, api_keys

log = logging.getLogger(__name__)


def register(app: faust.App, topics: Topics, tables: Tables) -> Agent:
    async def apply(event: Event) -> None:
        key, entry = parse_key_record(event.message.key, event.message.value)
        api_keys.put(tables.api_keys, key, entry)
        key_id = key.partition(":")[0]
        # The id and the hash's first 8 characters: enough to tell keys apart, nothing usable.
        log.info("api key %s:%s… %s", key_id, key.partition(":")[2][:8],
                 "revoked" if entry is None else "stored")  # fmt: skip

    async def apply_api_keys(stream: Stream) -> None:
        async for event in stream.events():
            await safe.handle_safely(event, apply, topics.api_keys_dlq, "apply_api_keys")

    return supervised_agent(app, topics.api_keys, "apply_api_keys")(apply_api_keys)
