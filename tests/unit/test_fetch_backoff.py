"""The consumer's prefetch backoff patch, and patches of one method installed in any order."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka

from patches import fetch_backoff, pin
from patches.pin import UpstreamChanged, is_patched
from patches.tansu import fetch_wait


class _FakeConsumer:
    """Like AIOKafkaConsumer: ``start()`` is what creates the fetcher."""

    def __init__(self, fetcher: object) -> None:
        self._fetcher: object | None = None
        self._made = fetcher

    async def start(self) -> None:
        self._fetcher = self._made


async def test_the_backoff_is_set_once_start_has_built_the_fetcher() -> None:
    fetcher = SimpleNamespace(_prefetch_backoff=0.1)
    consumer = _FakeConsumer(fetcher)
    fetch_backoff.tune_on_start(consumer, 0.005)

    await consumer.start()

    assert fetcher._prefetch_backoff == 0.005


async def test_a_fetcher_without_the_attribute_fails_loudly() -> None:
    consumer = _FakeConsumer(SimpleNamespace())
    fetch_backoff.tune_on_start(consumer, 0.005)

    with pytest.raises(RuntimeError, match="_prefetch_backoff"):
        await consumer.start()


def test_both_consumer_patches_install_once_in_either_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    thread_cls: Any = faust_aiokafka.AIOKafkaConsumerThread
    upstream = thread_cls._create_worker_consumer
    while getattr(upstream, "__wrapped__", None) is not None:  # the app may have patched it
        upstream = upstream.__wrapped__
    for order in ((fetch_backoff, fetch_wait), (fetch_wait, fetch_backoff)):
        monkeypatch.setattr(thread_cls, "_create_worker_consumer", upstream)
        for _ in range(2):
            for module in order:
                if module is fetch_wait:
                    fetch_wait.install(wait_ms=50)
                else:
                    fetch_backoff.install(5.0)
        patched = thread_cls._create_worker_consumer
        assert is_patched(patched, "__fetch_backoff__") and is_patched(patched, "__tansu_fetch__")
        depth = 0
        while getattr(patched, "__wrapped__", None) is not None:
            patched, depth = patched.__wrapped__, depth + 1
        assert depth == 2 and patched is upstream


def test_another_aiokafka_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    real = pin.installed_version
    monkeypatch.setattr(
        pin, "installed_version", lambda name: "0.15.0" if name == "aiokafka" else real(name)
    )
    with pytest.raises(
        UpstreamChanged, match=re.escape("written for aiokafka 0.14.0, found 0.15.0")
    ):
        fetch_backoff.install(5.0)


def test_a_changed_fetcher_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(fetch_backoff.EXPECTED_SOURCE, "Fetcher._proc_fetch_request", "00000000")
    with pytest.raises(
        UpstreamChanged, match=re.escape("Fetcher._proc_fetch_request changed upstream")
    ):
        fetch_backoff.install(5.0)
