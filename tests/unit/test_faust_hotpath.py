"""The pinned faust hot-path patches: the eager hand-off driver and the upstream checks."""

from __future__ import annotations

import asyncio

import pytest

from streams import faust_hotpath
from streams.faust_hotpath import _finish, _run_eagerly, check_upstream


async def test_a_handoff_that_never_waits_finishes_inline() -> None:
    seen: list[int] = []

    async def handoff() -> None:
        seen.append(1)

    finished, pending = _run_eagerly(handoff())
    assert finished and pending is None and seen == [1]


async def test_a_handoff_that_waits_is_driven_to_completion_with_its_result() -> None:
    gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def handoff() -> str:
        value = await gate
        await asyncio.sleep(0)  # a bare yield on the way
        return value + "!"

    coro = handoff()
    finished, pending = _run_eagerly(coro)
    assert not finished and pending is gate
    task = asyncio.ensure_future(_finish(coro, pending))
    await asyncio.sleep(0)
    assert not task.done()
    gate.set_result("done")
    assert await task == "done!"


async def test_errors_and_cancellation_reach_the_handoff() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    closed: list[bool] = []

    async def handoff() -> None:
        try:
            await gate
        finally:
            closed.append(True)

    coro = handoff()
    _, pending = _run_eagerly(coro)
    task = asyncio.ensure_future(_finish(coro, pending))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert closed == [True]


def test_upstream_is_the_version_the_patches_were_written_for() -> None:
    check_upstream()  # raises if faust or the patched functions changed


def test_a_changed_upstream_function_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(faust_hotpath.EXPECTED_SOURCE, "Topic._get_producer", "00000000")
    with pytest.raises(RuntimeError, match="changed upstream"):
        check_upstream()
