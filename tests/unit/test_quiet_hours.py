"""Quiet windows in the user's zone, the daily cap's day, and admission (agents/admission.py)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import msgspec
import pytest

from agents.admission import admit, content_key
from config.clock import FileClock, step_clock
from config.vocabulary import EventStatus, RejectReason
from streams.holds import Release
from streams.localtime import local_day, window_end
from streams.records import (
    InvalidRecord,
    NotificationRequest,
    Preferences,
    RenderedPart,
    parse_preferences,
)

LISBON = ZoneInfo("Europe/Lisbon")
NEW_YORK = ZoneInfo("America/New_York")
NIGHT = (22 * 60, 7 * 60)


def at(text: str, tz: ZoneInfo = LISBON) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


def test_a_window_that_wraps_midnight_ends_the_next_morning() -> None:
    assert window_end(at("2026-12-01T23:30"), LISBON, *NIGHT) == at("2026-12-02T07:00")
    assert window_end(at("2026-12-02T03:00"), LISBON, *NIGHT) == at("2026-12-02T07:00")
    assert window_end(at("2026-12-02T07:00"), LISBON, *NIGHT) is None  # end is exclusive
    assert window_end(at("2026-12-02T21:59"), LISBON, *NIGHT) is None
    assert window_end(at("2026-12-02T22:00"), LISBON, *NIGHT) == at("2026-12-03T07:00")
    lunch = (12 * 60, 13 * 60)
    assert window_end(at("2026-12-02T12:30"), LISBON, *lunch) == at("2026-12-02T13:00")


def test_the_window_follows_the_wall_clock_across_a_dst_change() -> None:
    # New York springs forward on 2026-03-08: the night is an hour shorter, 07:00 still 07:00.
    end = window_end(at("2026-03-07T23:00", NEW_YORK), NEW_YORK, *NIGHT)
    assert end == at("2026-03-08T07:00", NEW_YORK)
    assert end is not None and end - at("2026-03-07T23:00", NEW_YORK) == 7 * 3600


def test_the_cap_day_is_the_users_own() -> None:
    # 23:30 in New York on the 1st is the 2nd in UTC (and in Lisbon).
    now = at("2026-12-01T23:30", NEW_YORK)
    assert local_day(now, NEW_YORK) == "2026-12-01"
    assert local_day(now, LISBON) == "2026-12-02"


def request(**changes: object) -> NotificationRequest:
    base = NotificationRequest(notification_id="n", user_id="u", title="t", body="b")
    return msgspec.structs.replace(base, **changes)


def prefs(**changes: object) -> Preferences:
    return msgspec.structs.replace(Preferences("u"), **changes)


def test_quiet_channels_are_held_and_the_others_go_now() -> None:
    quiet = prefs(quiet_hours={"push": NIGHT, "sms": (23 * 60, 6 * 60)})
    night = at("2026-12-01T23:30")
    admission = admit(request(), ("push", "email", "sms"), quiet, LISBON, night)
    assert admission.send_now == ("email",)
    assert admission.held == ("push", "sms")
    assert admission.release_at == at("2026-12-02T06:00")  # the earliest opening
    day = admit(request(), ("push", "email"), quiet, LISBON, at("2026-12-02T12:00"))
    assert (day.send_now, day.held) == (("push", "email"), ())


@pytest.mark.parametrize("changes", [{"category": "security"}, {"priority": "high"}])
def test_security_and_high_priority_pass_quiet_hours_and_the_cap(changes: dict[str, str]) -> None:
    strict = prefs(quiet_hours={"push": NIGHT}, daily_cap=1)
    admission = admit(request(**changes), ("push",), strict, LISBON, at("2026-12-01T23:30"),
                      count_today=5)  # fmt: skip
    assert (admission.send_now, admission.held, admission.refused) == (("push",), (), None)


def test_the_daily_cap_refuses_past_it_and_names_the_day_to_count() -> None:
    capped = prefs(daily_cap=2)
    now = at("2026-12-01T10:00", NEW_YORK)
    ok = admit(request(), ("email",), capped, NEW_YORK, now, count_today=1)
    assert (ok.refused, ok.cap_day) == (None, "2026-12-01")
    over = admit(request(), ("email",), capped, NEW_YORK, now, count_today=2)
    assert (over.refused, over.reason) == (EventStatus.CAPPED, "daily cap of 2 reached")
    # A release was counted when it arrived.
    back = admit(request(), ("email",), capped, NEW_YORK, now, count_today=2,
                 release=Release("t:0:1", ("email",)))  # fmt: skip
    assert back.refused is None and back.cap_day is None


def test_content_dedup_refuses_the_same_rendered_content_but_not_its_own_replay() -> None:
    part = RenderedPart(title="Order 1", body="shipped")
    templated = request(template_id="order", content={"push": part})
    admission = admit(templated, ("push",), None, LISBON, 0.0, content_window=3600.0,
                      content_claim="t:0:1", source="t:0:2")  # fmt: skip
    assert (admission.refused, admission.reason) == (
        EventStatus.REJECTED,
        RejectReason.DUPLICATE_CONTENT,
    )
    own = admit(templated, ("push",), None, LISBON, 0.0, content_window=3600.0,
                content_claim="t:0:1", source="t:0:1")  # fmt: skip
    assert own.refused is None and own.content_key == content_key(templated)
    other = request(template_id="order", content={"push": RenderedPart("Order 2", "shipped")})
    assert content_key(other) != content_key(templated)
    assert content_key(request(template_id="other", content={"push": part})) != content_key(
        templated
    )
    # Inline requests, or with the window at 0, claim nothing.
    assert admit(request(), ("push",), None, LISBON, 0.0, content_window=3600.0).content_key is None
    assert admit(templated, ("push",), None, LISBON, 0.0).content_key is None


def test_quiet_hours_and_caps_are_checked_in_the_preferences_record() -> None:
    parsed = parse_preferences(
        b'{"user_id": "u", "quiet_hours": {"push": {"start": "22:00", "end": "07:30"}},'
        b' "daily_cap": 3}'
    )
    assert (parsed.quiet_hours, parsed.daily_cap) == ({"push": (1320, 450)}, 3)
    for bad, reason in (
        (b'{"user_id": "u", "quiet_hours": {"push": {"start": "24:00", "end": "07:00"}}}', "start"),
        (b'{"user_id": "u", "quiet_hours": {"fax": {"start": "22:00", "end": "07:00"}}}', "fax"),
        (b'{"user_id": "u", "quiet_hours": {"sms": {"start": "22:00", "end": "22:00"}}}', "same"),
        (b'{"user_id": "u", "daily_cap": 0}', "daily_cap"),
    ):
        with pytest.raises(InvalidRecord, match=reason):
            parse_preferences(bad)


def test_a_file_clock_is_stepped_and_runs_on(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "clock"
    clock = FileClock(path)
    step_clock(path, 1_000.0)
    assert 1_000.0 <= clock() < 1_060.0
    step_clock(path, 5_000.0)
    assert 5_000.0 <= clock() < 5_060.0
