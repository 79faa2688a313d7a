"""The OpenAPI document must be true: what it describes, the server takes, and a client that
knows only the document can succeed on every operation (``POST /events`` included)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orders_core.application import COMMANDS, OrderService
from orders_core.edges.http import HttpApi, HttpRequest, HttpResponse
from orders_core.testing import FakeClock, InMemoryStore

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the dev extra")

CE_JSON = "application/cloudevents+json"


@pytest.fixture
def api() -> HttpApi:
    return HttpApi(OrderService(InMemoryStore(), clock=FakeClock()))


@pytest.fixture
def document(api: HttpApi) -> dict[str, Any]:
    response = api.handle(HttpRequest("GET", "/openapi.json"))
    assert response.status == 200
    body: dict[str, Any] = response.json()
    return body


def _valid(document: dict[str, Any], schema: dict[str, Any], value: Any) -> bool:
    full = {**schema, "components": document["components"]}
    validator = jsonschema.Draft202012Validator(full)
    return validator.is_valid(value)


def _body_schema(document: dict[str, Any], path: str, media: str) -> dict[str, Any]:
    schema: dict[str, Any] = document["paths"][path]["post"]["requestBody"]["content"][media][
        "schema"
    ]
    return schema


# Bodies on which the schema and the server must agree (cross-field rules such as "unitPrice
# needs currency" are beyond JSON Schema and left out).
CREATE_BODIES = [
    ({"items": [{"id": "sku-1", "qty": 2}]}, True),  # the seed, the README's first example
    ({"items": [{"sku": "sku-1", "quantity": 2}]}, True),
    ({"items": [{"id": "a", "quantity": 1}, {"sku": "b", "qty": 3}]}, True),
    ({"items": [{"sku": "a", "qty": 1, "unitPrice": 250, "currency": "EUR"}]}, True),
    ({"items": [{"id": "sku-1", "qty": 2}], "customerId": "c-1"}, True),
    ({"items": [{"sku": "a", "id": "b", "quantity": 1}]}, False),  # two names for one field
    ({"items": [{"sku": "a", "quantity": 1, "qty": 1}]}, False),
    ({"items": [{"qty": 1}]}, False),
    ({"items": [{"id": "a"}]}, False),
    ({"items": [{"id": "a", "qty": 1, "colour": "red"}]}, False),
    ({"items": [{"id": "a", "qty": 1.5}]}, False),
    ({"items": [{"id": "a", "qty": 1, "unitPrice": 2.5, "currency": "EUR"}]}, False),
    ({"items": []}, False),
    ({}, False),
]


@pytest.mark.parametrize(("body", "accepted"), CREATE_BODIES)
def test_create_order_schema_agrees_with_the_server(
    api: HttpApi, document: dict[str, Any], body: dict[str, Any], accepted: bool
) -> None:
    schema = _body_schema(document, "/orders", "application/json")
    response = api.handle(
        HttpRequest(
            "POST", "/orders", {"content-type": "application/json"}, {}, json.dumps(body).encode()
        )
    )
    assert (response.status == 201) is accepted, response.body
    assert _valid(document, schema, body) is accepted


STRUCTURED = {
    "specversion": "1.0",
    "id": "evt-1",
    "source": "urn:example:shop",
    "type": "io.orderscore.order.create.v1",
    "datacontenttype": "application/json",
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "data": {"items": [{"id": "sku-1", "qty": 2}], "customerId": "c-1"},
}


def test_a_structured_cloudevent_validates(api: HttpApi, document: dict[str, Any]) -> None:
    schema = _body_schema(document, "/events", CE_JSON)
    assert _valid(document, schema, STRUCTURED)
    for missing in ("specversion", "id", "source", "type"):
        assert not _valid(document, schema, {k: v for k, v in STRUCTURED.items() if k != missing})
    assert not _valid(document, schema, {**STRUCTURED, "type": "io.orderscore.order.created.v1"})
    response = api.handle(
        HttpRequest(
            "POST", "/events", {"content-type": CE_JSON}, {}, json.dumps(STRUCTURED).encode()
        )
    )
    assert response.status == 201, response.body


def test_binary_mode_data_validates_for_every_command(document: dict[str, Any]) -> None:
    schema = _body_schema(document, "/events", "application/json")
    assert _valid(document, schema, STRUCTURED["data"])
    assert _valid(document, schema, {"orderId": "o-1", "expectedVersion": 1})
    assert _valid(document, schema, {"orderId": "o-1", "reason": "changed my mind"})
    assert not _valid(document, schema, {"orderId": "o-1", "colour": "red"})


def test_the_ce_headers_are_documented(document: dict[str, Any]) -> None:
    operation = document["paths"]["/events"]["post"]
    headers = {p["name"]: p for p in operation["parameters"] if p["in"] == "header"}
    for name in ("ce-specversion", "ce-type", "ce-source", "ce-id"):
        assert name in headers, name
        assert "binary mode" in headers[name]["description"].lower()
        assert "example" in headers[name]
    assert set(headers["ce-type"]["schema"]["enum"]) == set(COMMANDS)
    assert headers["ce-specversion"]["schema"]["enum"] == ["1.0"]
    assert set(operation["requestBody"]["content"]) == {CE_JSON, "application/json"}
    assert "415" in operation["responses"]


def _request_from_document(document: dict[str, Any], media: str) -> HttpRequest:
    """What a client that read only the document sends: the media type's example as the
    body, each required header, and in binary mode (the body is the event's data, as the
    CloudEvents HTTP binding says) every documented ``ce-*`` header with its example."""
    operation = document["paths"]["/events"]["post"]
    content = operation["requestBody"]["content"][media]
    headers = {"content-type": media}
    for parameter in operation["parameters"]:
        if parameter["in"] != "header":
            continue
        binary_attribute = media != CE_JSON and parameter["name"].startswith("ce-")
        if parameter.get("required") or (binary_attribute and "example" in parameter):
            headers[parameter["name"].lower()] = str(parameter["example"])
    body = content["example"]
    assert _valid(document, content["schema"], body)
    return HttpRequest("POST", "/events", headers, {}, json.dumps(body).encode())


@pytest.mark.parametrize("media", [CE_JSON, "application/json"])
def test_a_request_built_only_from_the_document_succeeds(
    api: HttpApi, document: dict[str, Any], media: str
) -> None:
    response = api.handle(_request_from_document(document, media))
    assert 200 <= response.status < 300, response.body
    _check_response(document, response)


def _check_response(document: dict[str, Any], response: HttpResponse) -> None:
    spec = document["paths"]["/events"]["post"]["responses"][str(response.status)]
    (media,) = spec["content"].values()
    assert _valid(document, media["schema"], response.json())


def test_no_inline_request_body_schemas(document: dict[str, Any]) -> None:
    """Inline object bodies are what makes generators invent clashing model names
    (openapi-python-client: duplicate ``PostEventJsonBody``); every body is a named schema."""
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            for media, content in operation.get("requestBody", {}).get("content", {}).items():
                assert set(content["schema"]) == {"$ref"}, (path, method, media)
