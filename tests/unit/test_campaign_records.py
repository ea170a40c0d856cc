"""Campaign and user-attribute records, the requests a campaign makes, and the pacer."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from agents.campaign_scan import Pacer, skip_reason
from agents.campaign_views import summarize
from config.vocabulary import CampaignSkip
from streams.campaigns import (
    Campaign,
    CampaignCancel,
    campaign_of,
    notification_id,
    parse_attributes,
    parse_campaign,
    request_for,
)
from streams.records import InvalidRecord, Preferences, parse_request

START = {
    "campaign_id": "bf-2026",
    "segment": 'country == "US" and plan == "premium"',
    "title": "Hi {first_name}",
    "body": "Use {code} today",
    "data": {"code": "BF26"},
    "channels": ["push", "email"],
}


def campaign(**overrides: Any) -> Campaign:
    parsed = parse_campaign(orjson.dumps({**START, **overrides}))
    assert isinstance(parsed, Campaign)
    return parsed


def test_a_campaign_gets_the_documented_defaults() -> None:
    c = campaign()
    assert (c.priority, c.category, c.throttle_per_second, c.start_at) == (
        "low",
        "marketing",
        1000.0,
        None,
    )
    assert c.channels == ("push", "email")
    assert c.matches({"country": "US", "plan": "premium"})
    assert not c.matches({"country": "US"})


def test_cancel_needs_only_the_id() -> None:
    cancel = parse_campaign(b'{"campaign_id": "bf-2026", "action": "cancel"}')
    assert cancel == CampaignCancel("bf-2026")


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"segment": 'country = "US"'}, "segment: unexpected character '=' at column 9"),
        ({"segment": "  "}, "'segment' is required to start a campaign"),
        ({"title": None}, "'title' is required to start a campaign"),
        ({"campaign_id": "a:b"}, r"Expected `str` matching regex .* at `\$.campaign_id`"),
        ({"throttle_per_second": 0}, r"Expected `float` > 0.0 - at `\$.throttle_per_second`"),
        ({"channels": ["fax"]}, r"Invalid enum value 'fax' - at `\$.channels\[0\]`"),
        ({"action": "pause"}, r"Invalid enum value 'pause' - at `\$.action`"),
        ({"schema_version": 2}, "unsupported schema_version 2"),
    ],
)
def test_bad_campaigns_are_refused_with_a_reason(overrides: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidRecord, match=reason):
        parse_campaign(orjson.dumps({**START, **overrides}))


def test_the_request_for_a_user_is_an_ordinary_request_with_a_stable_id() -> None:
    raw = request_for(campaign(), "user-7", {"first_name": "Ada {x}", "country": "US"}, 100.0)
    request = parse_request(raw)  # what the intake will read
    assert request.notification_id == "campaign:bf-2026:user-7"
    assert request.dedup_key == "campaign:bf-2026:user-7"
    assert (request.title, request.body) == ("Hi Ada {x}", "Use BF26 today")  # braces kept
    assert (request.priority, request.category, request.channels) == (
        "low",
        "marketing",
        ("push", "email"),
    )
    assert request.data == {"code": "BF26"}  # attributes are not shipped in the payload


def test_an_attribute_the_template_names_must_exist() -> None:
    with pytest.raises(InvalidRecord, match=r"'\{first_name\}' has no value"):
        request_for(campaign(), "user-7", {}, 100.0)


def test_notification_ids_fit_and_map_back_to_their_campaign() -> None:
    assert campaign_of(notification_id("bf-2026", "u:1")) == "bf-2026"
    long_id = notification_id("bf-2026", "u" * 200)
    assert len(long_id) <= 200 and campaign_of(long_id) == "bf-2026"
    assert long_id == notification_id("bf-2026", "u" * 200)  # deterministic
    assert campaign_of("order-123") is None
    assert campaign_of("campaign:") is None


def test_attribute_records_merge_and_remove() -> None:
    update = parse_attributes(b'{"user_id": "u1", "attributes": {"plan": "premium", "age": null}}')
    assert dict(update.changes) == {"plan": "premium", "age": None}
    with pytest.raises(InvalidRecord, match=r"got `object` - at `\$.attributes\[...\]`"):
        parse_attributes(b'{"user_id": "u1", "attributes": {"nested": {"a": 1}}}')
    with pytest.raises(InvalidRecord, match="matching regex"):
        parse_attributes(b'{"user_id": "u1", "attributes": {"1bad": 1}}')


def test_opted_out_users_are_skipped_with_their_reason() -> None:
    c = campaign()
    assert skip_reason(c, None) is None
    assert skip_reason(c, Preferences("u", {}, ("marketing",))) is CampaignSkip.CATEGORY_MUTED
    off = Preferences("u", {"push": False, "email": False})
    assert skip_reason(c, off) is CampaignSkip.NO_CHANNEL_ALLOWED
    assert skip_reason(c, Preferences("u", {"push": False})) is None


def test_the_pacer_keeps_its_rate_and_catches_up_at_most_a_burst() -> None:
    pacer = Pacer(rate=8.0)  # an interval of 1/8 s: exact in binary, so no rounding below
    now = 0.0
    for _ in range(100):  # 100 takes, each as soon as allowed
        now += pacer.delay(now)
        pacer.take(now)
    assert now == 99 / 8  # the 100th take 99 intervals after the first
    # Held up for 5 s: it may make up one second's worth (8 sends, and the one due now).
    now += 5.0
    caught_up = 0
    while pacer.delay(now) == 0:
        pacer.take(now)
        caught_up += 1
    assert caught_up == 9
    assert pacer.delay(now) == 1 / 8


def test_progress_adds_up_over_the_workers_answers() -> None:
    def scan(state: str, scanned: int, skipped: dict[str, int]) -> dict[str, Any]:
        return {
            "state": state,
            "scanned": scanned,
            "targeted": scanned // 2,
            "enqueued": scanned // 2 - sum(skipped.values()),
            "skipped": skipped,
        }

    parts: list[dict[str, Any]] = [
        {
            "partitions": {"0": scan("done", 10, {"category_muted": 1})},
            "outcomes": {"0": {"delivered": 3, "failed": 1, "rejected": {"rate_limited": 1}}},
        },
        {"partitions": {"1": scan("running", 20, {"category_muted": 2})}, "outcomes": {"1": None}},
    ]
    summary = summarize("c", 3, parts)
    assert summary["state"] == "running"
    assert (summary["scanned"], summary["targeted"], summary["enqueued"]) == (30, 15, 12)
    assert summary["skipped"] == {"category_muted": 3}
    assert (summary["delivered"], summary["failed"], summary["rejected"]) == (
        3,
        1,
        {"rate_limited": 1},
    )
    assert summary["missing_partitions"] == [2]
    assert summarize("c", 1, [])["state"] == "unknown"
    done = summarize("c", 1, [{"partitions": {"0": scan("done", 1, {})}}])
    assert done["state"] == "done" and done["missing_partitions"] == []


def test_a_campaign_may_name_a_template_instead_of_title_and_body() -> None:
    templated = campaign(title=None, body=None, template_id="black_friday")
    raw = request_for(templated, "user-7", {"first_name": "Ada"}, 100.0)
    request = parse_request(raw)
    assert (request.template_id, request.title, request.body) == ("black_friday", "", "")
    assert request.data == {"code": "BF26"}  # the user's attributes reach it as `user`
    with pytest.raises(InvalidRecord, match="'title' is required"):
        campaign(title=None, body=None)


def test_the_attributes_the_pipeline_reads_are_checked() -> None:
    ok = parse_attributes(
        b'{"user_id": "u", "attributes": {"timezone": "America/Sao_Paulo", "locale": "pt_BR"}}'
    )
    assert ok.changes == {"timezone": "America/Sao_Paulo", "locale": "pt_BR"}
    with pytest.raises(InvalidRecord, match="unknown time zone 'Mars/Olympus'"):
        parse_attributes(b'{"user_id": "u", "attributes": {"timezone": "Mars/Olympus"}}')
    with pytest.raises(InvalidRecord, match="'locale' is not a language tag"):
        parse_attributes(b'{"user_id": "u", "attributes": {"locale": "english please"}}')
