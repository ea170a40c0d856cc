"""Faust's generic types, parameterised once for this app (``mypy --strict`` wants the type
arguments; every record here travels as raw bytes and is decoded by ``streams/wire.py``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

from faust.types import AgentT, ChannelT, EventT, StreamT, TableT

Event: TypeAlias = EventT[Any]
Channel: TypeAlias = ChannelT[Any]
Stream: TypeAlias = StreamT[Any]
Agent: TypeAlias = AgentT[Any]
Table: TypeAlias = TableT[Any, Any]
AgentBody: TypeAlias = Callable[[Stream], Awaitable[None]]
