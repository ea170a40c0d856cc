"""sign / verify (providers.webhook) and parse_retry_after (providers.http_retry): pure
functions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from providers.http_retry import parse_retry_after
from providers.webhook import sign, verify

SECRET = "whsec_test"
BODY = b'{"a":1}'
TS = 1700000000
# Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test
EXPECTED = "sha256=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"


def test_sign_matches_a_known_vector() -> None:
    assert sign(SECRET, TS, BODY) == EXPECTED


def test_sign_accepts_str_or_bytes_everywhere() -> None:
    assert sign(SECRET.encode(), str(TS), BODY.decode()) == EXPECTED


def test_sign_encodes_text_as_utf8() -> None:
    assert sign("k", 1, "é") == sign(b"k", 1, "é".encode())


def test_verify_accepts_a_fresh_valid_signature() -> None:
    assert verify(SECRET, TS, BODY, EXPECTED, now=TS + 10)
    assert verify(SECRET, str(TS), BODY, EXPECTED, now=TS - 10)  # small clock skew both ways


@pytest.mark.parametrize(
    ("secret", "timestamp", "body", "signature"),
    [
        ("other-secret", TS, BODY, EXPECTED),
        (SECRET, TS + 1, BODY, EXPECTED),  # timestamp is inside the MAC
        (SECRET, TS, b'{"a":2}', EXPECTED),
        (SECRET, TS, BODY, EXPECTED.removeprefix("sha256=")),
        (SECRET, TS, BODY, EXPECTED.upper()),
        (SECRET, TS, BODY, ""),
        (SECRET, "not-a-number", BODY, EXPECTED),
    ],
)
def test_verify_rejects_anything_tampered(
    secret: str, timestamp: int | str, body: bytes, signature: str
) -> None:
    assert not verify(secret, timestamp, body, signature, now=TS)


def test_verify_rejects_stale_timestamps_unless_told_not_to() -> None:
    assert not verify(SECRET, TS, BODY, EXPECTED, now=TS + 301)
    assert not verify(SECRET, TS, BODY, EXPECTED, now=TS - 301)
    assert verify(SECRET, TS, BODY, EXPECTED, now=TS + 60, tolerance_seconds=60)
    assert verify(SECRET, TS, BODY, EXPECTED, now=TS + 10**6, tolerance_seconds=None)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        ("Tue, 14 Nov 2023 22:15:20 GMT", 7.0),
        ("Tue, 14 Nov 2023 22:10:00 GMT", 0.0),  # already past
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    now = datetime(2023, 11, 14, 22, 15, 13, tzinfo=UTC)
    assert parse_retry_after(header, now=now) == seconds
