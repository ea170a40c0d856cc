"""Log lines mask personal addresses and leave everything else readable."""

from __future__ import annotations

import logging

import pytest

from config.logging import configure_logging, mask

APNS_TOKEN = "a3f1" * 15 + "9746"  # 64 hex characters
FCM_TOKEN = "fcm:" + "Ab_9-" * 14 + "xyz1"  # 78 characters of an FCM token's alphabet


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("to jane.doe@example.com", "to j***@example.com"),
        ("sms to +447700900123", "sms to +***23"),
        (f"push to {APNS_TOKEN}", "push to tok…9746"),
        (f"push to {FCM_TOKEN}", f"push to tok…{FCM_TOKEN[-4:]}"),
    ],
)
def test_personal_addresses_are_masked(line: str, expected: str) -> None:
    assert mask(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "producer flush took 0.0024519837461 s",
        "committed deliveries.email.low:3=1796124502960546",
        "epoch 1796124502.9605465, offset 123456789012345",
        "delivery 3f2a9c1e-5b7d-4e2a-9c1f-0a1b2c3d4e5f sent",  # a UUID's groups are short
    ],
)
def test_numbers_and_ids_are_left_alone(line: str) -> None:
    assert mask(line) == line


def test_the_record_factory_masks_formatted_arguments(caplog: pytest.LogCaptureFixture) -> None:
    configure_logging()
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("sent to %s in %.6f s", "jane@example.com", 0.00245)
    assert caplog.messages == ["sent to j***@example.com in 0.002450 s"]


def test_a_url_address_keeps_only_its_scheme_and_host() -> None:
    from config.logging import mask_address

    assert mask_address("https://user:pw@hooks.example.com/u/42?x=1") == (
        "https://hooks.example.com/***"
    )
    assert mask_address("ada@example.com") == "a***@example.com"
