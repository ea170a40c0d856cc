"""Concurrent single sends coalesced into batch calls, each caller with its own outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from providers.coalesce import Coalescer


async def test_concurrent_sends_share_one_batch_and_get_their_own_results() -> None:
    calls: list[list[int]] = []

    async def send_batch(messages: Sequence[int]) -> list[int | BaseException]:
        calls.append(list(messages))
        return [ValueError(f"bad {m}") if m == 3 else m * 10 for m in messages]

    coalescer: Coalescer[int, int] = Coalescer(send_batch, max_batch=500, window_seconds=0.01)
    results = await asyncio.gather(*(coalescer.submit(m) for m in range(5)), return_exceptions=True)
    assert calls == [[0, 1, 2, 3, 4]]
    assert results[:3] == [0, 10, 20] and results[4] == 40
    assert isinstance(results[3], ValueError)


async def test_a_full_batch_goes_at_once_and_the_rest_waits_for_the_window() -> None:
    calls: list[int] = []

    async def send_batch(messages: Sequence[int]) -> list[int | BaseException]:
        calls.append(len(messages))
        return list(messages)

    coalescer: Coalescer[int, int] = Coalescer(send_batch, max_batch=3, window_seconds=0.01)
    assert await asyncio.gather(*(coalescer.submit(m) for m in range(7))) == list(range(7))
    assert calls == [3, 3, 1] and coalescer.batches_sent == 3


async def test_a_failed_batch_call_fails_every_caller() -> None:
    async def send_batch(messages: Sequence[int]) -> list[int | BaseException]:
        raise ConnectionError("down")

    coalescer: Coalescer[int, int] = Coalescer(send_batch)
    with pytest.raises(ConnectionError):
        await coalescer.submit(1)
