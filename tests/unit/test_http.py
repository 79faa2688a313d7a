"""The HTTP binding: every route and every error status, as values (no sockets here)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orders_core.application import Deadline, OrderService
from orders_core.edges.http import JSON, ROUTES, HttpApi, HttpRequest, HttpResponse
from orders_core.telemetry import valid_traceparent
from orders_core.testing import FakeClock, InMemoryStore

SEED = b'{"items":[{"id":"sku-1","qty":2}]}'
TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
CE = {
    "specversion": "1.0",
    "id": "evt-1",
    "source": "urn:test",
    "type": "io.orderscore.order.create.v1",
    "data": {"items": [{"sku": "a", "quantity": 1}], "customerId": "c-1"},
}


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


@pytest.fixture
def api(store: InMemoryStore) -> HttpApi:
    return HttpApi(OrderService(store, clock=FakeClock()), max_body=8192)


def call(api: HttpApi, method: str, path: str, body: bytes = b"", **headers: str) -> HttpResponse:
    hdrs = {k.replace("_", "-"): v for k, v in headers.items()}
    query: dict[str, str] = {}
    if "?" in path:
        path, qs = path.split("?", 1)
        query = dict(part.split("=", 1) for part in qs.split("&"))
    return api.handle(HttpRequest(method, path, hdrs, query, body))


def create(api: HttpApi, body: bytes = SEED, **headers: str) -> HttpResponse:
    return call(api, "POST", "/orders", body, content_type="application/json", **headers)


def same_trace(traceparent: str | None, expected: str) -> bool:
    """Same trace id; the span id is the command span's when an SDK is active."""
    return traceparent is not None and traceparent.split("-")[1] == expected.split("-")[1]


def problem(response: HttpResponse, status: int) -> dict[str, Any]:
    assert response.status == status, response.body
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:orders-core:problem:")
    return body


# -- success paths ---------------------------------------------------------------------


def test_the_seed_request_creates_a_pending_order(api: HttpApi) -> None:
    response = create(api)
    body = response.json()
    assert response.status == 201
    assert body["status"] == "PENDING"
    assert body["items"] == [{"sku": "sku-1", "quantity": 2}]
    assert response.headers["location"] == f"/orders/{body['orderId']}"
    assert response.headers["etag"] == '"1"'


def test_get_returns_the_order_with_its_etag(api: HttpApi) -> None:
    created = create(api)
    response = call(api, "GET", created.headers["location"])
    assert (response.status, response.body) == (200, created.body)
    assert response.headers["etag"] == '"1"'


@pytest.mark.parametrize(
    ("steps", "final"),
    [
        (["confirm", "fulfill"], "FULFILLED"),
        (["cancel"], "CANCELLED"),
        (["confirm", "cancel"], "CANCELLED"),
    ],
)
def test_transitions_follow_etags(api: HttpApi, steps: list[str], final: str) -> None:
    location = create(api).headers["location"]
    etag = '"1"'
    for step in steps:
        response = call(api, "POST", f"{location}/{step}", if_match=etag)
        assert response.status == 200, response.body
        etag = response.headers["etag"]
    assert call(api, "GET", location).json()["status"] == final


def test_cancel_takes_an_optional_reason(api: HttpApi) -> None:
    location = create(api).headers["location"]
    body = b'{"reason":"changed my mind"}'
    response = call(api, "POST", f"{location}/cancel", body, content_type="application/json")
    assert response.json()["cancelReason"] == "changed my mind"


def test_listing_is_paginated_with_an_opaque_cursor(api: HttpApi) -> None:
    for _ in range(3):
        create(api, b'{"items":[{"id":"a","qty":1}],"customerId":"c-9"}')
    first = call(api, "GET", "/orders?customerId=c-9&limit=2")
    assert first.status == 200
    page = first.json()
    assert len(page["orders"]) == 2
    second = call(api, "GET", f"/orders?customerId=c-9&limit=2&cursor={page['nextCursor']}").json()
    assert len(second["orders"]) == 1
    assert "nextCursor" not in second
    ids = {o["orderId"] for o in page["orders"] + second["orders"]}
    assert len(ids) == 3


