"""The endpoints behind the routes: one per command of a table, then the fixed ones."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Final

from orders_core.application import (
    COMMANDS,
    Command,
    CommandSpec,
    IdempotencyKey,
    event_key,
    new_id,
)
from orders_core.edges._http_values import (
    _ID_RE,
    HTTP_SOURCE,
    Api,
    Call,
    Endpoint,
    HttpRequest,
    HttpResponse,
    Route,
    _idempotency_key,
    _require_json,
    _require_json_type,
    _trace_headers,
    command_response,
    json_response,
    parse_if_match,
)
from orders_core.edges.numbers import ascii_int
from orders_core.errors import MalformedRequest

# -- endpoints -------------------------------------------------------------------------


def _run(
    api: Api,
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
        api: Api, request: HttpRequest, params: dict[str, str], call: Call
    ) -> HttpResponse:
        return _new(api, request, command_type, call)

    return endpoint


def _new(api: Api, request: HttpRequest, command_type: str, call: Call) -> HttpResponse:
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
        api: Api, request: HttpRequest, params: dict[str, str], call: Call
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


def _get(api: Api, request: HttpRequest, params: dict[str, str], call: Call) -> HttpResponse:
    order = api.service.get(params["orderId"], principal=request.principal)
    return json_response(200, order.to_json(), {"etag": order.etag})


def _list(api: Api, request: HttpRequest, params: dict[str, str], call: Call) -> HttpResponse:
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


def _events(api: Api, request: HttpRequest, params: dict[str, str], call: Call) -> HttpResponse:
    from orders_core.edges.cloudevents_http import command_from_http

    command = command_from_http(request.headers, request.body)
    if command.traceparent is None:
        parent, state = _trace_headers(request)
        command = Command(
            command.type, command.source, command.id, command.data, command.subject, parent, state
        )
    key = _idempotency_key(request) or event_key(command.source, command.id)
    return _run(api, request, command, key, call)


def _openapi(api: Api, request: HttpRequest, params: dict[str, str], call: Call) -> HttpResponse:
    from orders_core.edges.openapi import openapi_document

    if api.openapi_json is None:
        document = openapi_document(
            api.routes, api.service.commands, bearer=api.authenticate is not None
        )
        api.openapi_json = json.dumps(document).encode()
    return json_response(200, api.openapi_json)


def _health(api: Api, request: HttpRequest, params: dict[str, str], call: Call) -> HttpResponse:
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
