"""The console's read API without a browser: what each view answers, what it refuses, and
that the OpenAPI document describes it truly."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import pytest

from orders_core.application import CONFIRM, Command, OrderService, http_key
from orders_core.edges.http import HttpApi, HttpRequest
from orders_local.console import CSP
from orders_local.sqlite import SQLiteStore
from tests.local.console_support import API, SEED, call, console_api

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the dev extra")
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
JAEGER = "http://localhost:16686/trace/{traceId}"


@pytest.fixture
def api(store: SQLiteStore) -> HttpApi:
    return console_api(store, traces_ui_url=JAEGER)


def create(api: HttpApi, customer: str = "c-1", **headers: str) -> str:
    body = SEED.replace(b"c-1", customer.encode())
    reply = call(api, "POST", "/orders", body=body, headers=headers)
    assert reply.status == 201, reply.body
    order_id: str = reply.json()["orderId"]
    return order_id


def get(api: HttpApi, path: str, **query: str) -> Any:
    reply = call(api, "GET", f"{API}{path}", query=query)
    assert reply.status == 200, reply.body
    assert reply.headers["content-type"] == "application/json"
    return reply.json()


# -- the page --------------------------------------------------------------------------


def test_the_page_is_served_with_a_strict_policy_and_a_csrf_cookie(api: HttpApi) -> None:
    page = call(api, "GET", "/console")
    assert page.status == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    policy = page.headers["content-security-policy"]
    assert policy == CSP
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    cookie = page.headers["set-cookie"]
    assert re.fullmatch(r"orders-console-csrf=[0-9a-f]{64}; Path=/console; SameSite=Strict", cookie)
    assert b'src="/console/assets/console.js"' in page.body


@pytest.mark.parametrize(
    ("name", "media"),
    [
        ("console.css", "text/css; charset=utf-8"),
        ("console.js", "text/javascript; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ],
)
def test_assets_are_served_from_the_package(api: HttpApi, name: str, media: str) -> None:
    reply = call(api, "GET", f"/console/assets/{name}")
    assert reply.status == 200
    assert reply.headers["content-type"] == media
    shipped = resources.files("orders_local.console").joinpath("static", name).read_bytes()
    assert reply.body == shipped


def test_the_page_loads_nothing_from_elsewhere_and_writes_no_inline_code() -> None:
    """Works offline: no CDN, no font or script from another origin; CSP-clean: no inline
    script or style, no event-handler attributes, no HTML built from strings."""
    static = resources.files("orders_local.console").joinpath("static")
    for name in ("index.html", "console.css", "console.js"):
        text = static.joinpath(name).read_text()
        assert not re.search(r"https?://", text), name
        assert "@import" not in text
    html = static.joinpath("index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert "<style" not in html
    assert not re.search(r"\son[a-z]+=", html)
    assert " style=" not in html
    script = static.joinpath("console.js").read_text()
    assert "innerHTML" not in script
    assert "eval(" not in script


@pytest.mark.parametrize("name", ["index.html", "..%2fconsole.js", "nope.js", "%2e%2e"])
def test_only_the_listed_assets_are_served(api: HttpApi, name: str) -> None:
    reply = call(api, "GET", f"/console/assets/{name}")
    assert reply.status == 404
    assert reply.headers["content-type"] == "application/problem+json"


# -- the views -------------------------------------------------------------------------


def test_the_overview_counts_orders_by_status_and_shows_the_outbox(api: HttpApi) -> None:
    first = create(api)
    create(api, "c-2")
    call(api, "POST", f"/orders/{first}/confirm")
    overview = get(api, "/overview")
    assert overview["apiVersion"] == "v1"
    assert overview["capabilities"] == {
        "orders": True,
        "timeline": True,
        "outbox": True,
        "events": None,
    }
    assert overview["counts"] == {"PENDING": 1, "CONFIRMED": 1, "FULFILLED": 0, "CANCELLED": 0}
    assert overview["outbox"]["undelivered"] == 3
    assert overview["outbox"]["failed"] == 0
    assert overview["tracesLinked"] is True
    assert get(api, "/overview", customerId="c-2")["counts"]["PENDING"] == 1


def test_orders_list_newest_first_filtered_and_paged_with_cursors(api: HttpApi) -> None:
    made = [create(api, f"c-{n % 2}") for n in range(5)]
    call(api, "POST", f"/orders/{made[1]}/cancel")
    listed = get(api, "/orders")
    assert [o["orderId"] for o in listed["orders"]] == made[::-1]
    assert listed["nextCursor"] is None
    assert [o["orderId"] for o in get(api, "/orders", status="CANCELLED")["orders"]] == [made[1]]
    assert [o["orderId"] for o in get(api, "/orders", customerId="c-0")["orders"]] == [
        made[4],
        made[2],
        made[0],
    ]
    first = get(api, "/orders", limit="2")
    second = get(api, "/orders", limit="2", cursor=first["nextCursor"])
    third = get(api, "/orders", limit="2", cursor=second["nextCursor"])
    pages = first["orders"] + second["orders"] + third["orders"]
    assert [o["orderId"] for o in pages] == made[::-1]
    assert third["nextCursor"] is None
    row = first["orders"][0]
    assert set(row) == {
        "orderId",
        "customerId",
        "status",
        "version",
        "createdAt",
        "updatedAt",
        "itemCount",
        "total",
    }


def test_an_orders_page_has_its_timeline_with_commands_versions_and_deliveries(
    api: HttpApi, store: SQLiteStore
) -> None:
    order_id = create(api, **{"idempotency-key": "checkout-7f3a9c21", "traceparent": TRACEPARENT})
    call(api, "POST", f"/orders/{order_id}/confirm")
    (first_position, _) = (p.position for p in store.pending())
    store.mark_failed([first_position], "webhook answered 503")
    detail = get(api, f"/orders/{order_id}")
    assert detail["order"]["status"] == "CONFIRMED"
    created, confirmed = detail["timeline"]
    assert (created["version"], created["status"]) == (1, "PENDING")
    assert (confirmed["version"], confirmed["status"]) == (2, "CONFIRMED")
    assert created["command"] == {
        "type": "io.orderscore.order.create.v1",
        "commandId": "checkout…",
        "source": "urn:orders-core:http",
        "principalKind": "anonymous",
        "idempotencyKey": "checkout…",
        "keyNamespace": "http",
    }
    assert "checkout-7f3a9c21" not in json.dumps(detail)  # the whole key is nowhere
    event = created["event"]
    assert event["eventId"] == f"{order_id}.v1"
    assert (event["state"], event["attempts"]) == ("failed", 1)
    assert event["lastError"] == "webhook answered 503"
    assert event["traceId"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert event["traceUrl"] == "http://localhost:16686/trace/4bf92f3577b34da6a3ce929d0e0e4736"
    assert confirmed["event"]["state"] == "pending"
    assert confirmed["event"]["traceId"] is None  # the confirm carried no trace context
    assert confirmed["command"]["idempotencyKey"] is None


def test_the_outbox_lists_undelivered_and_failed_events_and_the_lag(
    api: HttpApi, store: SQLiteStore
) -> None:
    ids = [create(api) for _ in range(3)]
    positions = [p.position for p in store.pending()]
    store.mark_delivered(positions[:1])
    store.mark_failed(positions[1:2], "refused")
    undelivered = get(api, "/outbox")
    assert [e["orderId"] for e in undelivered["events"]] == ids[1:]
    assert [e["state"] for e in undelivered["events"]] == ["failed", "pending"]
    assert undelivered["outbox"]["undelivered"] == 2
    assert undelivered["outbox"]["failed"] == 1
    assert undelivered["outbox"]["lagSeconds"] >= 0
    assert undelivered["outbox"]["lastDeliveredAt"] is not None
    failed = get(api, "/outbox", state="failed")
    assert [e["orderId"] for e in failed["events"]] == [ids[1]]
    paged = get(api, "/outbox", limit="1")
    assert paged["nextAfter"] == positions[1]
    assert [e["orderId"] for e in get(api, "/outbox", after=str(positions[1]))["events"]] == [
        ids[2]
    ]


def test_an_unchanged_view_answers_304_to_its_etag(api: HttpApi) -> None:
    create(api)
    first = call(api, "GET", f"{API}/orders")
    etag = first.headers["etag"]
    again = call(api, "GET", f"{API}/orders", headers={"if-none-match": etag})
    assert (again.status, again.body) == (304, b"")
    create(api)
    changed = call(api, "GET", f"{API}/orders", headers={"if-none-match": etag})
    assert changed.status == 200
    assert changed.headers["etag"] != etag


def test_a_store_without_the_ports_still_shows_an_order_by_id(store: SQLiteStore) -> None:
    api = console_api(store, name="dynamodb", declare=False)
    order_id = create(api)
    overview = get(api, "/overview")
    assert overview["capabilities"]["orders"] is False
    assert overview["capabilities"]["events"] == "the table's stream"
    assert overview["counts"] is None
    assert overview["outbox"] is None
    detail = get(api, f"/orders/{order_id}")
    assert detail["order"]["orderId"] == order_id
    assert detail["timeline"] is None
    for path in ("/orders", "/outbox"):
        assert call(api, "GET", f"{API}{path}").status == 404


# -- hostile input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/orders", {"status": "SHIPPED"}),
        ("/orders", {"status": "pending"}),
        ("/orders", {"status": "PENDING' OR 1=1 --"}),
        ("/orders", {"customerId": "c 1"}),
        ("/orders", {"customerId": "c" * 65}),
        ("/orders", {"customerId": "c-\u0661"}),
        ("/orders", {"limit": "0"}),
        ("/orders", {"limit": "101"}),
        ("/orders", {"limit": "\u00b9"}),
        ("/orders", {"limit": "1e2"}),
        ("/orders", {"cursor": "x" * 5000}),
        ("/orders", {"cursor": "eyJyIjoxfQ.AAAAAAAAAAAAAAAAAAAAAA"}),
        ("/orders", {"cursor": "not a cursor"}),
        ("/overview", {"customerId": "../etc"}),
        ("/outbox", {"state": "delivered"}),
        ("/outbox", {"after": "-1"}),
        ("/outbox", {"after": "9" * 40}),
        ("/outbox", {"limit": ""}),
        ("/orders/has%20space", {}),
    ],
)
def test_hostile_query_values_are_a_400_problem_without_a_trace(
    api: HttpApi, path: str, query: dict[str, str]
) -> None:
    create(api)
    reply = call(api, "GET", f"{API}{path}", query=query)
    assert reply.status == 400, reply.body
    assert reply.headers["content-type"] == "application/problem+json"
    problem = reply.json()
    assert problem["status"] == 400
    assert "Traceback" not in reply.body.decode()
    assert "File " not in problem["detail"]


def test_an_unknown_order_is_a_404(api: HttpApi) -> None:
    assert call(api, "GET", f"{API}/orders/no-such-order").status == 404


def test_a_store_failure_is_a_bare_500(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    api = console_api(store)

    def broken(**_: object) -> dict[str, int]:
        raise RuntimeError("secret detail from deep inside /srv/app/db.py")

    monkeypatch.setattr(store, "status_counts", broken)
    reply = call(api, "GET", f"{API}/overview")
    assert reply.status == 500
    text = reply.body.decode()
    assert "secret" not in text
    assert "Traceback" not in text
    assert reply.json()["title"] == "Internal error"


# -- the OpenAPI document --------------------------------------------------------------


def _schema(document: dict[str, Any], path: str, method: str, status: str) -> dict[str, Any]:
    content = document["paths"][path][method]["responses"][status]["content"]
    return {**content["application/json"]["schema"], "components": document["components"]}


def test_the_read_api_is_documented_versioned_and_true(api: HttpApi, store: SQLiteStore) -> None:
    document = call(api, "GET", "/openapi.json").json()
    paths = document["paths"]
    assert {
        "/console",
        "/console/assets/{name}",
        f"{API}/overview",
        f"{API}/orders",
        f"{API}/orders/{{orderId}}",
        f"{API}/outbox",
        f"{API}/outbox/{{eventId}}/redeliver",
    } <= set(paths)
    assert "/orders" in paths  # the orders API is still all there
    for name in ("Overview", "OrderList", "OrderDetail", "OutboxList", "Redelivery"):
        assert name in document["components"]["schemas"]
    order_id = create(api, **{"traceparent": TRACEPARENT})
    store.mark_failed([store.pending()[0].position], "refused")
    answers = {
        f"{API}/overview": get(api, "/overview"),
        f"{API}/orders": get(api, "/orders"),
        f"{API}/orders/{{orderId}}": get(api, f"/orders/{order_id}"),
        f"{API}/outbox": get(api, "/outbox"),
    }
    for path, answer in answers.items():
        validator = jsonschema.Draft202012Validator(_schema(document, path, "get", "200"))
        assert validator.is_valid(answer), list(validator.iter_errors(answer))[:3]


def test_the_orders_api_alone_documents_no_console() -> None:
    from orders_core.testing import InMemoryStore

    plain = HttpApi(OrderService(InMemoryStore()))
    document = plain.handle(HttpRequest("GET", "/openapi.json")).json()
    assert not any(path.startswith("/console") for path in document["paths"])


def test_commands_from_queues_show_their_service_principal(
    api: HttpApi, store: SQLiteStore
) -> None:
    from orders_core.application import Principal

    order_id = create(api)
    OrderService(store).handle(
        Command(CONFIRM, "urn:queue", "m-1", {"orderId": order_id}),
        principal=Principal.service("arn:aws:sqs:eu-west-1:1:q"),
        idempotency_key=http_key("m-1"),
    )
    timeline = get(api, f"/orders/{order_id}")["timeline"]
    assert timeline[1]["command"]["principalKind"] == "service"


def test_a_corrupt_record_shows_as_one_by_position_and_event_id(
    api: HttpApi, store: SQLiteStore
) -> None:
    """The outbox view and the order's timeline are where an operator looks for the row that
    holds the outbox back; both failed on its bad JSON."""
    import sqlite3

    ids = [create(api) for _ in range(2)]
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE outbox SET record = '{not json' WHERE order_id = ?", (ids[0],))
    first, second = get(api, "/outbox")["events"]
    assert (first["eventId"], first["orderId"], first["version"]) == (f"{ids[0]}.v1", ids[0], 1)
    assert first["eventType"] == "(corrupt record)"
    assert first["lastError"].startswith("corrupt record: JSONDecodeError")
    assert first["position"] < second["position"]
    assert second["eventType"] == "io.orderscore.order.created.v1"
    (entry,) = get(api, f"/orders/{ids[0]}")["timeline"]
    assert (entry["version"], entry["status"]) == (1, "(corrupt record)")
