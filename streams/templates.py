"""Template records (the compacted ``templates`` topic, key = ``template_id``).

A template has per-channel parts in one or more locales. A request names it by
``template_id``; the user's ``locale`` attribute (or the request's ``locale``) picks the parts,
falling back ``pt-BR`` -> ``pt`` -> the template's ``default_locale``, channel by channel. A
channel a locale has no part for takes the ``push`` part (title and body), so one push part is
enough for a template sent everywhere.

Versioned: a record whose ``version`` is not above the stored one is ignored (a copy read
again, or a writer that lost a race), so upserts may be retried and the topic replayed. The
record is checked here and every part compiled (streams/rendering.py) before it is stored: a
syntax error is a dead letter with its reason, never a template that fails on every request.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import msgspec
from msgspec import Meta

from config.vocabulary import Channel
from streams.records import InvalidRecord
from streams.wire import NonNegativeInt, Raw, RecordDecoder

SCHEMA_VERSION = 1
TemplateId = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")]
# BCP 47 as products use it: a language, then optional region/script subtags ("pt-BR",
# "zh-Hant-TW"); "_" is accepted and read as "-" (the POSIX spelling, "pt_BR").
LocaleTag = Annotated[
    str, Meta(min_length=2, max_length=35, pattern=r"^[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})*$")
]
ShortText = Annotated[str, Meta(max_length=4000)]
# An HTML mail body: far larger than a push text, still bounded (a delivery record carries it,
# and internal records stay under streams.wire.MAX_RECORD_BYTES).
HtmlText = Annotated[str, Meta(max_length=100_000)]
MAX_LOCALES = 100


class TemplateAction(StrEnum):
    UPSERT = "upsert"
    DELETE = "delete"


class TitleBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A push or in-app (or webhook) part."""

    body: ShortText
    title: ShortText = ""


class EmailPart(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Subject and an HTML body, a text body, or both; without ``text`` the text alternative
    is made from the HTML (streams/rendering.py)."""

    subject: ShortText
    html: HtmlText | None = None
    text: HtmlText | None = None


class SmsPart(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    text: ShortText


class LocaleParts(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    push: TitleBody | None = None
    email: EmailPart | None = None
    sms: SmsPart | None = None
    webhook: TitleBody | None = None
    in_app: TitleBody | None = None


class TemplateFields(msgspec.Struct, frozen=True):
    """A template as producers (and the API) write it (README, "Templates")."""

    template_id: TemplateId
    version: NonNegativeInt
    action: TemplateAction = TemplateAction.UPSERT
    schema_version: int = SCHEMA_VERSION
    default_locale: LocaleTag | None = None
    locales: dict[LocaleTag, LocaleParts] | None = None


class Template(msgspec.Struct, frozen=True, omit_defaults=True):
    """A validated template as the table stores it (locale tags normalised)."""

    template_id: str
    version: int
    default_locale: str
    locales: dict[str, LocaleParts]
    deleted: bool = False


_TEMPLATE = RecordDecoder(TemplateFields, name="template")
_STORED = msgspec.json.Decoder(Template)
_ENCODER = msgspec.json.Encoder()


def normalise_locale(tag: str) -> str:
    """``pt_br`` -> ``pt-BR``, ``ZH-hant-tw`` -> ``zh-Hant-TW`` (BCP 47's usual casing)."""
    parts = tag.replace("_", "-").split("-")
    out = [parts[0].lower()]
    for part in parts[1:]:
        if len(part) == 2 and part.isalpha():
            out.append(part.upper())  # a region
        elif len(part) == 4 and part.isalpha():
            out.append(part.title())  # a script
        else:
            out.append(part.lower())
    return "-".join(out)


def locale_chain(locale: str | None, default_locale: str) -> list[str]:
    """Where to look, most specific first: ``pt-BR`` -> ``pt-BR``, ``pt``, the default."""
    chain: list[str] = []
    if locale:
        parts = normalise_locale(locale).split("-")
        chain = ["-".join(parts[:n]) for n in range(len(parts), 0, -1)]
    if default_locale not in chain:
        chain.append(default_locale)
    return chain


def parse_template(raw: Raw) -> Template:
    """A template record (upsert or delete); raises InvalidRecord with the reason."""
    wire = _TEMPLATE.decode(raw)
    if wire.schema_version != SCHEMA_VERSION:
        raise InvalidRecord(
            f"unsupported schema_version {wire.schema_version} (supported: {SCHEMA_VERSION})"
        )
    if wire.action is TemplateAction.DELETE:
        return Template(wire.template_id, wire.version, "", {}, deleted=True)
    if not wire.locales:
        raise InvalidRecord("'locales' is required to upsert a template")
    if len(wire.locales) > MAX_LOCALES:
        raise InvalidRecord(f"at most {MAX_LOCALES} locales per template")
    locales = {normalise_locale(tag): parts for tag, parts in wire.locales.items()}
    for tag, parts in locales.items():
        if all(getattr(parts, c) is None for c in Channel):
            raise InvalidRecord(f"locale {tag!r} has no part for any channel")
        if parts.email is not None and parts.email.html is None and parts.email.text is None:
            raise InvalidRecord(f"locale {tag!r}: the email part needs 'html' or 'text'")
    default = normalise_locale(wire.default_locale) if wire.default_locale else ""
    if not default:
        if len(locales) != 1:
            raise InvalidRecord("'default_locale' is required with more than one locale")
        default = next(iter(locales))
    if default not in locales:
        raise InvalidRecord(f"default_locale {default!r} is not one of the template's locales")
    return Template(wire.template_id, wire.version, default, locales)


def to_stored(template: Template) -> bytes:
    return _ENCODER.encode(template)


def from_stored(raw: bytes) -> Template:
    return _STORED.decode(raw)
