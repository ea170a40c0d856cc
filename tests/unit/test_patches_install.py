"""``patches.install(settings)`` is the one entry point: importing installs nothing, the
embedded-broker patches come only with the tansu flavour. Each case runs in a fresh
interpreter, so no test sees what another installed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import patches

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
from faust.transport.consumer import Consumer
from faust.transport.producer import ProducerBuffer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread as Thread
import patches
from config.settings import Settings
from patches.pin import is_patched
from streams.topics import URGENT

def state():
    return {
        "commit_guard": getattr(Consumer._new_offset, "__name__", "") == "new_offset",
        "bounded_flush": is_patched(ProducerBuffer.flush, "__bounded_flush__"),
        "commit_assignment": is_patched(Thread._commit, "__assignment_once__"),
        "livelock_holds": is_patched(Thread.verify_event_path, "__held_aware__"),
        "tansu_highwaters": is_patched(Thread._highwaters, "__tansu_fix__"),
        "tansu_fetch_wait": is_patched(Thread._create_worker_consumer, "__tansu_fetch__"),
        "fetch_backoff": is_patched(Thread._create_worker_consumer, "__fetch_backoff__"),
        "resting_partitions": is_patched(
            Thread._create_worker_consumer, "__resting_partitions__"
        ),
    }

before = state()
flavor = sys.argv[1]
if flavor != "none":
    patches.install(Settings(broker_flavor=flavor), URGENT)
    patches.install(Settings(broker_flavor=flavor), URGENT)  # idempotent
print(json.dumps({"before": before, "after": state()}))
"""


def probe(flavor: str) -> dict[str, dict[str, bool]]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, flavor], cwd=ROOT, capture_output=True, text=True, check=True
    )
    result: dict[str, dict[str, bool]] = json.loads(out.stdout)
    return result


def test_importing_the_package_installs_nothing() -> None:
    seen = probe("none")
    assert not any(seen["before"].values()) and not any(seen["after"].values())


def test_a_kafka_worker_gets_no_embedded_broker_patch() -> None:
    after = probe("kafka")["after"]
    assert after == {
        "commit_guard": True,
        "bounded_flush": True,
        "commit_assignment": True,
        "livelock_holds": True,
        "tansu_highwaters": False,
        "tansu_fetch_wait": False,
        "fetch_backoff": True,
        "resting_partitions": True,
    }


def test_the_tansu_flavour_adds_its_patches() -> None:
    assert all(probe("tansu")["after"].values())


@pytest.mark.parametrize("module", sorted(patches.works_around()))
def test_every_patch_names_what_it_works_around(module: str) -> None:
    reason = patches.works_around()[module]
    assert reason and "\n" not in reason and len(reason) <= 100
