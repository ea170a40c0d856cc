"""The pinned eager hand-off: the coroutine driver and the upstream checks."""

from __future__ import annotations

import asyncio

import pytest

from patches import eager_handoff
from patches.eager_handoff import check_upstream, finish, run_eagerly
from patches.pin import UpstreamChanged


async def test_a_handoff_that_never_waits_finishes_inline() -> None:
    seen: list[int] = []

    async def handoff() -> None:
        seen.append(1)

    finished, pending = run_eagerly(handoff())
    assert finished and pending is None and seen == [1]


async def test_a_handoff_that_waits_is_driven_to_completion_with_its_result() -> None:
    gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def handoff() -> str:
        value = await gate
        await asyncio.sleep(0)  # a bare yield on the way
        return value + "!"

    coro = handoff()
    finished, pending = run_eagerly(coro)
    assert not finished and pending is gate
    task = asyncio.ensure_future(finish(coro, pending))
    await asyncio.sleep(0)
    assert not task.done()
    gate.set_result("done")
    assert await task == "done!"


async def test_cancelling_a_waiting_handoff_closes_it() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    closed: list[bool] = []

    async def handoff() -> None:
        try:
            await gate
        finally:
            closed.append(True)

    coro = handoff()
    _, pending = run_eagerly(coro)
    task = asyncio.ensure_future(finish(coro, pending))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert closed == [True]


async def test_an_error_in_a_waiting_handoff_reaches_the_caller() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def handoff() -> None:
        await gate
        raise LookupError("no such stream")

    coro = handoff()
    _, pending = run_eagerly(coro)
    task = asyncio.ensure_future(finish(coro, pending))
    gate.set_result(None)
    with pytest.raises(LookupError, match="no such stream"):
        await task


def test_upstream_is_the_version_the_patch_was_written_for() -> None:
    check_upstream()  # raises if faust or the patched functions changed


def test_a_changed_upstream_function_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(eager_handoff.EXPECTED_SOURCE, "Consumer._drain_messages", "00000000")
    with pytest.raises(UpstreamChanged, match="changed upstream"):
        check_upstream()


class _FakeConsumer:
    """What the wrapper reads of a Consumer: its conductor callback and the flow flag."""

    def __init__(self) -> None:
        self.suspend_flow = asyncio.Event()
        self.handed: list[str] = []
        self.raced: list[int] = []

    async def callback(self, message: str) -> None:
        self.handed.append(message)

    async def upstream_wait_first(self, *coros: object, timeout: object = None) -> None:
        # Stands in for mode's wait_first: records that the race path was taken, runs the
        # first coroutine to the end and closes the rest, as upstream cancels the losers.
        self.raced.append(len(coros))
        await coros[0]  # type: ignore[misc]
        for coro in coros[1:]:
            coro.close()  # type: ignore[attr-defined]


async def test_the_conductor_handoff_runs_inline_and_others_keep_the_race() -> None:
    consumer = _FakeConsumer()
    wait_first = eager_handoff._eager_wait_first(_FakeConsumer.upstream_wait_first)

    await wait_first(consumer, consumer.callback("inline"), consumer.suspend_flow.wait())
    assert consumer.handed == ["inline"] and consumer.raced == []

    async def someone_else() -> None:
        consumer.handed.append("other")

    await wait_first(consumer, someone_else(), consumer.suspend_flow.wait())
    assert consumer.handed == ["inline", "other"] and consumer.raced == [2]

    consumer.suspend_flow.set()  # a rebalance is under way: upstream's race decides
    await wait_first(consumer, consumer.callback("suspended"), consumer.suspend_flow.wait())
    assert consumer.raced == [2, 2]
