"""The values of the HTTP binding (requests, responses, routes) and the helpers that read
and render them; :mod:`orders_core.edges.http` is their public face."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

from orders_core import telemetry
from orders_core._immutable import immutable
from orders_core.application import (
    ANONYMOUS,
    ID_PATTERN,
    CommandResult,
    CommandSpec,
    Deadline,
    IdempotencyKey,
    Principal,
    Unit,
    http_key,
    parse_json_object,
)
from orders_core.edges._media import JSON, PROBLEM_JSON
from orders_core.edges.numbers import ascii_int
from orders_core.errors import (
    MalformedRequest,
    MethodNotAllowed,
    OrdersError,
    Unauthenticated,
    UnsupportedMediaType,
    ValidationFailed,
)

if TYPE_CHECKING:
    from pydantic import BaseModel

    from orders_core.application import Authenticator, OrderService

DEFAULT_MAX_BODY: Final = 64 * 1024
"""The largest valid order (100 items, every field at its longest) is ~15 KB compact and
~18 KB indented; a larger limit only buys an attacker more parsing per request."""
HTTP_SOURCE: Final = "urn:orders-core:http"
PROBLEM_BASE: Final = "urn:orders-core:problem:"
REPLAY_HEADER: Final = "idempotent-replayed"

_JSON_TYPE_RE: Final = re.compile(r"^application/([a-z0-9.+-]+\+)?json$")
_ETAG_RE: Final = re.compile(r'^(W/)?"([^"]*)"$')
_ID_RE: Final = re.compile(ID_PATTERN)


@immutable()
class HttpRequest:
    """An HTTP request as the binding needs it. Header names must be lower-case."""

    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    principal: Principal = ANONYMOUS
    """Who asks, as the adapter authenticated them (anonymous only with auth off)."""
    peer: str | None = None
    """The address the connection came from, as the server saw it (the ASGI scope's
    ``client``), never a header a caller could write; None where the adapter cannot say."""

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


@immutable()
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@immutable(eq=False)
class Call:
    """One call's deadline, and the service's unit of work it joins (None: its own)."""

    deadline: Deadline
    unit: Unit | None = None


class Api(Protocol):
    """What an endpoint may use of the :class:`~orders_core.edges.http.HttpApi` routing to it."""

    service: OrderService
    routes: tuple[Route, ...]
    authenticate: Authenticator | None
    openapi_json: bytes | None
    """The OpenAPI document, rendered once."""


Endpoint = Callable[[Api, HttpRequest, dict[str, str], Call], HttpResponse]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    template: str
    name: str
    endpoint: Endpoint
    public: bool = False
    """Answered without authentication (health checks, the OpenAPI document)."""
    command: CommandSpec | None = None
    """The command a command route runs (its OpenAPI text comes from it)."""
    openapi: Mapping[str, Any] | None = None
    """The OpenAPI operation of a route added by a runtime (``HttpApi(extra_routes=)``),
    which documents itself; the core's routes are described in ``edges.openapi``."""
    schemas: tuple[type[BaseModel], ...] = ()
    """Models the ``openapi`` operation refers to (``#/components/schemas/<name>``)."""
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.template)
        object.__setattr__(self, "pattern", re.compile(f"^{regex}$"))


# -- request parsing helpers -----------------------------------------------------------


def parse_query(raw: str) -> dict[str, str]:
    """A raw query string as the binding reads it: the last value of each name, blank values
    kept (``limit=`` must be refused, not read as "no limit"). Adapters call this."""
    if not raw:
        return {}
    from urllib.parse import parse_qsl  # only requests with a query pay for the import

    return dict(parse_qsl(raw, keep_blank_values=True))


def media_type(request: HttpRequest) -> str:
    value = request.header("content-type") or ""
    return value.split(";", 1)[0].strip().lower()


def _require_json_type(request: HttpRequest) -> None:
    if not _JSON_TYPE_RE.match(media_type(request)):
        raise UnsupportedMediaType(f"send the body as {JSON}")


def _require_json(request: HttpRequest, *, optional: bool = False) -> dict[str, Any]:
    if optional and not request.body.strip():
        return {}
    _require_json_type(request)
    return parse_json_object(request.body)


def parse_if_match(value: str | None) -> int | None:
    """The version an ``If-Match`` demands; None for absent or ``*``.

    Our ETags are strong (``"<version>"``); a weak or foreign tag can never match (412).
    """
    if value is None or value.strip() == "*":
        return None
    match = _ETAG_RE.match(value.strip())
    if match is None:
        raise MalformedRequest('If-Match must be one entity tag, such as "3", or *')
    weak, tag = match.groups()
    version = ascii_int(tag)  # U+00B9 passes isdigit(), fails int()
    if weak or version is None or version < 1:
        return 0  # no order has version 0: the precondition fails
    return version


def _trace_headers(request: HttpRequest) -> tuple[str | None, str | None]:
    parent = telemetry.valid_traceparent(request.header("traceparent"))
    state = telemetry.valid_tracestate(request.header("tracestate")) if parent else None
    return parent, state


def _idempotency_key(request: HttpRequest) -> IdempotencyKey | None:
    key = request.header("idempotency-key")
    return None if key is None else http_key(key)


# -- responses -------------------------------------------------------------------------


def json_response(status: int, body: bytes, headers: dict[str, str] | None = None) -> HttpResponse:
    return HttpResponse(status, {"content-type": JSON, **(headers or {})}, body)


def command_response(result: CommandResult) -> HttpResponse:
    headers = {"etag": result.etag}
    if result.status == 201:
        headers["location"] = f"/orders/{result.order_id}"
    if result.replayed:
        headers[REPLAY_HEADER] = "true"
    return json_response(result.status, result.body, headers)


def problem_response(error: OrdersError, instance: str) -> HttpResponse:
    problem: dict[str, Any] = {
        "type": PROBLEM_BASE + error.slug,
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        "instance": instance,
    }
    if isinstance(error, ValidationFailed) and error.errors:
        problem["errors"] = [{"pointer": e.pointer, "detail": e.detail} for e in error.errors]
    headers = {"content-type": PROBLEM_JSON}
    if isinstance(error, MethodNotAllowed):
        headers["allow"] = ", ".join(error.allowed)
    if isinstance(error, Unauthenticated):
        headers["www-authenticate"] = error.challenge
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        headers["retry-after"] = str(retry_after)
    return HttpResponse(error.status, headers, json.dumps(problem).encode())
