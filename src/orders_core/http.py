"""The HTTP binding of the orders API, as plain values: shared by every HTTP-facing adapter.

An adapter (the local server, the API Gateway Lambda) turns what it received into an
:class:`HttpRequest`, calls :meth:`HttpApi.handle` and writes the :class:`HttpResponse` back.
Routing, content negotiation, the CloudEvents HTTP binding for ``POST /events``, ETags and
RFC 9457 problem details all live here, so every adapter answers byte-for-byte alike.

Routes: one per command of the service's command table (its ``http`` binding), then the
fixed ones; the OpenAPI document at ``GET /openapi.json`` is generated from the same routes:

    POST /orders                              create        201 Location, ETag
    POST /orders/{orderId}/confirm|cancel|fulfill           200 | 409 | 412 (If-Match)
    GET  /orders?customerId=&limit=&cursor=   list          200
    GET  /orders/{orderId}                    get           200 ETag | 404
    POST /events                              any command CloudEvent, binary or structured
    GET  /openapi.json, GET /healthz
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final

from orders_core import commands, telemetry
from orders_core._immutable import immutable
from orders_core._media import CE_BATCH as CE_BATCH  # re-exported, as before
from orders_core._media import CE_JSON as CE_JSON  # re-exported: orders_aws.events
from orders_core._media import JSON, PROBLEM_JSON
from orders_core.commands import COMMANDS, Command, CommandSpec, parse_json_object
from orders_core.deadline import Deadline
from orders_core.errors import (
    MalformedRequest,
    MethodNotAllowed,
    NotFound,
    OrdersError,
    PayloadTooLarge,
    Unauthenticated,
    UnsupportedMediaType,
    ValidationFailed,
)
from orders_core.idempotency import IdempotencyKey, event_key, http_key
from orders_core.numbers import ascii_int
from orders_core.ports import new_id
from orders_core.security import ANONYMOUS, Authenticator, Principal
from orders_core.service import CommandResult, OrderService, Unit

if TYPE_CHECKING:
    from opentelemetry import trace

log = logging.getLogger("orders_core.http")

DEFAULT_MAX_BODY: Final = 1024 * 1024
HTTP_SOURCE: Final = "urn:orders-core:http"
PROBLEM_BASE: Final = "urn:orders-core:problem:"
REPLAY_HEADER: Final = "idempotent-replayed"

_JSON_TYPE_RE: Final = re.compile(r"^application/([a-z0-9.+-]+\+)?json$")
_ETAG_RE: Final = re.compile(r'^(W/)?"([^"]*)"$')
_ID_RE: Final = re.compile(commands.ID_PATTERN)


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


Endpoint = Callable[["HttpApi", HttpRequest, dict[str, str], Call], HttpResponse]


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


# -- endpoints -------------------------------------------------------------------------


def _run(
    api: HttpApi,
    request: HttpRequest,
    command: Command,
    key: IdempotencyKey | None,
    call: Call,
) -> HttpResponse:
    result = api.service.handle(
        command,
        principal=request.principal,
        idempotency_key=key,
        deadline=call.deadline,
        unit=call.unit,
    )
    return command_response(result)


def _create(command_type: str) -> Endpoint:
    def endpoint(
        api: HttpApi, request: HttpRequest, params: dict[str, str], call: Call
    ) -> HttpResponse:
        return _new(api, request, command_type, call)

    return endpoint


def _new(api: HttpApi, request: HttpRequest, command_type: str, call: Call) -> HttpResponse:
    _require_json_type(request)
    key = _idempotency_key(request)
    parent, state = _trace_headers(request)
    command = Command(
        type=command_type,
        source=HTTP_SOURCE,
        id=key.parts[0] if key else new_id(),
        data=request.body,  # the service validates the JSON bytes as they are
        traceparent=parent,
        tracestate=state,
    )
    return _run(api, request, command, key, call)


def _transition(command_type: str) -> Endpoint:
    def endpoint(
        api: HttpApi, request: HttpRequest, params: dict[str, str], call: Call
    ) -> HttpResponse:
        data = _require_json(request, optional=True)
        data["orderId"] = params["orderId"]
        expected = parse_if_match(request.header("if-match"))
        if expected is not None:
            data["expectedVersion"] = expected
        key = _idempotency_key(request)
        parent, state = _trace_headers(request)
        command = Command(
            type=command_type,
            source=HTTP_SOURCE,
            id=key.parts[0] if key else new_id(),
            data=data,
            subject=params["orderId"],
            traceparent=parent,
            tracestate=state,
        )
        return _run(api, request, command, key, call)

    return endpoint


def _get(api: HttpApi, request: HttpRequest, params: dict[str, str], call: Call) -> HttpResponse:
    order = api.service.get(params["orderId"], principal=request.principal)
    return json_response(200, order.to_json(), {"etag": order.etag})


def _list(api: HttpApi, request: HttpRequest, params: dict[str, str], call: Call) -> HttpResponse:
    customer_id = request.query.get("customerId")
    if not customer_id:
        raise MalformedRequest("the customerId query parameter is required")
    if not _ID_RE.fullmatch(customer_id):
        raise MalformedRequest("customerId must be 1-64 letters, digits, '-' or '_'")
    limit = ascii_int(request.query.get("limit", "20"))  # blank values are kept: limit= is ""
    if limit is None or not 1 <= limit <= 100:
        raise MalformedRequest("limit must be an integer from 1 to 100")
    page = api.service.list_by_customer(
        customer_id,
        principal=request.principal,
        limit=limit,
        cursor=request.query.get("cursor") or None,
    )
    body = b'{"orders":[' + b",".join(o.to_json() for o in page.orders) + b"]"
    if page.next_cursor is not None:
        body += b',"nextCursor":' + json.dumps(page.next_cursor).encode()
    return json_response(200, body + b"}")


def _events(api: HttpApi, request: HttpRequest, params: dict[str, str], call: Call) -> HttpResponse:
    from orders_core.cloudevents_http import command_from_http

    command = command_from_http(request.headers, request.body)
    if command.traceparent is None:
        parent, state = _trace_headers(request)
        command = Command(
            command.type, command.source, command.id, command.data, command.subject, parent, state
        )
    key = _idempotency_key(request) or event_key(command.source, command.id)
    return _run(api, request, command, key, call)


def _openapi(
    api: HttpApi, request: HttpRequest, params: dict[str, str], call: Call
) -> HttpResponse:
    from orders_core.openapi import openapi_document

    if api._openapi is None:
        document = openapi_document(
            api.routes, api.service.commands, bearer=api.authenticate is not None
        )
        api._openapi = json.dumps(document).encode()
    return json_response(200, api._openapi)


def _health(api: HttpApi, request: HttpRequest, params: dict[str, str], call: Call) -> HttpResponse:
    return json_response(200, b'{"status":"ok"}')


FIXED_ROUTES: Final[tuple[Route, ...]] = (
    Route("GET", "/orders", "listOrders", _list),
    Route("GET", "/orders/{orderId}", "getOrder", _get),
    Route("POST", "/events", "postEvent", _events),
    Route("GET", "/openapi.json", "openapi", _openapi, public=True),
    Route("GET", "/healthz", "health", _health, public=True),
)


def routes_for(table: Mapping[str, CommandSpec]) -> tuple[Route, ...]:
    """A route for each command with an HTTP binding, then the fixed routes."""
    found: list[Route] = []
    for spec in table.values():
        if spec.http is None:
            continue
        targeted = "{orderId}" in spec.http.template
        endpoint = _transition(spec.type) if targeted else _create(spec.type)
        found.append(
            Route(spec.http.method, spec.http.template, spec.http.operation, endpoint, command=spec)
        )
    return (*found, *FIXED_ROUTES)


ROUTES: Final[tuple[Route, ...]] = routes_for(COMMANDS)
"""The routes of the default command table (what deployments put on an API Gateway)."""


class HttpApi:
    """Routes requests to the service and renders every outcome, errors included."""

    def __init__(
        self,
        service: OrderService,
        *,
        max_body: int = DEFAULT_MAX_BODY,
        timeout: float = 10.0,
        authenticate: Authenticator | None = None,
    ) -> None:
        self.service = service
        self.max_body = max_body
        self.timeout = timeout
        self.authenticate = authenticate
        """Verifies every request to a non-public route; None keeps the adapter's principal
        (API Gateway's authorizer, or anonymous with authentication off)."""
        self.routes = ROUTES if service.commands is COMMANDS else routes_for(service.commands)
        self._openapi: bytes | None = None

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        allowed: list[str] = []
        for route in self.routes:
            found = route.pattern.match(path)
            if found is None:
                continue
            if route.method == method:
                return route, found.groupdict()
            allowed.append(route.method)
        if allowed:
            raise MethodNotAllowed(f"{method} is not allowed on {path}", allowed)
        raise NotFound(f"no resource at {path}")

    def route_template(self, path: str) -> str | None:
        """The route a path belongs to (``/orders/{orderId}``), for span names and metrics."""
        for route in self.routes:
            if route.pattern.match(path):
                return route.template
        return None

    def handle(
        self, request: HttpRequest, deadline: Deadline | None = None, *, unit: Unit | None = None
    ) -> HttpResponse:
        """Answer ``request``; never raises. Unexpected errors become a bare 500.

        With an SDK configured, the answer is traced in an HTTP SERVER span: the adapter's,
        if it opened one (a Lambda adds its ``faas.*`` attributes), else one opened here.
        """
        deadline = deadline or Deadline.after(self.timeout)
        if not telemetry.sdk_configured():
            return self._handle(request, Call(deadline, unit))
        route = self.route_template(request.path)
        current = telemetry.trace.get_current_span()
        if current.get_span_context().is_valid and current.is_recording():
            return self._traced(current, route, request, Call(deadline, unit))
        parent, state = _trace_headers(request)
        if parent is None:  # a binary-mode CloudEvent's own trace context
            parent = telemetry.valid_traceparent(request.header("ce-traceparent"))
            state = telemetry.valid_tracestate(request.header("ce-tracestate")) if parent else None
        with telemetry.server_span(request.method, route, request.path, parent, state) as span:
            return self._traced(span, route, request, Call(deadline, unit))

    def _traced(
        self, span: trace.Span, route: str | None, request: HttpRequest, call: Call
    ) -> HttpResponse:
        if route is not None:
            span.set_attribute("http.route", route)
            span.update_name(f"{request.method} {route}")
        response = self._handle(request, call)
        span.set_attribute("http.response.status_code", response.status)
        if response.status >= 500:
            span.set_attribute("error.type", str(response.status))
        return response

    def _handle(self, request: HttpRequest, call: Call) -> HttpResponse:
        try:
            if len(request.body) > self.max_body:
                raise PayloadTooLarge(f"the body is over the {self.max_body}-byte limit")
            route, params = self.match(request.method, request.path)
            if self.authenticate is not None and not route.public:
                request = replace(request, principal=self.authenticate(request.headers))
            return route.endpoint(self, request, params, call)
        except OrdersError as error:
            if error.status >= 500:
                log.warning("request failed: %s", error.slug)
            return problem_response(error, request.path)
        except Exception:
            log.exception("unhandled error")
            return problem_response(OrdersError(), request.path)
