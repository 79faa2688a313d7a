"""The OpenAPI 3.1 document of the HTTP binding, generated from the pydantic models.

Generated (not hand-written) so it cannot drift from validation; a test walks
:data:`orders_core.http.ROUTES` and checks every route is documented and that real responses
validate against the schemas given here. Built lazily on the first ``GET /openapi.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from orders_core import __version__
from orders_core.commands import ID_PATTERN, CreateOrder
from orders_core.domain import Order

if TYPE_CHECKING:
    from orders_core.http import Route


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=500)


class OrderPage(BaseModel):
    orders: list[Order]
    next_cursor: str | None = Field(default=None, alias="nextCursor")


class FieldProblem(BaseModel):
    pointer: str
    detail: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    errors: list[FieldProblem] | None = None


class Health(BaseModel):
    status: str


_REF = "#/components/schemas/{model}"
_PROBLEM = {"application/problem+json": {"schema": {"$ref": _REF.format(model="Problem")}}}


def _json(model: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF.format(model=model)}}}


def _problems(*codes: int) -> dict[str, Any]:
    titles = {
        400: "Malformed request",
        404: "Not found",
        405: "Method not allowed",
        409: "Invalid status transition",
        412: "If-Match names a stale version",
        413: "Body too large",
        415: "Unsupported media type",
        422: "Validation failed, or Idempotency-Key reused with another payload",
        500: "Internal error",
        503: "Deadline exceeded or store unavailable (see Retry-After)",
    }
    return {str(code): {"description": titles[code], "content": _PROBLEM} for code in codes}


_ORDER_HEADERS = {"ETag": {"schema": {"type": "string"}, "description": "The order's version."}}
_REPLAY = {
    "Idempotent-Replayed": {
        "schema": {"type": "string", "enum": ["true"]},
        "description": "Present when this answer replays an earlier request's.",
    }
}
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
_IF_MATCH = {"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"}}
_ORDER_ID = {
    "name": "orderId",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": ID_PATTERN},
}


def _operation(route: Route) -> dict[str, Any]:
    common = _problems(400, 405, 413, 500, 503)
    name = route.name
    if name == "createOrder":
        return {
            "summary": "Place an order",
            "parameters": [_IDEMPOTENCY_KEY],
            "requestBody": {"required": True, "content": _json("CreateOrder")},
            "responses": {
                "201": {
                    "description": "Created (or replayed)",
                    "headers": {
                        **_ORDER_HEADERS,
                        **_REPLAY,
                        "Location": {"schema": {"type": "string"}},
                    },
                    "content": _json("Order"),
                },
                **common,
                **_problems(415, 422),
            },
        }
    if name == "listOrders":
        return {
            "summary": "List a customer's orders, oldest first",
            "parameters": [
                {
                    "name": "customerId",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "string", "pattern": ID_PATTERN},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
                },
                {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"}},
            ],
            "responses": {
                "200": {"description": "A page", "content": _json("OrderPage")},
                **common,
            },
        }
    if name == "getOrder":
        return {
            "summary": "Read an order",
            "parameters": [_ORDER_ID],
            "responses": {
                "200": {
                    "description": "The order",
                    "headers": _ORDER_HEADERS,
                    "content": _json("Order"),
                },
                **common,
                **_problems(404),
            },
        }
    if name in {"confirmOrder", "cancelOrder", "fulfillOrder"}:
        body: dict[str, Any] = {"required": False, "content": _json("CancelBody")}
        operation: dict[str, Any] = {
            "summary": f"{name.removesuffix('Order').capitalize()} an order",
            "parameters": [_ORDER_ID, _IF_MATCH, _IDEMPOTENCY_KEY],
            "responses": {
                "200": {
                    "description": "The order after the transition (or a replay)",
                    "headers": {**_ORDER_HEADERS, **_REPLAY},
                    "content": _json("Order"),
                },
                **common,
                **_problems(404, 409, 412, 415, 422),
            },
        }
        if name == "cancelOrder":
            operation["requestBody"] = body
        return operation
    if name == "postEvent":
        return {
            "summary": "Submit any command as a CloudEvent (binary or structured mode)",
            "parameters": [_IDEMPOTENCY_KEY],
            "requestBody": {
                "required": True,
                "content": {
                    "application/cloudevents+json": {"schema": {"type": "object"}},
                    "application/json": {"schema": {"type": "object"}},
                },
            },
            "responses": {
                "200": {"description": "Transition applied", "content": _json("Order")},
                "201": {"description": "Order created", "content": _json("Order")},
                **common,
                **_problems(404, 409, 412, 415, 422),
            },
        }
    if name == "openapi":
        return {
            "summary": "This document",
            "responses": {
                "200": {
                    "description": "OpenAPI 3.1",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    if name == "health":
        return {
            "summary": "Liveness",
            "responses": {"200": {"description": "Up", "content": _json("Health")}},
        }
    raise LookupError(f"route {name} has no OpenAPI description")


def openapi_document(routes: Sequence[Route]) -> dict[str, Any]:
    _, schemas = models_json_schema(
        [
            (CreateOrder, "validation"),
            (CancelBody, "validation"),
            (Order, "serialization"),
            (OrderPage, "serialization"),
            (Problem, "serialization"),
            (Health, "serialization"),
        ],
        ref_template=_REF,
    )
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation = _operation(route)
        operation["operationId"] = route.name
        paths.setdefault(route.template, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "orders-core", "version": __version__},
        "paths": paths,
        "components": {"schemas": schemas["$defs"]},
    }
