"""Templates: the agent that upserts them into the GlobalTable, the intake's render step, and
``submit`` (an upsert from code; an API route checks and publishes in two steps).

A request naming a ``template_id`` is rendered on the user's partition, after the resolve
decision (a duplicate or a muted category costs no rendering), for the channels it may go on,
in the request's ``locale`` or else the user's ``locale`` attribute. Variables are the
request's ``data`` and the user's attributes as ``user``; a variable missing from both, an
unknown template, or a part that fails to render rejects the notification with
``template_error: <template, locale, part and cause>``.
"""

from __future__ import annotations

import logging

import faust
import msgspec

from agents import produce, safe
from agents.supervision import supervised_agent
from config.settings import Settings
from config.vocabulary import Channel, RejectReason
from streams.campaigns import LOCALE_ATTRIBUTE
from streams.faust_types import Agent, Event, Stream
from streams.records import InvalidRecord, NotificationRequest
from streams.rendering import RenderError, compile_template
from streams.templates import Template, parse_template
from streams.topics import Topics
from tables import Tables, templates, user_attributes

log = logging.getLogger(__name__)


def rejection(error: RenderError) -> str:
    return f"{RejectReason.TEMPLATE_ERROR}: {error}"


class Templating:
    """The intake's render step (one per worker: it keeps the compiled templates)."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables
        self.compiled = templates.CompiledTemplates(tables.templates)

    def render(
        self, request: NotificationRequest, channels: tuple[str, ...]
    ) -> tuple[NotificationRequest, tuple[str, ...]]:
        """The request with each channel's part rendered, and the channels it can go on (a
        channel without a part, not even push, needs inline text). Raises RenderError."""
        template_id = request.template_id or ""
        compiled = self.compiled.get(template_id)
        if compiled is None:
            raise RenderError(f"unknown template {template_id!r}")
        attributes = user_attributes.get(self.tables.user_attributes, request.user_id)
        wanted = request.locale or attributes.get(LOCALE_ATTRIBUTE)
        locale = wanted if isinstance(wanted, str) else None
        variables = {"user": attributes, **request.data}
        content = compiled.render(channels, locale, variables)
        inline = bool(request.title or request.body)
        kept = tuple(c for c in channels if c in content or inline)
        if not kept:
            raise RenderError(
                f"template {template_id!r} has no part for {', '.join(channels)} "
                "and the request no inline title/body"
            )
        # The notification's own title and body (status views, a fallback to a channel the
        # template has no part for): the inline text, else the push part, else the first.
        first = content.get(Channel.PUSH) or next(iter(content.values()), None)
        title = request.title or (first.title if first else "")
        body = request.body or (first.body if first else "")
        return msgspec.structs.replace(
            request, content=content, title=title, body=body, locale=locale
        ), kept


def checked_template(raw: bytes) -> Template:
    """A template record read and, unless it deletes, compiled: what an API route checks
    before it ``publish``es one. Raises InvalidRecord with the reason."""
    template = parse_template(raw)
    if not template.deleted:
        try:
            compile_template(template)
        except RenderError as exc:
            raise InvalidRecord(str(exc)) from None
    return template


async def publish(topics: Topics, template: Template, raw: bytes) -> None:
    """A checked template's record (``raw``) to ``templates``, key = its template_id."""
    await produce.send_and_wait(topics.templates, template.template_id.encode(), raw)


async def submit(topics: Topics, raw: bytes) -> Template:
    """Check and compile a template record, then produce it to ``templates``: an upsert from
    code (README, Templates). Raises InvalidRecord with the reason."""
    template = checked_template(raw)
    await publish(topics, template, raw)
    return template


def register(app: faust.App, settings: Settings, topics: Topics, tables: Tables) -> Agent:
    async def apply(event: Event) -> None:
        template = parse_template(event.message.value)
        if templates.upsert(tables.templates, template):
            log.info(
                "template %s version %d %s",
                template.template_id,
                template.version,
                "deleted" if template.deleted else "stored",
            )

    async def apply_templates(stream: Stream) -> None:
        async for event in stream.events():
            await safe.handle_safely(event, apply, topics.templates_dlq, "apply_templates")

    return supervised_agent(app, topics.templates, "apply_templates")(apply_templates)
