"""Lambda trigger: API Gateway HTTP API requests (payload format 2.0) -> the core's HTTP binding.

Configure the function's handler as ``orders_aws.apigw.handler``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from orders_aws import observe
from orders_aws.bootstrap import Runtime, build_if_entrypoint, runtime
from orders_aws.shapes import apigw_response, http_request_from_apigw
from orders_core import telemetry
from orders_core.edges.http import HttpRequest, HttpResponse, problem_response
from orders_core.errors import OrdersError

log = logging.getLogger("orders_aws.http")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entrypoint, on the process's runtime."""
    return handle(event, context, runtime())


def handle(event: dict[str, Any], context: Any, rt: Runtime) -> dict[str, Any]:
    with observe.invocation(context, "http") as faas:
        try:
            request = http_request_from_apigw(event, rt.config.auth)
        except OrdersError as error:
            path = event.get("rawPath") if isinstance(event, Mapping) else None
            refused = problem_response(error, path if isinstance(path, str) else "/")
            return apigw_response(_for_head(refused, _method(event)))
        if telemetry.sdk_configured():
            response = _traced(request, faas, context, rt)
        else:  # the common case: no span machinery at all
            response = rt.api.handle(request, rt.deadline(context))
            _log(request, response)
        return apigw_response(_for_head(response, request.method))


def _method(event: Any) -> str | None:
    """The request's method as the event states it, if it states one (a refused event)."""
    if not isinstance(event, Mapping):
        return None
    http = event.get("requestContext", {})
    http = http.get("http", {}) if isinstance(http, Mapping) else {}
    method = http.get("method") if isinstance(http, Mapping) else None
    return method if isinstance(method, str) else None


def _for_head(response: HttpResponse, method: str | None) -> HttpResponse:
    """A HEAD answer: the status and headers, and no body (RFC 9110 9.3.2)."""
    if method is not None and method.upper() == "HEAD":
        return HttpResponse(response.status, response.headers, b"")
    return response


def _traced(request: HttpRequest, faas: dict[str, Any], context: Any, rt: Runtime) -> HttpResponse:
    parent = telemetry.valid_traceparent(request.header("traceparent"))
    state = telemetry.valid_tracestate(request.header("tracestate")) if parent else None
    route = rt.api.route_template(request.path)
    with telemetry.server_span(request.method, route, request.path, parent, state) as span:
        for name, value in faas.items():
            span.set_attribute(name, value)
        response = rt.api.handle(request, rt.deadline(context))
        _log(request, response)  # inside the span: the line carries its trace id
        return response


def _log(request: HttpRequest, response: HttpResponse) -> None:
    telemetry.log_line(
        log, "request", {"method": request.method, "path": request.path, "status": response.status}
    )


build_if_entrypoint(__name__)
