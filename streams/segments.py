"""The segment language of a campaign: a filter over a user's attributes, never ``eval``.

    country == "US" and plan == "premium"
    (age >= 18 and age < 65) or tier in ["gold", "platinum"]
    not (country in ["CU", "IR"]) and beta != true and referrer == null

Grammar (keywords lower case; ``#`` columns in error messages count from 1)::

    expr       := or
    or         := and ("or" and)*
    and        := unary ("and" unary)*
    unary      := "not" unary | primary
    primary    := "(" expr ")" | "true" | "false" | comparison
    comparison := NAME ("==" | "!=" | "<" | "<=" | ">" | ">=") literal
                | NAME ["not"] "in" "[" [literal ("," literal)*] "]"
    literal    := STRING | NUMBER | "true" | "false" | "null"

A NAME is an attribute (letters, digits, ``_``, ``-`` and ``.``, not starting with a digit);
a STRING is double- or single-quoted with backslash escapes (``\\"``, ``\\\\``, ``\\n``).

Values compare only with values of their own kind: a missing attribute is ``null``; ``==`` is
true only for the same kind and value (``1 == true`` is false, unlike Python); ``<`` and the
other orderings are true only between two numbers or two strings, and false otherwise, so a
user whose ``age`` is missing or a string is simply not in ``age >= 18``. Evaluation never
raises: user data is whatever producers wrote, and one odd record must not stop a campaign.

An expression is compiled once into nested closures (``compile_segment``); evaluating one for
a user is a few Python calls.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from config.errors import NotifyError

Value = str | int | float | bool | None
Attributes = Mapping[str, Value]
Predicate = Callable[[Attributes], bool]

MAX_SEGMENT_CHARS = 4000
MAX_DEPTH = 32  # nested parentheses and "not"s: the parser recurses on them
MAX_LIST = 1000


class SegmentError(NotifyError, ValueError):
    """The expression cannot be parsed; the message says what and where."""


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "name", "string", "number", "op", "punct", "end"
    text: str
    value: Value
    column: int


_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<number>-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
      | (?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>==|!=|<=|>=|<|>)
      | (?P<punct>[()\[\],])""",
    re.VERBOSE | re.DOTALL,
)
_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "t": "\t", "r": "\r"}


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise SegmentError(f"unexpected character {text[position]!r} at column {position + 1}")
        kind = match.lastgroup or ""
        raw = match.group()
        if kind == "number":
            number: int | float = float(raw) if any(c in raw for c in ".eE") else int(raw)
            tokens.append(Token("number", raw, number, position + 1))
        elif kind == "string":
            tokens.append(Token("string", raw, _unescape(raw, position + 1), position + 1))
        elif kind != "space":
            tokens.append(Token(kind, raw, None, position + 1))
        position = match.end()
    tokens.append(Token("end", "end of segment", None, len(text) + 1))
    return tokens


def _unescape(raw: str, column: int) -> str:
    out: list[str] = []
    chars = iter(raw[1:-1])
    for char in chars:
        if char != "\\":
            out.append(char)
            continue
        escaped = next(chars)  # the pattern guarantees a character after each backslash
        if escaped not in _ESCAPES:
            raise SegmentError(f"unknown escape '\\{escaped}' in the string at column {column}")
        out.append(_ESCAPES[escaped])
    return "".join(out)


