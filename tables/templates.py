"""Templates, held whole by every worker: a Faust GlobalTable fed from the ``templates`` topic.

Every worker resolves requests for its own users, and any of them may name any template, so
each worker needs every template (tables/held_whole.py: one partition, a buffer of one record).

Values are the stored template's JSON bytes; each worker keeps the compiled form of the
version it last read (a template is compiled once per version, not per request).
"""

from __future__ import annotations

from typing import TypeAlias

import faust
from faust.types import TableT

from config.settings import Settings
from streams.records import InvalidRecord
from streams.rendering import CompiledTemplate, RenderError, compile_template
from streams.templates import Template, from_stored, to_stored
from tables.held_whole import declare_held_whole

TemplatesTable: TypeAlias = TableT[str, bytes]  # template_id -> stored Template JSON


def declare(app: faust.App, settings: Settings) -> TemplatesTable:
    return declare_held_whole(
        app,
        "templates",
        "template_id -> {template_id, version, default_locale, locales}",
        key_type=bytes,
        value_type=bytes,
    )


def stored(table: TemplatesTable, template_id: str) -> Template | None:
    raw = table.get(template_id)
    return None if raw is None else from_stored(raw)


def stored_version(table: TemplatesTable, template_id: str) -> int | None:
    template = stored(table, template_id)
    return None if template is None else template.version


def upsert(table: TemplatesTable, template: Template) -> bool:
    """Store ``template`` (or its deletion) unless the table holds this version or a newer
    one; returns whether it was stored. Compiles it first: a syntax error raises
    InvalidRecord, so only templates that compile are ever stored."""
    current = stored_version(table, template.template_id)
    if current is not None and template.version <= current:
        return False
    if not template.deleted:
        try:
            compile_template(template)
        except RenderError as exc:
            raise InvalidRecord(str(exc)) from None
    table[template.template_id] = to_stored(template)
    return True


class CompiledTemplates:
    """Each worker's compiled templates, keyed by the stored bytes they were compiled from:
    a new version (a different value) is compiled on its first use."""

    def __init__(self, table: TemplatesTable) -> None:
        self.table = table
        self._cache: dict[str, tuple[bytes, CompiledTemplate | None]] = {}

    def get(self, template_id: str) -> CompiledTemplate | None:
        raw = self.table.get(template_id)
        if raw is None:
            return None
        cached = self._cache.get(template_id)
        if cached is not None and cached[0] == raw:
            return cached[1]
        template = from_stored(raw)
        compiled = None if template.deleted else compile_template(template)
        self._cache[template_id] = (raw, compiled)
        return compiled
