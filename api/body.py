"""Request bodies: decoded into the route's msgspec Struct, every bad field reported at once.

msgspec stops at the first error, which is right for a topic (one reason per dead letter) but
unfriendly for an API caller fixing a request: here each field is converted on its own, so a
400 lists them all. The struct itself is then built by msgspec as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import msgspec
import orjson
from faust.web import Request

from api.errors import ApiError, FieldError
from streams.wire import InvalidRecord, decode_json_object

T = TypeVar("T")
R = TypeVar("R")  # what a topic's parser makes of a record
MAX_BODY_BYTES = 8 * 1024 * 1024  # a bulk of 1,000 requests; aiohttp answers 413 beyond


def field_errors(obj: Mapping[str, Any], record_type: type[Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    for f in msgspec.structs.fields(record_type):
        if f.encode_name not in obj:
            if f.required:
                errors.append(FieldError(f.encode_name, "required"))
            continue
        try:
            msgspec.convert(obj[f.encode_name], f.type)
        except msgspec.ValidationError as exc:
            message, _, at = str(exc).partition(" - at `$")
            errors.append(FieldError(f.encode_name + at.rstrip("`"), message[:240]))
    return errors


def check_fields(obj: Mapping[str, Any], record_type: type[Any], what: str = "request") -> None:
    """Raises a 400 listing every bad field of ``obj`` as ``record_type``, if there is one."""
    errors = field_errors(obj, record_type)
    if errors:
        raise ApiError(400, "invalid_request", f"the {what} has invalid fields", errors)


def decode_object(raw: bytes, what: str = "request body") -> dict[str, Any]:
    try:
        return decode_json_object(raw, MAX_BODY_BYTES)
    except InvalidRecord as exc:
        raise ApiError(400, "invalid_request", f"{what}: {exc}") from None


def convert(obj: Mapping[str, Any], record_type: type[T]) -> T:
    check_fields(obj, record_type)
    try:
        return msgspec.convert(obj, record_type)
    except msgspec.ValidationError as exc:  # what no single field shows
        raise ApiError(400, "invalid_request", str(exc)[:240]) from None


async def read_body(request: Request, record_type: type[T]) -> T:
    return convert(decode_object(await request.read()), record_type)


async def read_object(request: Request) -> dict[str, Any]:
    """The JSON object of the body, for a handler that completes it before converting."""
    return decode_object(await request.read())


def checked_record(
    obj: Mapping[str, Any], body: type[Any], parse: Callable[[bytes], R], what: str = "request"
) -> tuple[bytes, R]:
    """``obj`` as the record its topic will carry: checked as the route's ``body`` (every bad
    field in one 400), then by the topic's own parser, so what its agent would refuse is
    refused here, with the parser's reason. The bytes to produce, and what the parser made of
    them."""
    check_fields(obj, body, what)
    raw = orjson.dumps(obj)
    try:
        return raw, parse(raw)
    except InvalidRecord as exc:
        raise invalid_record(exc) from None


def invalid_record(exc: InvalidRecord) -> ApiError:
    """The topic path's own check (streams/records.py) refused it: its reason names the field
    it is about when it is about one (``'title' is required ...``)."""
    reason = str(exc)
    field = reason.split("'")[1] if reason.startswith("'") and reason.count("'") >= 2 else ""
    details = [FieldError(field, reason)] if field else []
    return ApiError(400, "invalid_request", reason, details)
