"""The API's pure parts: keys and their rotation, per-field body errors, the OpenAPI document."""

from __future__ import annotations

import json

import msgspec
import pytest

from api.body import checked_record, convert, field_errors, invalid_record
from api.errors import ApiError
from api.keys import KeyRing, Scope, digest, key_id_of, new_key
from api.openapi import ApiSpec, Operation
from api.schemas import Accepted, CampaignBody, NotificationBody
from streams.campaigns import parse_campaign
from streams.records import InvalidRecord


def ring(*entries: dict[str, object]) -> KeyRing:
    return KeyRing.from_json(json.dumps(list(entries)))


def test_a_key_is_known_by_its_hash_only_and_two_keys_of_one_id_work_during_a_rotation() -> None:
    old, old_hash = new_key("shop")
    new, new_hash = new_key("shop")
    keys = ring(
        {"id": "shop", "sha256": old_hash, "scopes": ["send"]},
        {"id": "shop", "sha256": new_hash, "scopes": ["send"]},
    )
    for token in (old, new):
        found = keys.authenticate(token)
        assert found is not None and found.id == "shop"
    assert keys.authenticate(new[:-1] + ("A" if new[-1] != "A" else "B")) is None
    assert keys.authenticate("nk_other_" + new.split("_", 2)[2]) is None  # right secret, other id
    assert keys.authenticate("not a key") is None
    assert digest(old) == old_hash and old not in json.dumps(old_hash)


def test_scopes_admin_implies_the_others() -> None:
    token, sha = new_key("ops")
    key = ring({"id": "ops", "sha256": sha, "scopes": ["admin"]}).authenticate(token)
    assert key is not None
    assert all(key.allows(scope) for scope in Scope)
    token, sha = new_key("reader")
    reader = ring({"id": "reader", "sha256": sha, "scopes": ["read"]}).authenticate(token)
    assert reader is not None and reader.allows(Scope.READ) and not reader.allows(Scope.SEND)


def test_bad_key_settings_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="NOTIFY_API_KEYS"):
        KeyRing.from_json('[{"id": "x", "sha256": "short", "scopes": ["send"]}]')
    with pytest.raises(ValueError, match="not JSON"):
        KeyRing.from_json("[{")
    assert not KeyRing.from_json("").enabled
    assert key_id_of("nk_shop_secret") == "shop" and key_id_of("nk_shop") is None


def test_every_bad_field_is_listed() -> None:
    errors = field_errors(
        {"title": 5, "channels": ["push", "pigeon"], "priority": "soon"}, NotificationBody
    )
    assert {e.field for e in errors} == {"user_id", "title", "channels[1]", "priority"}
    with pytest.raises(ApiError) as refused:
        convert({"user_id": "u", "title": "t", "body": "b", "ttl_seconds": -1}, NotificationBody)
    assert refused.value.status == 400
    assert [d.field for d in refused.value.details] == ["ttl_seconds"]


def test_the_topic_paths_reason_names_its_field() -> None:
    error = invalid_record(InvalidRecord("'title' is required and must be a non-empty string"))
    assert [d.field for d in error.details] == ["title"]
    assert invalid_record(InvalidRecord("malformed JSON")).details == []


def test_a_checked_record_is_the_bytes_to_produce_and_what_its_topics_parser_made_of_them() -> None:
    campaign = {"campaign_id": "c1", "segment": 'country == "US"', "title": "t", "body": "b"}
    raw, parsed = checked_record(campaign, CampaignBody, parse_campaign, "campaign")
    assert json.loads(raw) == campaign and parsed.campaign_id == "c1"

    parsed_records: list[bytes] = []

    def refusing(raw: bytes) -> None:
        parsed_records.append(raw)
        raise InvalidRecord("'segment' names no attribute")

    with pytest.raises(ApiError) as bad_fields:
        checked_record({"campaign_id": 5, "title": []}, CampaignBody, refusing, "campaign")
    assert bad_fields.value.message == "the campaign has invalid fields"
    assert {d.field for d in bad_fields.value.details} >= {"campaign_id", "title"}
    assert parsed_records == []  # a body with bad fields never reaches the parser
    with pytest.raises(ApiError) as refused:
        checked_record(campaign, CampaignBody, refusing)
    assert (refused.value.status, refused.value.message) == (400, "'segment' names no attribute")
    assert [d.field for d in refused.value.details] == ["segment"]


def test_the_document_has_every_operation_with_its_types_and_guard_answers() -> None:
    spec = ApiSpec("notify", "1")
    spec.add(Operation("POST", "/v1/notifications", Scope.SEND, "send", NotificationBody,
                       {202: Accepted}))  # fmt: skip
    spec.add(Operation("GET", "/v1/users/{user_id}", Scope.READ, "read", None, {200: None}))
    with pytest.raises(ValueError, match="twice"):
        spec.add(Operation("GET", "/v1/users/{user_id}", Scope.READ, "again"))
    doc = spec.document()
    post = doc["paths"]["/v1/notifications"]["post"]
    assert set(post["responses"]) == {"202", "400", "401", "403", "429"}
    body_ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][body_ref.rsplit("/", 1)[1]]
    assert "notification_id" not in schema.get("required", [])  # the API makes one
    assert "user_id" in schema["required"]
    get = doc["paths"]["/v1/users/{user_id}"]["get"]
    assert get["parameters"][0]["name"] == "user_id"
    assert spec.scope_of("GET", "/v1/users/{user_id}") is Scope.READ
    assert spec.scope_of("GET", "/elsewhere") is False
    msgspec.json.encode(doc)  # serialisable as it is served
