"""One command table: a command declared once gets its route, event, OpenAPI entry (and
metric, tests/otel) from every reader of the table, with no other file touched."""

from __future__ import annotations

import json

import pytest

from orders_core.application import (
    COMMANDS,
    CommandSpec,
    HttpBinding,
    OrderService,
    command_table,
    targeted,
    transition,
)
from orders_core.domain import OrderStatus
from orders_core.edges.http import HttpApi, HttpRequest
from orders_core.edges.openapi import openapi_document
from orders_core.testing import InMemoryStore

EXPEDITE = CommandSpec(
    "io.test.order.expedite.v1",
    targeted(OrderStatus.CONFIRMED),
    transition,
    "io.test.order.expedited.v1",
    "expedited",
    HttpBinding("POST", "/orders/{orderId}/expedite", "expediteOrder", "Expedite an order"),
    OrderStatus.CONFIRMED,
)
TABLE = command_table(*COMMANDS.values(), EXPEDITE)
SEED = b'{"items":[{"id":"sku-1","qty":2}]}'


def test_an_extra_command_gets_its_route_and_its_event() -> None:
    store = InMemoryStore()
    api = HttpApi(OrderService(store, commands=TABLE))
    headers = {"content-type": "application/json"}
    created = api.handle(HttpRequest("POST", "/orders", headers, body=SEED))
    oid = created.json()["orderId"]
    done = api.handle(HttpRequest("POST", f"/orders/{oid}/expedite", {"if-match": '"1"'}))
    assert (done.status, done.json()["status"]) == (200, "CONFIRMED")
    assert [e.type for e in store.events_for(oid)] == [
        "io.orderscore.order.created.v1",
        "io.test.order.expedited.v1",
    ]
    # The same command as a CloudEvent, through POST /events.
    again = api.handle(HttpRequest("POST", "/orders", headers, body=SEED)).json()["orderId"]
    event = {
        "specversion": "1.0",
        "id": "e-1",
        "source": "urn:test",
        "type": EXPEDITE.type,
        "data": {"orderId": again},
    }
    posted = api.handle(
        HttpRequest(
            "POST",
            "/events",
            {"content-type": "application/cloudevents+json"},
            body=json.dumps(event).encode(),
        )
    )
    assert posted.status == 200
    # The default table knows nothing of it.
    plain = HttpApi(OrderService(InMemoryStore()))
    assert plain.handle(HttpRequest("POST", f"/orders/{oid}/expedite")).status == 404


def test_an_extra_command_gets_its_openapi_entry() -> None:
    api = HttpApi(OrderService(InMemoryStore(), commands=TABLE))
    document = api.handle(HttpRequest("GET", "/openapi.json")).json()
    operation = document["paths"]["/orders/{orderId}/expedite"]["post"]
    assert (operation["operationId"], operation["summary"]) == (
        "expediteOrder",
        "Expedite an order",
    )
    assert "412" in operation["responses"]
    assert (
        EXPEDITE.type
        in document["components"]["schemas"]["CommandEvent"]["properties"]["type"]["enum"]
    )
    assert (
        "/orders/{orderId}/expedite"
        not in openapi_document(HttpApi(OrderService(InMemoryStore())).routes)["paths"]
    )


@pytest.mark.parametrize(
    "clash",
    [
        {"type": "io.orderscore.order.create.v1"},
        {"event_type": "io.orderscore.order.created.v1"},
        {"metric": "created"},
        {"http": HttpBinding("POST", "/orders", "again", "Again")},
    ],
)
def test_a_fact_declared_twice_is_refused(clash: dict[str, object]) -> None:
    from dataclasses import replace

    with pytest.raises(ValueError, match="declared twice"):
        command_table(*COMMANDS.values(), replace(EXPEDITE, **clash))  # type: ignore[arg-type]
