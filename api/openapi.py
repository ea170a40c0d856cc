"""The API's OpenAPI 3.1 document, built from the operations as they are declared.

Every route declares its body and response types (msgspec Structs, the very types the handler
decodes and encodes) through ``guard.operation``; the schemas come from
``msgspec.json.schema_components``, so the document cannot drift from what the handlers do.
msgspec writes JSON Schema 2020-12, the dialect of OpenAPI 3.1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import msgspec

from api.errors import ErrorBody
from api.keys import Scope

REF_TEMPLATE = "#/components/schemas/{name}"
_PARAM = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)}")
# Answered by the guard for any operation, whatever the handler does.
GUARD_RESPONSES = {401: "no valid API key", 403: "the key lacks the scope", 429: "key rate limit"}


@dataclass(frozen=True)
class Operation:
    method: str  # GET, POST, ...
    path: str  # an aiohttp template: /v1/users/{user_id}
    scope: Scope | None  # None: no key (signed links, health)
    summary: str
    body: type | None = None
    responses: dict[int, type | None] = field(default_factory=dict)
    tag: str = ""


class ApiSpec:
    """The declared operations: the guard reads their scopes, ``/openapi.json`` their types."""

    def __init__(self, title: str, version: str) -> None:
        self.title = title
        self.version = version
        self.operations: dict[tuple[str, str], Operation] = {}

    def add(self, operation: Operation) -> None:
        key = (operation.method, operation.path)
        if key in self.operations:
            raise ValueError(f"{operation.method} {operation.path} declared twice")
        self.operations[key] = operation

    def scope_of(self, method: str, path: str) -> Scope | bool | None:
        """The declared scope; False when the route is not an API operation."""
        found = self.operations.get((method, path))
        return False if found is None else found.scope

    def document(self) -> dict[str, Any]:
        types: list[Any] = [ErrorBody]
        for op in self.operations.values():
            types += [t for t in (op.body, *op.responses.values()) if t is not None]
        unique = list(dict.fromkeys(types))
        refs, components = msgspec.json.schema_components(unique, ref_template=REF_TEMPLATE)
        ref_of = dict(zip(unique, refs, strict=True))
        paths: dict[str, dict[str, Any]] = {}
        for op in sorted(self.operations.values(), key=lambda o: (o.path, o.method)):
            paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, ref_of)
        return {
            "openapi": "3.1.0",
            "info": {"title": self.title, "version": self.version},
            "paths": paths,
            "components": {
                "schemas": components,
                "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
            },
        }


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _operation(op: Operation, ref_of: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    error = ref_of[ErrorBody]
    responses: dict[str, Any] = {}
    for status, body in op.responses.items():
        described: dict[str, Any] = {"description": _reason(status)}
        if body is not None:
            described |= _json(ref_of[body])
        elif status >= 400:
            described |= _json(error)
        responses[str(status)] = described
    if op.body is not None or _PARAM.search(op.path):
        responses.setdefault("400", {"description": "invalid body or path"} | _json(error))
    if op.scope is not None:
        for status, why in GUARD_RESPONSES.items():
            responses.setdefault(str(status), {"description": why} | _json(error))
    out: dict[str, Any] = {
        "operationId": _operation_id(op),
        "summary": op.summary,
        "responses": responses,
        "parameters": [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PARAM.findall(op.path)
        ],
    }
    if op.tag:
        out["tags"] = [op.tag]
    if op.body is not None:
        out["requestBody"] = {"required": True} | _json(ref_of[op.body])
    out["security"] = [] if op.scope is None else [{"apiKey": []}]
    return out


def _operation_id(op: Operation) -> str:
    words = re.sub(r"[^A-Za-z0-9]+", "_", op.path.replace("{", "by_").replace("}", ""))
    return f"{op.method.lower()}{words.rstrip('_')}"


def _reason(status: int) -> str:
    return {
        200: "OK",
        202: "accepted: written to the broker, applied by the pipeline",
        204: "done",
        207: "a result per item",
        404: "not found",
        409: "conflict",
    }.get(status, "see the body")
