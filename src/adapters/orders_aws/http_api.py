"""Requests from API Gateway HTTP API (payload format 2.0) through the core's HTTP binding."""

from __future__ import annotations

from typing import Any

from orders_aws.bootstrap import Runtime
from orders_aws.events import apigw_response, http_request_from_apigw
from orders_core.errors import OrdersError
from orders_core.http import problem_response


def handle(event: dict[str, Any], context: Any, rt: Runtime) -> dict[str, Any]:
    try:
        request = http_request_from_apigw(event)
    except OrdersError as error:
        return apigw_response(problem_response(error, str(event.get("rawPath", "/"))))
    return apigw_response(rt.api.handle(request, rt.deadline(context)))