def test_events_accepts_structured_mode(api: HttpApi, store: InMemoryStore) -> None:
    body = json.dumps(CE).encode()
    response = call(api, "POST", "/events", body, content_type="application/cloudevents+json")
    assert response.status == 201
    again = call(api, "POST", "/events", body, content_type="application/cloudevents+json")
    assert again.body == response.body
    assert again.headers["idempotent-replayed"] == "true"
    assert len(store.list_by_customer("c-1").orders) == 1


def test_events_accepts_binary_mode_with_trace_context(api: HttpApi, store: InMemoryStore) -> None:
    headers = {f"ce_{k}": v for k, v in CE.items() if k != "data"}
    response = call(
        api,
        "POST",
        "/events",
        json.dumps(CE["data"]).encode(),
        content_type="application/json",
        ce_traceparent=TP,
        **headers,
    )
    assert response.status == 201, response.body
    (event,) = store.events_for(response.json()["orderId"])
    assert same_trace(event.traceparent, TP)


def test_events_drive_transitions(api: HttpApi) -> None:
    order_id = create(api).json()["orderId"]
    confirm = {
        **CE,
        "id": "evt-2",
        "type": "io.orderscore.order.confirm.v1",
        "data": {"orderId": order_id},
    }
    response = call(
        api,
        "POST",
        "/events",
        json.dumps(confirm).encode(),
        content_type="application/cloudevents+json",
    )
    assert (response.status, response.json()["status"]) == (200, "CONFIRMED")


def test_an_http_traceparent_reaches_the_stored_event(api: HttpApi, store: InMemoryStore) -> None:
    response = create(api, traceparent=TP)
    (event,) = store.events_for(response.json()["orderId"])
    assert same_trace(event.traceparent, TP)


def test_a_malformed_traceparent_is_ignored_not_refused(api: HttpApi, store: InMemoryStore) -> None:
    response = create(api, traceparent="00-zz-yy-01")
    assert response.status == 201
    (event,) = store.events_for(response.json()["orderId"])
    # No trace to continue: none at all with the no-op API, a fresh valid one with an SDK.
    assert event.traceparent is None or valid_traceparent(event.traceparent)


def test_health(api: HttpApi) -> None:
    assert call(api, "GET", "/healthz").json() == {"status": "ok"}


# -- every error status ------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"items": [',
        b"\xff\xfe{}",
        b"[" * 100 + b"]" * 100,
        b'{"items":[{"id":"a","qty":' + b"9" * 4400 + b"}]}",
    ],
    ids=["syntax", "truncated", "bad-utf8", "deep-nesting", "huge-number"],
)
def test_400_for_malformed_bodies(api: HttpApi, store: InMemoryStore, body: bytes) -> None:
    problem(create(api, body), 400)
    assert store.pending() == []


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/orders", {"idempotency_key": "x" * 256}),
        ("/orders", {"idempotency_key": ""}),
    ],
)
def test_400_for_bad_headers(api: HttpApi, path: str, headers: dict[str, str]) -> None:
    problem(call(api, "POST", path, SEED, content_type="application/json", **headers), 400)


def test_400_for_a_malformed_if_match(api: HttpApi) -> None:
    location = create(api).headers["location"]
    problem(call(api, "POST", f"{location}/confirm", if_match="1"), 400)


@pytest.mark.parametrize(
    "path",
    [
        "/orders",
        "/orders?customerId=c&limit=0",
        "/orders?customerId=c&limit=abc",
        "/orders?customerId=c&cursor=bogus",
        "/orders?customerId=c&limit=",  # adapters keep blank values
        "/orders?customerId=has space",
        "/orders?customerId=caf\u00e9",
        "/orders?customerId=c\n",
    ],
)
def test_400_for_bad_list_queries(api: HttpApi, path: str) -> None:
    problem(call(api, "GET", path), 400)


@pytest.mark.parametrize(
    "event",
    [
        {k: v for k, v in CE.items() if k != "id"},
        {k: v for k, v in CE.items() if k != "source"},
        {**CE, "specversion": "0.3"},
        {**CE, "time": "not a time"},
        {**CE, "data": "a string"},
        {**CE, "bad_ext": "x"},
    ],
    ids=["no-id", "no-source", "old-spec", "bad-time", "string-data", "bad-extension-name"],
)
def test_400_for_invalid_cloudevents(api: HttpApi, event: dict[str, Any]) -> None:
    body = json.dumps(event).encode()
    problem(call(api, "POST", "/events", body, content_type="application/cloudevents+json"), 400)