def _same_kind(a: Value, b: Value) -> bool:
    """bool is not a number here, though Python makes it an int."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return True
    return type(a) is type(b)


def _equal(a: Value, b: Value) -> bool:
    return _same_kind(a, b) and a == b


def _orderable(a: Value, b: Value) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return False
    return _same_kind(a, b)


_ORDERINGS: dict[str, Callable[[Value, Value], bool]] = {
    "<": lambda a, b: a < b,  # type: ignore[operator]  # _orderable checked the kinds
    "<=": lambda a, b: a <= b,  # type: ignore[operator]
    ">": lambda a, b: a > b,  # type: ignore[operator]
    ">=": lambda a, b: a >= b,  # type: ignore[operator]
}


class _Parser:
    def __init__(self, tokens: Sequence[Token]) -> None:
        self.tokens = tokens
        self.index = 0
        self.depth = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def _is(self, kind: str, text: str | None = None) -> bool:
        token = self.current
        return token.kind == kind and (text is None or token.text == text)

    def _keyword(self, word: str) -> bool:
        return self._is("name", word)

    def _advance(self) -> Token:
        token = self.current
        self.index += 1
        return token

    def _fail(self, expected: str) -> SegmentError:
        token = self.current
        found = "the end of the segment" if token.kind == "end" else repr(token.text)
        return SegmentError(f"expected {expected} at column {token.column}, found {found}")

    def parse(self) -> Predicate:
        predicate = self._or()
        if not self._is("end"):
            raise self._fail("'and', 'or' or the end of the segment")
        return predicate

    def _or(self) -> Predicate:
        parts = [self._and()]
        while self._keyword("or"):
            self._advance()
            parts.append(self._and())
        if len(parts) == 1:
            return parts[0]
        return lambda attrs: any(part(attrs) for part in parts)

    def _and(self) -> Predicate:
        parts = [self._unary()]
        while self._keyword("and"):
            self._advance()
            parts.append(self._unary())
        if len(parts) == 1:
            return parts[0]
        return lambda attrs: all(part(attrs) for part in parts)

    def _nested(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise SegmentError(
                f"nested deeper than {MAX_DEPTH} levels at column {self.current.column}"
            )

    def _unary(self) -> Predicate:
        if self._keyword("not"):
            self._advance()
            self._nested()
            inner = self._unary()
            self.depth -= 1
            return lambda attrs: not inner(attrs)
        return self._primary()

    def _primary(self) -> Predicate:
        if self._is("punct", "("):
            self._advance()
            self._nested()
            inner = self._or()
            self.depth -= 1
            if not self._is("punct", ")"):
                raise self._fail("')'")
            self._advance()
            return inner
        if self._keyword("true") or self._keyword("false"):
            constant = self._advance().text == "true"
            return lambda attrs: constant
        token = self.current
        if token.kind != "name" or token.text in _KEYWORDS:
            raise self._fail("an attribute name, 'not', '(', 'true' or 'false'")
        self._advance()
        return self._comparison(token.text)

    def _comparison(self, name: str) -> Predicate:
        if self._is("op"):
            op = self._advance().text
            value = self._literal()
            if op == "==":
                return lambda attrs: _equal(attrs.get(name), value)
            if op == "!=":
                return lambda attrs: not _equal(attrs.get(name), value)
            compare = _ORDERINGS[op]
            if value is None or isinstance(value, bool):
                raise SegmentError(f"'{op}' needs a number or a string, not {_show(value)}")

            def ordered(attrs: Attributes) -> bool:
                found = attrs.get(name)
                return _orderable(found, value) and compare(found, value)

            return ordered
        negate = False
        if self._keyword("not"):
            self._advance()
            negate = True
            if not self._keyword("in"):
                raise self._fail("'in' after 'not'")
        if not self._keyword("in"):
            raise self._fail(f"an operator (==, !=, <, <=, >, >=, in) after '{name}'")
        self._advance()
        members = self._list()

        def member(attrs: Attributes) -> bool:
            found = attrs.get(name)
            return any(_equal(found, candidate) for candidate in members) != negate

        return member

    def _list(self) -> tuple[Value, ...]:
        if not self._is("punct", "["):
            raise self._fail("'[' to start a list")
        self._advance()
        values: list[Value] = []
        if self._is("punct", "]"):
            self._advance()
            return ()
        while True:
            values.append(self._literal())
            if len(values) > MAX_LIST:
                raise SegmentError(f"a list holds at most {MAX_LIST} values")
            if self._is("punct", ","):
                self._advance()
                continue
            if self._is("punct", "]"):
                self._advance()
                return tuple(values)
            raise self._fail("',' or ']'")

    def _literal(self) -> Value:
        token = self.current
        if token.kind in ("string", "number"):
            self._advance()
            return token.value
        if token.kind == "name" and token.text in ("true", "false", "null"):
            self._advance()
            return {"true": True, "false": False, "null": None}[token.text]
        raise self._fail("a value (a quoted string, a number, true, false or null)")


def _show(value: Value) -> str:
    return "null" if value is None else str(value).lower()


def compile_segment(text: str) -> Predicate:
    """The predicate ``text`` describes; raises SegmentError with a readable reason."""
    if len(text) > MAX_SEGMENT_CHARS:
        raise SegmentError(f"a segment is at most {MAX_SEGMENT_CHARS} characters")
    if not text.strip():
        raise SegmentError("the segment is empty (write 'true' to target every user)")
    return _Parser(tokenize(text)).parse()
