"""Requests from API Gateway HTTP API (payload format 2.0) through the core's HTTP binding."""

from __future__ import annotations

import logging
from typing import Any

from orders_aws import observe
from orders_aws.bootstrap import Runtime
from orders_aws.events import apigw_response, http_request_from_apigw
from orders_core import telemetry
from orders_core.errors import OrdersError
from orders_core.http import problem_response

log = logging.getLogger("orders_aws.http")


def handle(event: dict[str, Any], context: Any, rt: Runtime) -> dict[str, Any]:
    with observe.invocation(context, "http") as faas:
        try:
            request = http_request_from_apigw(event)
        except OrdersError as error:
            return apigw_response(problem_response(error, str(event.get("rawPath", "/"))))
        parent = telemetry.valid_traceparent(request.header("traceparent"))
        state = telemetry.valid_tracestate(request.header("tracestate")) if parent else None
        # The route only names the span: skip the lookup when nothing is traced.
        route = rt.api.route_template(request.path) if telemetry.sdk_configured() else None
        with telemetry.server_span(request.method, route, request.path, parent, state) as span:
            for name, value in faas.items():
                span.set_attribute(name, value)
            response = rt.api.handle(request, rt.deadline(context))
            log.info(
                "request",
                extra={"method": request.method, "path": request.path, "status": response.status},
            )
        return apigw_response(response)
