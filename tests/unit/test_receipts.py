"""Whose read receipt it is (api/receipts.py): the status row's user, or the one the caller
names while the row does not exist yet."""

from __future__ import annotations

import pytest

from api.errors import ApiError
from api.receipts import receipt_user


def test_the_status_row_names_the_user() -> None:
    assert receipt_user("u1", None, "n1") == "u1"
    assert receipt_user("u1", "u1", "n1") == "u1"


def test_before_the_row_exists_the_caller_names_the_user_or_hears_404() -> None:
    assert receipt_user(None, "u1", "n1") == "u1"
    with pytest.raises(ApiError) as missing:
        receipt_user(None, None, "n1")
    assert (missing.value.status, missing.value.code) == (404, "not_found")


@pytest.mark.parametrize(
    ("row", "named", "status", "code"),
    [("u1", "u2", 409, "user_mismatch"), (None, " ", 400, "invalid_request"),
     ("u1", "x" * 201, 400, "invalid_request")],
)  # fmt: skip
def test_a_user_that_is_not_the_rows_or_not_an_id_is_refused(
    row: str | None, named: str, status: int, code: str
) -> None:
    with pytest.raises(ApiError) as refused:
        receipt_user(row, named, "n1")
    assert (refused.value.status, refused.value.code) == (status, code)
