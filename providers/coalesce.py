"""Coalescing concurrent single sends into one batch call.

The deliver lanes run many sends at once (one per actor). For a provider with a batch API
(FCM's ``send_each_async``, up to 500 messages) the sends that arrive within a couple of
milliseconds of each other — typically one notification's devices, fanned out together — go out
as one call, each caller still getting its own result or classified error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

M = TypeVar("M")
R = TypeVar("R")


class Coalescer(Generic[M, R]):
    def __init__(
        self,
        send_batch: Callable[[Sequence[M]], Awaitable[Sequence[R | BaseException]]],
        max_batch: int = 500,
        window_seconds: float = 0.002,
    ) -> None:
        self._send_batch = send_batch
        self.max_batch = max_batch
        self.window_seconds = window_seconds
        self._pending: list[tuple[M, asyncio.Future[R]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self.batches_sent = 0
        self._in_flight: set[asyncio.Future[None]] = set()

    async def submit(self, message: M) -> R:
        """The result for ``message``; its classified error is raised here."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((message, future))
        if len(self._pending) >= self.max_batch:
            self._flush_now()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(
                self.window_seconds, self._flush_now
            )
        return await future

    def _flush_now(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.ensure_future(self._send(batch))
            self._in_flight.add(task)  # keep a reference until done (the loop holds weak ones)
            task.add_done_callback(self._in_flight.discard)

    async def _send(self, batch: list[tuple[M, asyncio.Future[R]]]) -> None:
        self.batches_sent += 1
        try:
            results = await self._send_batch([message for message, _ in batch])
        except BaseException as exc:  # the whole call failed: every caller learns why
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue  # the caller was cancelled meanwhile
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
