"""Rendering a template's parts with Jinja2's sandbox: per channel, in the user's locale.

``ImmutableSandboxedEnvironment``: a template cannot reach Python internals
(``{{ x.__class__ }}`` is refused), call mutating methods, or make a range over 100,000 items;
``StrictUndefined``: a variable the request does not carry is an error naming it, never an
empty string in a customer's inbox. HTML parts are rendered with autoescape on (a ``data``
value is text, so ``<`` in it must reach the mail as ``&lt;``); every other part with it off
(a push title is not HTML). Output is counted while it is generated and refused past
``limit`` characters, so a loop cannot build a gigabyte string.

Templates are compiled once per (template, version): ``compile_template`` at upsert (where a
syntax error becomes the record's dead-letter reason) and again, cached, by each worker.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from config.vocabulary import Channel
from streams.records import RenderedPart
from streams.templates import LocaleParts, Template, locale_chain

MAX_RENDERED_TEXT = 16_000  # as a request's rendered title or body (streams/records.py)
MAX_RENDERED_HTML = 200_000

_TEXT_ENV = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
_HTML_ENV = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=True)


class RenderError(Exception):
    """The message is the rejection reason: it names the template, the part and the cause."""


# (channel, field of the part, field of the RenderedPart, is HTML)
_FIELDS: Mapping[str, tuple[tuple[str, str, bool], ...]] = {
    Channel.PUSH: (("title", "title", False), ("body", "body", False)),
    Channel.WEBHOOK: (("title", "title", False), ("body", "body", False)),
    Channel.IN_APP: (("title", "title", False), ("body", "body", False)),
    Channel.EMAIL: (("subject", "title", False), ("text", "body", False), ("html", "html", True)),
    Channel.SMS: (("text", "body", False),),
}


class CompiledTemplate:
    """A template with every part compiled; ``render`` picks each channel's part."""

    def __init__(self, template: Template) -> None:
        self.template = template
        # A part without any Jinja syntax is kept as its text: each Jinja render starts with
        # a new context (~4.4 µs, bench/render.py), which a constant does not need.
        self._compiled: dict[tuple[str, str, str], jinja2.Template | str] = {}
        for tag, parts in template.locales.items():
            for channel, fields in _FIELDS.items():
                part = getattr(parts, channel)
                if part is None:
                    continue
                for source_field, _, is_html in fields:
                    source = getattr(part, source_field)
                    if source is None:
                        continue
                    env = _HTML_ENV if is_html else _TEXT_ENV
                    if not any(mark in source for mark in ("{{", "{%", "{#")):
                        self._compiled[(tag, channel, source_field)] = source
                        continue
                    try:
                        compiled = env.from_string(source)
                    except jinja2.TemplateSyntaxError as exc:
                        raise RenderError(
                            f"template {template.template_id!r} ({tag} {channel}.{source_field}"
                            f", line {exc.lineno}): {exc.message}"
                        ) from None
                    self._compiled[(tag, channel, source_field)] = compiled

    def part_for(self, channel: str, locale: str | None) -> tuple[str, str] | None:
        """(locale, channel whose part is used): the first locale of the chain with the
        channel's own part, else the first with a push part; None when neither exists."""
        chain = locale_chain(locale, self.template.default_locale)
        for wanted in (channel, Channel.PUSH):
            for tag in chain:
                parts: LocaleParts | None = self.template.locales.get(tag)
                if parts is not None and getattr(parts, wanted) is not None:
                    return tag, wanted
        return None

    def render(
        self, channels: tuple[str, ...], locale: str | None, variables: Mapping[str, Any]
    ) -> dict[str, RenderedPart]:
        """Each channel's rendered part; a channel without a part (not even push) is left
        out. Raises RenderError naming the template, locale, part and variable."""
        rendered: dict[str, RenderedPart] = {}
        # Channels sharing a part (webhook and in-app falling back to push) render it once.
        done: dict[tuple[str, str], RenderedPart] = {}
        for channel in channels:
            found = self.part_for(channel, locale)
            if found is None:
                continue
            if found in done:
                rendered[channel] = done[found]
                continue
            tag, source_channel = found
            values: dict[str, str | None] = {"title": "", "body": "", "html": None}
            for source_field, target, is_html in _FIELDS[source_channel]:
                compiled = self._compiled.get((tag, source_channel, source_field))
                if compiled is None:
                    continue
                if isinstance(compiled, str):
                    values[target] = compiled
                    continue
                limit = MAX_RENDERED_HTML if is_html else MAX_RENDERED_TEXT
                values[target] = self._generate(
                    compiled, variables, limit, tag, source_channel, source_field
                )
            if (
                source_channel == Channel.EMAIL
                and values["html"] is not None
                and not values["body"]
            ):
                values["body"] = html_to_text(values["html"])  # the text alternative
            rendered[channel] = done[found] = RenderedPart(
                title=values["title"] or "", body=values["body"] or "", html=values["html"]
            )
        return rendered

    def _generate(
        self,
        compiled: jinja2.Template,
        variables: Mapping[str, Any],
        limit: int,
        tag: str,
        channel: str,
        field: str,
    ) -> str:
        where = f"template {self.template.template_id!r} ({tag} {channel}.{field})"
        chunks: list[str] = []
        size = 0
        try:
            for chunk in compiled.generate(variables):
                size += len(chunk)
                if size > limit:
                    raise RenderError(f"{where}: rendered text is longer than {limit} characters")
                chunks.append(chunk)
        except RenderError:
            raise
        except jinja2.UndefinedError as exc:
            raise RenderError(f"{where}: {exc.message}") from None
        except Exception as exc:  # a sandbox refusal, a filter's TypeError, a bad format...
            raise RenderError(f"{where}: {type(exc).__name__}: {exc}") from None
        return "".join(chunks)


def compile_template(template: Template) -> CompiledTemplate:
    return CompiledTemplate(template)


# The text alternative of an HTML body, by regular expressions: html.parser took 111 µs for
# a 1 KB mail body (bench/render.py), these about a tenth. Enough for a text/plain part of
# HTML our own templates produce: blocks become lines, links keep their address, script,
# style and head are dropped; the HTML part is what mail clients show.
_DROPPED = re.compile(r"<(script|style|head|title)\b[^>]*>.*?</\1\s*>", re.I | re.S)
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_LINK = re.compile(
    r"""<a\b[^>]*?\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))[^>]*>(.*?)</a\s*>""", re.I | re.S
)
_BLOCK = re.compile(
    r"</?(?:p|div|br|h[1-6]|li|tr|table|ul|ol|blockquote|hr|section|article)\b[^>]*>", re.I
)
_TAG = re.compile(r"<[^>]*>")
_BLANK_LINES = re.compile(r"\n\s*\n(\s*\n)+")
_SPACES = re.compile(r"[ \t\r\f\v]+")


def _link_text(match: re.Match[str]) -> str:
    href = match.group(1) or match.group(2) or match.group(3) or ""
    text = match.group(4)
    if not href or href.startswith(("mailto:", "#")):
        return text
    return f"{text} ({href})"


def html_to_text(markup: str) -> str:
    text = _COMMENT.sub("", _DROPPED.sub("", markup))
    text = _BLOCK.sub("\n", _LINK.sub(_link_text, text))
    text = _SPACES.sub(" ", html.unescape(_TAG.sub("", text)))
    lines = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", lines).strip()
