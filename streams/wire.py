"""Reading a record off the wire: bytes -> a JSON object -> typed fields, or InvalidRecord.

Every consumed topic can carry anything a producer (or a bug) writes: binary garbage, a
tombstone, a megabyte, JSON nested 100,000 deep, a list, a string where a number belongs. Each
of those must become one readable reason for a dead-letter topic here, at the boundary, never
a ``TypeError`` or ``RecursionError`` deep in an agent.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

import orjson

# Internal records (deliveries with their error history, delivery events) stay far below this;
# anything larger is not one of ours. Public requests have their own, tighter limit
# (streams/records.py). Checked before parsing, so a huge record costs no JSON decoding.
MAX_RECORD_BYTES = 256 * 1024


class InvalidRecord(ValueError):
    """A record that can never be processed; the message is the dead-letter reason."""


def decode_json_object(
    raw: bytes | str | None, max_bytes: int = MAX_RECORD_BYTES
) -> dict[str, Any]:
    """orjson refuses invalid UTF-8, lone surrogates, NaN/Infinity, integers beyond 64 bits and
    nesting deeper than 1024 (as a ``JSONDecodeError``, not a ``RecursionError``), so what it
    returns is safe to walk and to encode again."""
    if raw is None or raw == b"" or raw == "":
        raise InvalidRecord("empty message")
    if not isinstance(raw, (bytes, bytearray, memoryview, str)):
        # A topic read with a serializer other than raw would hand over decoded objects.
        raise InvalidRecord(f"not a byte string: {type(raw).__name__}")
    if len(raw) > max_bytes:
        raise InvalidRecord(f"record is {len(raw)} bytes, larger than the {max_bytes}-byte limit")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRecord(f"malformed JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidRecord(f"expected a JSON object, got {type(value).__name__}")
    return value


# --------------------------------------------------------------------------- typed fields

Check = Callable[[Any], bool]


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_bool(value: Any) -> bool:
    return value is True or value is False


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_SCALARS: dict[Any, tuple[Check, str]] = {
    str: (_is_str, "a string"),
    bool: (_is_bool, "true or false"),
    int: (_is_int, "an integer"),
    float: (_is_number, "a number"),
}


def _check_for(annotation: Any) -> tuple[Check, str]:
    """A predicate and its description for one dataclass annotation. Raises TypeError at import
    time for an annotation it does not know, so a new field cannot go unchecked silently."""
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        [inner] = [a for a in args if a is not type(None)]
        check, name = _check_for(inner)
        return (lambda v: v is None or check(v)), f"{name} or null"
    if origin in (dict, Mapping) and args[0] is str:
        if args[1] is Any:
            return (lambda v: isinstance(v, dict) and all(map(_is_str, v))), "an object"
        value_check, value_name = _check_for(args[1])
        return (
            lambda v: (
                isinstance(v, dict) and all(map(_is_str, v)) and all(map(value_check, v.values()))
            )
        ), f"an object whose values are each {value_name}"
    if origin is list:
        item_check, item_name = _check_for(args[0])
        return (
            lambda v: isinstance(v, list) and all(map(item_check, v))
        ), f"a list whose items are each {item_name}"
    raise TypeError(f"no wire check for {annotation!r}")


class FieldChecks:
    """The JSON shape of a frozen dataclass record, derived from its annotations."""

    def __init__(self, cls: type) -> None:
        self.name = cls.__name__
        hints = typing.get_type_hints(cls)
        fields = dataclasses.fields(cls)
        self.checks = {f.name: _check_for(hints[f.name]) for f in fields}
        missing = dataclasses.MISSING
        self.required = frozenset(
            f.name for f in fields if f.default is missing and f.default_factory is missing
        )

    def check(self, obj: Mapping[str, Any]) -> None:
        missing = self.required.difference(obj)
        if missing:
            raise InvalidRecord(f"not a {self.name}: missing {', '.join(sorted(missing))}")
        for key, value in obj.items():
            entry = self.checks.get(key)
            if entry is None:
                raise InvalidRecord(f"not a {self.name}: unknown field {quoted(key)}")
            check, expected = entry
            if not check(value):
                raise InvalidRecord(f"'{key}' must be {expected}, got {type(value).__name__}")


def quoted(value: Any, limit: int = 80) -> str:
    """``repr`` for a reason: reasons quote what was wrong, but a 60 KB string must not become
    a 60 KB reason header."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."
