"""Reading a record off the wire: bytes -> a typed record, or InvalidRecord.

Every consumed topic can carry anything a producer (or a bug) writes: binary garbage, a
tombstone, a megabyte, JSON nested 100,000 deep, a list, a string where a number belongs. Each
of those must become one readable reason for a dead-letter topic here, at the boundary, never
a ``TypeError`` or ``RecursionError`` deep in an agent.

Records are ``msgspec.Struct`` types decoded by ``msgspec.json.Decoder(Type)``: one pass over the
bytes that parses, checks every field's type (and the constraints its annotation carries) and
builds the record, with no intermediate dict. Its ``ValidationError`` names the field
(``Expected `str`, got `int` - at `$.user_id```), which becomes the dead-letter reason.

Why msgspec, measured (100,000 typical records, median of 5 runs, µs per record, on the 2-core
dev machine beside a running benchmark; the script decodes the same bytes with the previous
orjson + hand-written checks, ``git show issue10:streams/``): a request 6.53 -> 3.29 (of which
the decode is 0.89; the rest is rendering and building the record), a delivery 8.67 -> 1.21,
where pydantic 2 (a strict model of the same shape, ``model_validate_json``) takes 3.52;
encoding a delivery 19.32 (``dataclasses.asdict`` + orjson) -> 0.42.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Generic, TypeVar

import msgspec
import orjson

from config.errors import NotifyError

# Internal records (deliveries with their error history, delivery events) stay far below this;
# anything larger is not one of ours. Public requests have their own, tighter limit
# (streams/records.py). Checked before parsing, so a huge record costs no JSON decoding.
MAX_RECORD_BYTES = 256 * 1024

Raw = bytes | bytearray | memoryview | str | None
# 64-bit integers, as orjson (the tables' serializer, and the old decoder) takes them: a larger
# one decodes fine in msgspec but could not be stored or produced again.
JsonInt = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


class InvalidRecord(NotifyError, ValueError):
    """A record that can never be processed; the message is the dead-letter reason."""


def check_raw(raw: object, max_bytes: int) -> None:
    """What is refused before any decoding: a tombstone, an empty value, a decoded object (a
    topic read with another serializer than raw), a record over ``max_bytes``."""
    if raw is None or raw == b"" or raw == "":
        raise InvalidRecord("empty message")
    if not isinstance(raw, (bytes, bytearray, memoryview, str)):
        raise InvalidRecord(f"not a byte string: {type(raw).__name__}")
    if len(raw) > max_bytes:
        raise InvalidRecord(f"record is {len(raw)} bytes, larger than the {max_bytes}-byte limit")


def decode_json_object(raw: Raw, max_bytes: int = MAX_RECORD_BYTES) -> dict[str, Any]:
    """An untyped JSON object, for the few readers that take any shape (orjson refuses invalid
    UTF-8, lone surrogates, NaN/Infinity, integers beyond 64 bits and nesting deeper than 1024,
    so what it returns is safe to walk and to encode again)."""
    check_raw(raw, max_bytes)
    try:
        value = orjson.loads(raw)  # type: ignore[arg-type]  # check_raw: not None
    except orjson.JSONDecodeError as exc:
        raise InvalidRecord(f"malformed JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidRecord(f"expected a JSON object, got {type(value).__name__}")
    return value


T = TypeVar("T", bound=msgspec.Struct)


def missing_fields(record: str, missing: list[str]) -> str:
    """The reason for a record without some of its required fields (in declaration order)."""
    return f"not a {record}: missing {', '.join(sorted(missing))}"


class RecordDecoder(Generic[T]):
    """Decodes one record type from JSON bytes; raises InvalidRecord with the reason.

    msgspec refuses invalid UTF-8, lone surrogates (which could not be encoded again as a key,
    a header or a provider payload), NaN/Infinity, out-of-range numbers and trailing garbage;
    integer fields are bounded to 64 bits (``JsonInt``) like everything orjson writes."""

    def __init__(
        self,
        record_type: type[T],
        max_bytes: int = MAX_RECORD_BYTES,
        name: str = "",
        missing: Callable[[str, list[str]], str] = missing_fields,
    ) -> None:
        self.name = name or record_type.__name__  # the record's name in reasons
        self.max_bytes = max_bytes
        self._decoder = msgspec.json.Decoder(record_type)
        self._required = tuple(
            f.encode_name for f in msgspec.structs.fields(record_type) if f.required
        )
        self._missing = missing

    def decode(self, raw: Raw) -> T:
        check_raw(raw, self.max_bytes)
        try:
            return self._decoder.decode(raw)  # type: ignore[arg-type]  # check_raw: not None
        except msgspec.ValidationError as exc:
            raise InvalidRecord(self._reason(str(exc), raw)) from None
        except msgspec.DecodeError as exc:
            raise InvalidRecord(f"malformed JSON: {_malformed(str(exc))}") from None
        except UnicodeError:  # invalid UTF-8 inside a string (msgspec lets Python decode it)
            raise InvalidRecord("malformed JSON: invalid UTF-8 in a string") from None
        except RecursionError:
            # msgspec guards its recursion with the interpreter's limit (a skipped unknown
            # field nested deeper than that): refused like any other malformed record.
            raise InvalidRecord("malformed JSON: nested too deeply") from None

    def _reason(self, message: str, raw: Raw) -> str:
        """msgspec's message when it names a field (bounded: it quotes names and values, which
        may be huge). About the record as a whole (not an object, required fields missing),
        a second parse on this cold path says which in the words these reasons always used,
        and names every missing field where msgspec stops at the first."""
        if " - at `" in message:
            return _bounded(message)
        try:
            obj = decode_json_object(raw, self.max_bytes)
        except InvalidRecord as exc:
            return str(exc)
        missing = [name for name in self._required if name not in obj]
        return self._missing(self.name, missing) if missing else _bounded(message)


def _malformed(message: str) -> str:
    return _bounded(message.removeprefix("JSON is malformed: "))


_LONG_QUOTE = re.compile(r"(`|')([^`']{80})[^`']{4,}(`|')")


def _bounded(message: str, limit: int = 240) -> str:
    """Reasons quote what was wrong, but a 10,000-character field name or value must not
    become a 10,000-character reason header: each quoted part is cut to 80 characters."""
    if len(message) <= limit:
        return message
    message = _LONG_QUOTE.sub(r"\1\2...\3", message)
    return message if len(message) <= limit else f"{message[:limit]}..."


def quoted(value: Any, limit: int = 80) -> str:
    """``repr`` for a reason: reasons quote what was wrong, but a 60 KB string must not become
    a 60 KB reason header."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."