def test_404_for_unknown_paths_and_orders(api: HttpApi) -> None:
    problem(call(api, "GET", "/nope"), 404)
    problem(call(api, "GET", "/orders/missing"), 404)
    problem(call(api, "POST", "/orders/missing/confirm"), 404)


def test_405_names_the_allowed_methods(api: HttpApi) -> None:
    response = call(api, "DELETE", "/orders")
    problem(response, 405)
    assert response.headers["allow"] == "POST, GET, HEAD"


def test_409_for_a_bad_transition(api: HttpApi) -> None:
    location = create(api).headers["location"]
    body = problem(call(api, "POST", f"{location}/fulfill"), 409)
    assert "PENDING" in body["detail"]


@pytest.mark.parametrize("etag", ['"2"', 'W/"1"', '"abc"'])
def test_412_for_a_stale_or_foreign_etag(api: HttpApi, etag: str) -> None:
    location = create(api).headers["location"]
    problem(call(api, "POST", f"{location}/confirm", if_match=etag), 412)
    assert call(api, "GET", location).json()["status"] == "PENDING"


def test_413_for_an_oversized_body(api: HttpApi, store: InMemoryStore) -> None:
    body = b'{"items":[' + b",".join([b'{"id":"a","qty":1}'] * 600) + b"]}"
    problem(create(api, body), 413)
    assert store.pending() == []


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/orders", "text/plain"),
        ("/orders", "application/x-www-form-urlencoded"),
        ("/events", "application/json"),
        ("/events", "application/cloudevents-batch+json"),
    ],
)
def test_415_for_wrong_media_types(api: HttpApi, path: str, content_type: str) -> None:
    problem(call(api, "POST", path, json.dumps(CE).encode(), content_type=content_type), 415)


def test_422_lists_the_failing_fields(api: HttpApi) -> None:
    body = problem(create(api, b'{"items":[{"id":"ok","qty":0},{"id":"bad sku","qty":1}]}'), 422)
    pointers = {e["pointer"] for e in body["errors"]}
    # Pointers name the fields as the client spelled them (the seed aliases here).
    assert pointers == {"/items/0/qty", "/items/1/id"}


def test_422_for_a_json_array_body(api: HttpApi) -> None:
    problem(create(api, b"[1,2]"), 422)


def test_422_for_an_unknown_command_type(api: HttpApi) -> None:
    event = {**CE, "type": "com.example.unknown.v1"}
    problem(
        call(
            api,
            "POST",
            "/events",
            json.dumps(event).encode(),
            content_type="application/cloudevents+json",
        ),
        422,
    )


def test_500_leaks_nothing(store: InMemoryStore) -> None:
    class Exploding(InMemoryStore):
        def get(self, order_id: str) -> None:
            raise RuntimeError("password=hunter2 at /srv/db.sqlite line 42")

    api = HttpApi(OrderService(Exploding()))
    response = call(api, "GET", "/orders/x")
    body = problem(response, 500)
    assert body["detail"] == "Internal error"
    assert b"hunter2" not in response.body
    assert b"Traceback" not in response.body


def test_503_with_retry_after_when_the_deadline_has_passed(
    api: HttpApi, store: InMemoryStore
) -> None:
    request = HttpRequest("POST", "/orders", {"content-type": "application/json"}, body=SEED)
    response = api.handle(request, Deadline.after(-1))
    problem(response, 503)
    assert response.headers["retry-after"] == "1"
    assert store.pending() == []


# -- the OpenAPI document ----------------------------------------------------------------


