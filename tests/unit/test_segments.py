"""The segment language: what it matches, and what it refuses with which message."""

from __future__ import annotations

from typing import Any

import pytest

from streams.segments import MAX_DEPTH, SegmentError, compile_segment, tokenize

US_PREMIUM = {"country": "US", "plan": "premium", "age": 34, "beta": True}
DE_FREE = {"country": "DE", "plan": "free", "age": 17}


def matches(segment: str, attributes: dict[str, Any]) -> bool:
    return compile_segment(segment)(attributes)


@pytest.mark.parametrize(
    ("segment", "us", "de"),
    [
        ('country == "US" and plan == "premium"', True, False),
        ("country == 'US' or country == 'DE'", True, True),
        ('country != "US"', False, True),
        ("age >= 18", True, False),
        ("age < 18.5", False, True),
        ("age > 17 and age <= 34", True, False),
        ('country in ["US", "CA"]', True, False),
        ('country not in ["US", "CA"]', False, True),
        ("country in []", False, False),
        ('not country == "US"', False, True),
        ('not (country == "US" and plan == "premium")', False, True),
        ("beta == true", True, False),
        ("beta == null", False, True),  # a missing attribute is null
        ("beta != null", True, False),
        ("true", True, True),
        ("false", False, False),
        ('(plan == "free" or age > 30) and country != "FR"', True, True),
    ],
)
def test_segments_match_as_documented(segment: str, us: bool, de: bool) -> None:
    assert matches(segment, US_PREMIUM) is us
    assert matches(segment, DE_FREE) is de


def test_and_binds_tighter_than_or() -> None:
    # a or (b and c), not (a or b) and c
    assert matches('country == "DE" or plan == "premium" and age > 99', DE_FREE)
    assert not matches('(country == "DE" or plan == "premium") and age > 99', DE_FREE)


def test_values_compare_only_within_their_kind() -> None:
    assert not matches("flag == 1", {"flag": True})  # Python says True == 1
    assert not matches("count == true", {"count": 1})
    assert matches("count == 1", {"count": 1.0})  # numbers are numbers
    assert not matches("age >= 18", {"age": "34"})  # a string is not ordered against a number
    assert not matches("age >= 18", {})  # missing: not in the range, no error
    assert matches('name < "m"', {"name": "alice"})  # strings order as strings
    assert not matches("age < 18", {"age": None})


def test_strings_take_escapes_and_names_take_dots_and_dashes() -> None:
    assert matches(r'quote == "say \"hi\""', {"quote": 'say "hi"'})
    assert matches(r"path == 'a\\b'", {"path": "a\\b"})
    assert matches('app.version-code == "7"', {"app.version-code": "7"})
    assert matches("delta == -2.5e1", {"delta": -25.0})


def test_keywords_are_not_attribute_names() -> None:
    with pytest.raises(SegmentError, match="expected an attribute name"):
        compile_segment('and == "x"')


@pytest.mark.parametrize(
    ("segment", "message"),
    [
        ("", "the segment is empty"),
        ('country = "US"', "unexpected character '=' at column 9"),
        (
            'country == "US" and',
            "expected an attribute name, 'not', '\\(', 'true' or 'false' at column 20, "
            "found the end of the segment",
        ),
        ("country ==", "expected a value .* at column 11, found the end of the segment"),
        ('country "US"', "expected an operator .* after 'country' at column 9"),
        ('(country == "US"', "expected '\\)' at column 17"),
        ('country == "US")', "expected 'and', 'or' or the end of the segment at column 16"),
        ('country in "US"', "expected '\\[' to start a list at column 12"),
        ('country in ["US" "CA"]', "expected ',' or ']' at column 18"),
        ('country not "US"', "expected 'in' after 'not' at column 13"),
        ("age > true", "'>' needs a number or a string, not true"),
        ("age < null", "'<' needs a number or a string, not null"),
        ('name == "unterminated', "unexpected character '\"' at column 9"),
        (r'name == "\q"', r"unknown escape '\\q' in the string at column 9"),
        ("country == US", "expected a value .* at column 12, found 'US'"),
        ("__import__('os')", "expected an operator"),
    ],
)
def test_errors_say_what_was_expected_and_where(segment: str, message: str) -> None:
    with pytest.raises(SegmentError, match=message):
        compile_segment(segment)


def test_limits_bound_what_a_producer_can_make_the_parser_do() -> None:
    with pytest.raises(SegmentError, match=f"nested deeper than {MAX_DEPTH}"):
        compile_segment("(" * (MAX_DEPTH + 1) + "true" + ")" * (MAX_DEPTH + 1))
    with pytest.raises(SegmentError, match=f"nested deeper than {MAX_DEPTH}"):
        compile_segment("not " * (MAX_DEPTH + 1) + "true")
    with pytest.raises(SegmentError, match="at most 4000 characters"):
        compile_segment("x == 1 or " * 500 + "true")
    with pytest.raises(SegmentError, match="at most 1000 values"):
        compile_segment("x in [" + ", ".join("1" for _ in range(1001)) + "]")
    assert compile_segment("(" * MAX_DEPTH + "true" + ")" * MAX_DEPTH)({})


def test_tokens_carry_their_columns() -> None:
    kinds = [(t.kind, t.column) for t in tokenize('a >= 1.5 and b in ["x"]')]
    assert kinds == [
        ("name", 1),
        ("op", 3),
        ("number", 6),
        ("name", 10),
        ("name", 14),
        ("name", 16),
        ("punct", 19),
        ("string", 20),
        ("punct", 23),
        ("end", 24),
    ]
