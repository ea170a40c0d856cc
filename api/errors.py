"""Errors the HTTP API answers with: one JSON shape for every refusal, never a stack trace."""

from __future__ import annotations

import msgspec

from config.errors import NotifyError


class FieldError(msgspec.Struct, frozen=True):
    """One bad field of a request body: ``field`` is its JSON path (``channels[1]``)."""

    field: str
    message: str


class ErrorBody(msgspec.Struct, frozen=True, omit_defaults=True):
    error: str  # a stable code: unauthorized, forbidden, invalid_request, rate_limited, ...
    message: str
    request_id: str = ""
    details: list[FieldError] = msgspec.field(default_factory=list)


class ApiError(NotifyError):
    """Raised by a handler (or the guard) to answer ``status`` with an ``ErrorBody``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[FieldError] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.retry_after = retry_after


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", what)
