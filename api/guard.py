"""Every HTTP request passes one aiohttp middleware: a request id, the API key and its scope,
the key's rate, JSON errors, and one access log line without PII.

The scope a route needs comes from its declared operation (``operation`` below); routes that
are not API operations (the operator views, ``/metrics``) need ``read`` to look and ``admin``
to change anything. Health checks, the provider feedback webhook (its own token) and signed
unsubscribe links need no key. With no key configured at all the API is open, for local runs
and the demo, and the worker says so in a warning at start.

A read that Faust's ``table_route`` forwards to the owning worker carries the caller's
headers, so the owner checks the key again: such a read counts twice against the key's rate.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import orjson
from aiohttp import web

from api.body import read_body as read_body  # re-exported: routes import it from here
from api.errors import ApiError, ErrorBody
from api.keys import ApiKey, KeyRing
from api.keys import Scope as Scope  # re-exported for the route modules
from api.openapi import ApiSpec, Operation
from providers.token_bucket import BucketShape, LocalBucket

log = logging.getLogger("notify.api")

REQUEST_ID = "X-Request-Id"
_GOOD_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
PUBLIC_PREFIXES = ("/healthz", "/readyz", "/feedback/", "/v1/unsubscribe/")
KEY = web.RequestKey("api_key", ApiKey)  # where the authenticated key is kept on the request
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def error_response(exc: ApiError, request_id: str) -> web.Response:
    body = ErrorBody(exc.code, exc.message, request_id, exc.details)
    response = web.Response(
        body=orjson.dumps(body, default=_builtins),
        status=exc.status,
        content_type="application/json",
    )
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, round(exc.retry_after + 0.499)))
    return response


def _builtins(obj: Any) -> Any:
    import msgspec

    return msgspec.to_builtins(obj)


# At most this often (on a request) the rate buckets of keys gone quiet are dropped.
SWEEP_SECONDS = 10.0


class ApiGate:
    def __init__(
        self,
        keys: KeyRing,
        spec: ApiSpec,
        default_rate: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keys = keys
        self.spec = spec
        self.default_rate = default_rate
        self._clock = clock
        # key id -> its rate bucket: the keys seen since the last sweep, and any still refilling.
        self._buckets: dict[str, LocalBucket] = {}
        self._swept = clock()

    def required_scope(self, request: web.Request) -> Scope | None:
        path = request.path
        if path.startswith(PUBLIC_PREFIXES):
            return None
        route = request.match_info.route.resource
        template = route.canonical if route is not None else path
        declared = self.spec.scope_of(request.method, template)
        if declared is not False:
            return declared  # type: ignore[return-value]  # a Scope or None
        return Scope.READ if request.method in ("GET", "HEAD") else Scope.ADMIN

    def authenticate(self, request: web.Request, scope: Scope) -> ApiKey:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        key = self.keys.authenticate(token) if token else None
        if key is None:
            raise ApiError(
                401, "unauthorized", "a valid API key is required (Authorization: Bearer)"
            )
        if not key.allows(scope):
            raise ApiError(403, "forbidden", f"this key lacks the '{scope}' scope")
        self.charge(key)
        return key

    @property
    def tracked_keys(self) -> int:
        """How many keys have a rate bucket here now."""
        return len(self._buckets)

    def charge(self, key: ApiKey) -> None:
        """One request against ``key``'s rate; ApiError 429 when it is over."""
        rate = key.rate_per_second or self.default_rate
        now = self._clock()
        if now - self._swept >= SWEEP_SECONDS:
            self._drop_refilled(now)
        bucket = self._buckets.get(key.id)
        if bucket is None or bucket.shape.rate != rate:
            bucket = self._buckets[key.id] = LocalBucket(BucketShape(rate, 1.0, 0, 1, 1), now)
        grant = bucket.take(1, now)
        if not grant.granted:
            raise ApiError(429, "rate_limited", f"over {rate:g} requests/s", retry_after=grant.wait)

    def _drop_refilled(self, now: float) -> None:
        """Drop the buckets idle long enough to have refilled: a new bucket is the same thing,
        so only the keys of the last seconds keep one, not every key id ever seen (revoked
        and rotated ones included). O(keys) once per SWEEP_SECONDS at most."""
        self._buckets = {k: b for k, b in self._buckets.items() if not b.is_fresh(now)}
        self._swept = now

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        incoming = request.headers.get(REQUEST_ID, "")
        request_id = incoming if _GOOD_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        started = time.perf_counter()
        key_id = "-"
        try:
            scope = self.required_scope(request)
            if scope is not None and self.keys.enabled:
                key = self.authenticate(request, scope)
                request[KEY] = key
                key_id = key.id
            response = await handler(request)
        except ApiError as exc:
            response = error_response(exc, request_id)
        except web.HTTPException as exc:  # the router's 404 / 405, aiohttp's 413
            if exc.status < 400:
                raise
            code = exc.reason.lower().replace(" ", "_")
            response = error_response(ApiError(exc.status, code, exc.reason), request_id)
        except Exception:
            log.exception("request %s failed", request_id)
            failure = ApiError(500, "internal_error", "the request failed; see the worker log")
            response = error_response(failure, request_id)
        response.headers[REQUEST_ID] = request_id
        resource = request.match_info.route.resource
        # The route's template, never the path: a path holds user ids and tokens.
        route = resource.canonical if resource is not None else "(no route)"
        log.info(
            "%s %s %d key=%s %.1fms request_id=%s",
            request.method,
            route,
            response.status,
            key_id,
            (time.perf_counter() - started) * 1000,
            request_id,
        )
        return response


def caller(request: Any) -> ApiKey | None:
    """The key the request came with (None when the API is open)."""
    found = request.get(KEY)
    return found if isinstance(found, ApiKey) else None


class HasSpec(Protocol):
    @property
    def spec(self) -> ApiSpec: ...


def operation(
    owner: ApiSpec | HasSpec,
    method: str,
    path: str,
    scope: Scope | None,
    *,
    summary: str,
    body: type | None = None,
    responses: dict[int, type | None] | None = None,
    tag: str = "",
) -> Callable[[F], F]:
    """Declares a view method as an API operation: its scope (checked by the middleware) and
    its types (for /openapi.json). The method itself is returned unchanged."""
    spec = owner if isinstance(owner, ApiSpec) else owner.spec
    spec.add(Operation(method, path, scope, summary, body, responses or {200: None}, tag))

    def declare(fun: F) -> F:
        return fun

    return declare
