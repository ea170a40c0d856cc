"""The templates agent under test_context(): a template record is stored in the GlobalTable
(newer versions only), a bad one is dead-lettered; ``submit`` (and ``checked_template``, what an
API route calls before it publishes one) checks and compiles before it produces."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from agents.templating import checked_template, submit
from app import Pipeline
from streams.records import InvalidRecord
from tables import templates
from tests.functional.conftest import sent


def template(version: int, body: str = "Hi {{ name }}", **extra: Any) -> bytes:
    return orjson.dumps(
        {"template_id": "hello", "version": version,
         "locales": {"en": {"push": {"title": "t", "body": body}}}, **extra}
    )  # fmt: skip


async def put(pipeline: Pipeline, *records: bytes) -> None:
    async with pipeline.agents["templates"].test_context() as agent:
        for raw in records:
            await agent.put(raw, key=b"hello")


async def test_only_newer_versions_are_stored_and_bad_ones_are_dead_lettered(
    pipeline: Pipeline,
) -> None:
    await put(pipeline, template(2), template(1, body="old"), template(3, body="{{ oops"))
    stored = templates.stored(pipeline.tables.templates, "hello")
    assert stored is not None and stored.version == 2
    [dead] = sent(pipeline.topics.templates_dlq)
    reason = dict(dead.headers)["x-dlq-reason"].decode()
    assert reason.startswith("template 'hello' (en push.body, line 1):"), reason
    await put(pipeline, b'{"template_id": "hello", "version": 4, "action": "delete"}')
    stored = templates.stored(pipeline.tables.templates, "hello")
    assert stored is not None and stored.deleted
    assert templates.CompiledTemplates(pipeline.tables.templates).get("hello") is None


async def test_submit_checks_and_compiles_before_it_produces(pipeline: Pipeline) -> None:
    stored = await submit(pipeline.topics, template(1))
    assert stored.version == 1
    [record] = sent(pipeline.topics.templates)
    assert (record.key, record.value) == (b"hello", template(1))
    with pytest.raises(InvalidRecord, match="unexpected end of template"):
        await submit(pipeline.topics, template(2, body="{{ oops"))
    assert len(sent(pipeline.topics.templates)) == 1


def test_a_deletion_is_checked_with_nothing_to_compile() -> None:
    deletion = b'{"template_id": "hello", "version": 2, "action": "delete"}'
    assert checked_template(deletion).deleted
    with pytest.raises(InvalidRecord, match="unexpected end of template"):
        checked_template(template(2, body="{{ oops"))
