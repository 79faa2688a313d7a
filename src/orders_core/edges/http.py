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
    HEAD on every GET route: the GET answer, whose body the adapter does not send
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from orders_core import telemetry
from orders_core.application import COMMANDS, Authenticator, Deadline, OrderService, Unit
from orders_core.edges._endpoints import FIXED_ROUTES, ROUTES, routes_for
from orders_core.edges._http_values import (
    DEFAULT_MAX_BODY,
    HTTP_SOURCE,
    PROBLEM_BASE,
    REPLAY_HEADER,
    Call,
    Endpoint,
    HttpRequest,
    HttpResponse,
    Route,
    _trace_headers,
    command_response,
    json_response,
    media_type,
    parse_if_match,
    parse_query,
    problem_response,
)
from orders_core.edges._media import CE_BATCH, CE_JSON, JSON, PROBLEM_JSON
from orders_core.errors import MethodNotAllowed, NotFound, OrdersError, PayloadTooLarge

if TYPE_CHECKING:
    from opentelemetry import trace

__all__ = [
    "CE_BATCH",
    "CE_JSON",
    "DEFAULT_MAX_BODY",
    "FIXED_ROUTES",
    "HTTP_SOURCE",
    "JSON",
    "PROBLEM_BASE",
    "PROBLEM_JSON",
    "REPLAY_HEADER",
    "ROUTES",
    "Call",
    "Endpoint",
    "HttpApi",
    "HttpRequest",
    "HttpResponse",
    "Route",
    "command_response",
    "json_response",
    "media_type",
    "parse_if_match",
    "parse_query",
    "problem_response",
    "routes_for",
]

log = logging.getLogger("orders_core.http")


class HttpApi:
    """Routes requests to the service and renders every outcome, errors included."""

    def __init__(
        self,
        service: OrderService,
        *,
        max_body: int = DEFAULT_MAX_BODY,
        timeout: float = 10.0,
        authenticate: Authenticator | None = None,
        extra_routes: Sequence[Route] = (),
    ) -> None:
        """``extra_routes`` come after the API's own (a runtime's console); each documents
        itself in the OpenAPI document (:attr:`Route.openapi`)."""
        self.service = service
        self.max_body = max_body
        self.timeout = timeout
        self.authenticate = authenticate
        """Verifies every request to a non-public route; None keeps the adapter's principal
        (API Gateway's authorizer, or anonymous with authentication off)."""
        routes = ROUTES if service.commands is COMMANDS else routes_for(service.commands)
        self.routes = (*routes, *extra_routes) if extra_routes else routes
        self.openapi_json: bytes | None = None

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route for ``method`` on ``path``, and its path parameters. HEAD is answered
        by every GET route, as GET is (RFC 9110 9.3.2): the adapter sends no body."""
        allowed: list[str] = []
        for route in self.routes:
            found = route.pattern.match(path)
            if found is None:
                continue
            if route.method == method or (method == "HEAD" and route.method == "GET"):
                return route, found.groupdict()
            allowed.append(route.method)
            if route.method == "GET":
                allowed.append("HEAD")
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