def test_openapi_documents_every_route(api: HttpApi) -> None:
    document = call(api, "GET", "/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    for route in ROUTES:
        assert route.method.lower() in document["paths"][route.template], route


def test_real_responses_validate_against_the_openapi_schemas(api: HttpApi) -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the dev extra")
    document = call(api, "GET", "/openapi.json").json()

    def check(response: HttpResponse, template: str, method: str) -> None:
        spec = document["paths"][template][method]["responses"][str(response.status)]
        (media,) = spec["content"].values()
        schema = {**media["schema"], "components": document["components"]}
        jsonschema.validate(response.json(), schema, cls=jsonschema.Draft202012Validator)

    created = create(
        api, b'{"items":[{"id":"a","qty":1,"unitPrice":5,"currency":"EUR"}],"customerId":"c-1"}'
    )
    check(created, "/orders", "post")
    check(call(api, "GET", created.headers["location"]), "/orders/{orderId}", "get")
    check(call(api, "GET", "/orders?customerId=c-1&limit=1"), "/orders", "get")
    check(create(api, b'{"items":[]}'), "/orders", "post")
    check(call(api, "GET", "/orders/nope"), "/orders/{orderId}", "get")
    check(call(api, "GET", "/healthz"), "/healthz", "get")


def test_422_for_mixed_pricing(api: HttpApi) -> None:
    body = problem(
        create(
            api, b'{"items":[{"id":"a","qty":1,"unitPrice":5,"currency":"EUR"},{"id":"b","qty":1}]}'
        ),
        422,
    )
    assert body["errors"][0]["pointer"] == "/items"
    assert "unitPrice" in body["errors"][0]["detail"]


def test_an_authenticator_decides_the_principal_of_every_route_but_the_public_ones() -> None:
    from collections.abc import Mapping

    from orders_core.application import Principal
    from orders_core.errors import Unauthenticated

    alice = Principal.jwt("https://issuer.test/", "alice")
    seen: list[str] = []

    def authenticate(headers: Mapping[str, str]) -> Principal:
        seen.append(headers.get("authorization", ""))
        if headers.get("authorization") != "Bearer good":
            raise Unauthenticated("bad token", 'Bearer realm="orders", error="invalid_token"')
        return alice

    api = HttpApi(OrderService(InMemoryStore()), authenticate=authenticate)
    body = b'{"items":[{"id":"sku-1","qty":2}]}'
    refused = api.handle(HttpRequest("POST", "/orders", {"content-type": JSON}, body=body))
    assert refused.status == 401
    assert refused.headers["www-authenticate"] == 'Bearer realm="orders", error="invalid_token"'
    assert refused.headers["content-type"] == "application/problem+json"
    headers = {"content-type": JSON, "authorization": "Bearer good"}
    created = api.handle(HttpRequest("POST", "/orders", headers, body=body))
    assert created.status == 201
    order_id = created.json()["orderId"]
    # The principal is the authenticator's, whatever the adapter said.
    spoofed = HttpRequest("GET", f"/orders/{order_id}", {}, principal=alice)
    assert api.handle(spoofed).status == 401
    seen.clear()
    assert api.handle(HttpRequest("GET", "/healthz")).status == 200
    assert api.handle(HttpRequest("GET", "/openapi.json")).status == 200
    assert seen == []


def largest_valid_order(indent: int | None) -> bytes:
    """100 items, each field at its longest (the longer input aliases too)."""
    from orders_core.domain import MAX_ITEMS, MAX_QUANTITY
    from orders_core.domain._order import MAX_UNIT_PRICE

    item = {"sku": "S" * 64, "quantity": MAX_QUANTITY, "unit_price": MAX_UNIT_PRICE,
            "currency": "USD"}  # fmt: skip
    order = {"items": [item] * MAX_ITEMS, "customer_id": "c" * 64}
    return json.dumps(order, indent=indent).encode()


@pytest.mark.parametrize("indent", [None, 2])
def test_the_largest_valid_order_fits_the_default_body_limit(indent: int | None) -> None:
    """The default limit is sized for the largest valid order, not 1 MiB: a limit only buys
    an attacker more parsing per request."""
    from orders_core.edges.http import DEFAULT_MAX_BODY

    body = largest_valid_order(indent)
    assert len(body) <= DEFAULT_MAX_BODY <= 64 * 1024
    api = HttpApi(OrderService(InMemoryStore(), clock=FakeClock()))  # the default limit
    response = create(api, body)
    assert response.status == 201, response.body
    assert len(response.json()["items"]) == 100
    problem(create(api, b" " * (DEFAULT_MAX_BODY - len(body)) + body + b" "), 413)
