"""``/v1/templates/{template_id}``: upsert, read and delete templates.

An upsert is checked and compiled here (``agents.templating.checked_template``), so a template that
would not render is refused with its reason instead of reaching every worker; it then goes
to the compacted ``templates`` topic that every worker reads whole.
"""

from __future__ import annotations

import faust
import msgspec
from faust.web import Request, Response, View

from agents import templating
from api.body import checked_record, read_object
from api.context import ApiContext, reply
from api.errors import ApiError, not_found
from api.guard import operation
from api.keys import Scope
from api.schemas import TemplateAccepted, TemplateBody
from streams.templates import Template, TemplateAction, TemplateFields
from tables import templates


def _accepted(template: Template) -> Response:
    return reply(TemplateAccepted(template_id=template.template_id, version=template.version), 202)


def register(app: faust.App, ctx: ApiContext) -> None:
    path = "/v1/templates/{template_id}"

    async def submit(obj: dict[str, object]) -> Template:
        raw, template = checked_record(obj, TemplateFields, templating.checked_template, "template")
        await templating.publish(ctx.topics, template, raw)
        return template

    @app.page(path)
    class TemplateView(View):
        @operation(ctx, "GET", path, Scope.READ, summary="A template as this worker holds it",
                   responses={200: Template, 404: None}, tag="templates")  # fmt: skip
        async def get(self, request: Request, template_id: str) -> Response:
            # Every worker holds every template (a GlobalTable): no routing.
            found = templates.stored(ctx.tables.templates, template_id)
            if found is None:
                raise not_found(f"no template {template_id!r}")
            return self.json(msgspec.to_builtins(found))

        @operation(ctx, "PUT", path, Scope.SEND, summary="Create or replace a template version",
                   body=TemplateBody, responses={202: TemplateAccepted},
                   tag="templates")  # fmt: skip
        async def put(self, request: Request, template_id: str) -> Response:
            obj = await read_object(request)
            if obj.get("template_id") not in (None, template_id):
                raise ApiError(400, "invalid_request", "the body's template_id is not the path's")
            obj["template_id"] = template_id
            obj.setdefault("action", TemplateAction.UPSERT.value)
            return _accepted(await submit(obj))

        @operation(ctx, "DELETE", path, Scope.SEND, summary="Delete a template (give its version)",
                   responses={202: TemplateAccepted}, tag="templates")  # fmt: skip
        async def delete(self, request: Request, template_id: str) -> Response:
            version = request.query.get("version", "")
            if not version.isdigit():
                raise ApiError(400, "invalid_request", "?version=<the deleted version> is required")
            obj = {"template_id": template_id, "version": int(version), "action": "delete"}
            return _accepted(await submit(obj))
