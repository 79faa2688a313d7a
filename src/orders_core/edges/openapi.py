"""The OpenAPI 3.1 document of the HTTP binding, generated from the pydantic models.

Generated (not hand-written) so it cannot drift from validation: command routes are described
from the command table (their summary, body and payload models), the fixed routes here; a
test walks :data:`orders_core.edges.http.ROUTES` and checks every route is documented and that real
responses validate against the schemas given here. Built lazily on the first
``GET /openapi.json``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any, Protocol

from pydantic import AliasChoices, BaseModel, Field
from pydantic.json_schema import models_json_schema

from orders_core import __version__
from orders_core.application import COMMANDS, ID_PATTERN, CommandSpec
from orders_core.domain import LineItem, Order


class DescribedRoute(Protocol):
    """What the document needs of a route: :class:`orders_core.edges.http.Route` is one. A
    Protocol, not that class, so this module never imports the binding that imports it."""

    @property
    def method(self) -> str: ...
    @property
    def template(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def public(self) -> bool: ...
    @property
    def command(self) -> CommandSpec | None: ...
    @property
    def openapi(self) -> Mapping[str, Any] | None: ...
    @property
    def schemas(self) -> tuple[type[BaseModel], ...]: ...


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
_CE_JSON = "application/cloudevents+json"
_SEED = {"items": [{"id": "sku-1", "qty": 2}], "customerId": "c-1"}
_BINARY = "Binary mode (the body is the event's data, as `application/json`): required"


def _ce_header(attribute: str, schema: dict[str, Any], example: str, what: str) -> dict[str, Any]:
    """A CloudEvents attribute as a binary-mode header. Not ``required`` in the OpenAPI
    sense: structured mode carries it in the body instead, and one operation has one
    parameter list for both modes."""
    return {
        "name": f"ce-{attribute}",
        "in": "header",
        "required": False,
        "description": f"{_BINARY}. {what} Omit in structured mode ({_CE_JSON}).",
        "schema": schema,
        "example": example,
    }


def _ce_headers(types: list[str]) -> list[dict[str, Any]]:
    text = {"type": "string", "minLength": 1}
    return [
        _ce_header("specversion", {"type": "string", "enum": ["1.0"]}, "1.0", "Always 1.0."),
        _ce_header(
            "type",
            {"type": "string", "enum": types},
            "io.orderscore.order.create.v1",
            "The command.",
        ),
        _ce_header(
            "source",
            text,
            "urn:example:shop",
            "Who sends it; (source, id) is the event's identity, deduplicated.",
        ),
        _ce_header("id", text, "evt-1", "Unique per source; a redelivery keeps its id."),
        {
            "name": "ce-subject",
            "in": "header",
            "required": False,
            "description": "Binary mode, optional: the CloudEvent subject.",
            "schema": text,
        },
        {
            "name": "ce-traceparent",
            "in": "header",
            "required": False,
            "description": "Binary mode, optional: W3C trace context of the command "
            "(else the request's traceparent header is used).",
            "schema": {"type": "string"},
        },
    ]


def _command_event(types: list[str]) -> dict[str, Any]:
    """A structured-mode command CloudEvent (JSON event format, CloudEvents 1.0)."""
    return {
        "type": "object",
        "description": "A command as a structured-mode CloudEvent. Extension attributes "
        "(lower-case letters and digits, such as traceparent) are allowed.",
        "required": ["specversion", "id", "source", "type"],
        "properties": {
            "specversion": {"type": "string", "enum": ["1.0"]},
            "id": {"type": "string", "minLength": 1},
            "source": {"type": "string", "minLength": 1},
            "type": {"type": "string", "enum": types},
            "subject": {"type": "string"},
            "time": {"type": "string", "format": "date-time"},
            "datacontenttype": {"type": "string", "enum": ["application/json"]},
            "traceparent": {"type": "string"},
            "tracestate": {"type": "string"},
            "data": {"$ref": _REF.format(model="CommandData")},
        },
    }


def _accept_aliases(schema: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """Pydantic documents only the first name of a field's ``AliasChoices``; the server
    takes each. List them all (the snake_case field name, for Python callers, aside) and
    say a field is given under one name: exactly one if required, else at most one."""
    properties: dict[str, Any] = schema["properties"]
    required: list[str] = schema.get("required", [])
    rules: list[dict[str, Any]] = []
    for name, field in model.model_fields.items():
        if not isinstance(field.validation_alias, AliasChoices):
            continue
        choices = [c for c in field.validation_alias.choices if isinstance(c, str)]
        names = [choices[0], *(c for c in choices[1:] if c != name)]
        if len(names) < 2:
            continue
        primary = properties[names[0]]
        for other in names[1:]:
            alias = {k: v for k, v in primary.items() if k != "title"}
            properties[other] = {**alias, "description": f"Another name for `{names[0]}`."}
        if names[0] in required:
            required.remove(names[0])
            rules.append({"oneOf": [{"required": [n]} for n in names]})
        else:
            rules.extend({"not": {"required": list(pair)}} for pair in combinations(names, 2))
    if rules:
        schema["allOf"] = rules
    return schema


_PROBLEM = {"application/problem+json": {"schema": {"$ref": _REF.format(model="Problem")}}}


def _json(model: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF.format(model=model)}}}


def _problems(*codes: int) -> dict[str, Any]:
    titles = {
        400: "Malformed request",
        401: "No credentials, or ones that do not verify (see WWW-Authenticate)",
        404: "Not found",
        405: "Method not allowed",
        409: "Invalid status transition",
        412: "If-Match names a stale version",
        413: "Body too large",
        415: "Unsupported media type",
        422: "Validation failed, or Idempotency-Key reused with another payload",
        500: "Internal error",
        503: "Deadline exceeded, store or key server unavailable (see Retry-After)",
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


def _command_operation(spec: CommandSpec) -> dict[str, Any]:
    """A command route, from its table entry: one that makes an order, or one that targets
    the order in its path (If-Match, an optional body)."""
    assert spec.http is not None
    common = _problems(400, 401, 405, 413, 500, 503)
    body = spec.http.body
    if "{orderId}" not in spec.http.template:
        return {
            "summary": spec.http.summary,
            "parameters": [_IDEMPOTENCY_KEY],
            "requestBody": {
                "required": True,
                "content": _json(body.__name__ if body else spec.payload.__name__),
            },
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
    operation: dict[str, Any] = {
        "summary": spec.http.summary,
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
    if body is not None:
        operation["requestBody"] = {"required": False, "content": _json(body.__name__)}
    return operation


def _operation(route: DescribedRoute, types: list[str]) -> dict[str, Any]:
    if route.openapi is not None:  # a runtime's route, documented by whoever added it
        return copy.deepcopy(dict(route.openapi))
    if route.command is not None:
        return _command_operation(route.command)
    common = _problems(400, 401, 405, 413, 500, 503)
    name = route.name
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
    if name == "postEvent":
        structured = {"specversion": "1.0", "id": "evt-1", "source": "urn:example:shop"}
        return {
            "summary": "Submit any command as a CloudEvent (binary or structured mode)",
            "description": "Structured mode: the whole event as the body, with Content-Type "
            f"`{_CE_JSON}`. Binary mode: the event's data as an `application/json` body and "
            "its attributes as `ce-specversion`, `ce-type`, `ce-source` and `ce-id` headers "
            "(all four required in that mode). Without either, the answer is 415.",
            "parameters": [_IDEMPOTENCY_KEY, *_ce_headers(types)],
            "requestBody": {
                "required": True,
                "content": {
                    _CE_JSON: {
                        "schema": {"$ref": _REF.format(model="CommandEvent")},
                        "example": {
                            **structured,
                            "type": "io.orderscore.order.create.v1",
                            "data": _SEED,
                        },
                    },
                    "application/json": {
                        "schema": {"$ref": _REF.format(model="CommandData")},
                        "example": _SEED,
                    },
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


def openapi_document(
    routes: Sequence[DescribedRoute],
    commands: Mapping[str, CommandSpec] = COMMANDS,
    *,
    bearer: bool = False,
) -> dict[str, Any]:
    """The document for ``routes``, whose commands come from ``commands``. ``bearer``: the
    server verifies bearer JWTs itself, so the document says every non-public route needs
    one (behind API Gateway, the gateway's authorizer does, and documents itself)."""
    inputs: dict[str, type[BaseModel]] = {}
    for spec in commands.values():
        inputs.setdefault(spec.payload.__name__, spec.payload)
        if spec.http is not None and spec.http.body is not None:
            inputs.setdefault(spec.http.body.__name__, spec.http.body)
    _, generated = models_json_schema(
        [
            *((model, "validation") for model in inputs.values()),
            (Order, "serialization"),
            (OrderPage, "serialization"),
            (Problem, "serialization"),
            (Health, "serialization"),
            *((m, "serialization") for m in dict.fromkeys(m for r in routes for m in r.schemas)),
        ],
        ref_template=_REF,
    )
    schemas: dict[str, Any] = generated["$defs"]
    # Requests take the input aliases (the seed's id/qty); orders in answers never carry them.
    schemas["LineItemInput"] = _accept_aliases(copy.deepcopy(schemas["LineItem"]), LineItem)
    schemas["LineItemInput"]["title"] = "LineItemInput"
    for name, model in inputs.items():
        schema = _accept_aliases(schemas[name], model)
        items = schema["properties"].get("items", {})
        if items.get("items", {}).get("$ref") == _REF.format(model="LineItem"):
            items["items"] = {"$ref": _REF.format(model="LineItemInput")}
    types = sorted(commands)
    schemas["CommandData"] = {
        "description": "A command's data, by the event's type: "
        + ", ".join(spec.type for spec in commands.values())
        + ".",
        "anyOf": [
            {"$ref": _REF.format(model=m)}
            for m in dict.fromkeys(spec.payload.__name__ for spec in commands.values())
        ],
    }
    schemas["CommandEvent"] = _command_event(types)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation = _operation(route, types)
        operation["operationId"] = route.name
        if bearer and route.public:
            operation["security"] = []  # answered without credentials
        paths.setdefault(route.template, {})[route.method.lower()] = operation
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "orders-core", "version": __version__},
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if bearer:
        document["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
        }
        document["security"] = [{"bearer": []}]
    return document
