"""The console through ``orders-local serve --store postgres`` (uvicorn) in a child process,
from loopback: the overview, an order's timeline with its events, and a redelivery of a
failed event recorded once however often it is asked for."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.postgres.support import Postgres, serve, stop

pytest.importorskip("psycopg")

pytestmark = pytest.mark.slow
API = "/console/api/v1"
BODY = b'{"items":[{"id":"sku-1","qty":2}],"customerId":"c-pg"}'
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def schema(postgres: Postgres) -> Iterator[str]:
    name = postgres.new_schema()
    try:
        yield name
    finally:
        postgres.drop(name)


def test_the_console_answers_on_postgres(postgres: Postgres, schema: str) -> None:
    # No sink, so no relay: the events stay undelivered until this test marks one failed,
    # and nothing retries (or delivers) it between the two redelivery requests.
    server = serve(postgres, schema, "--sink", "none", "--pool-min", "1", "--pool-max", "4")
    inspector = postgres.store(schema, min_size=1, max_size=1)
    try:
        client = server.client()
        created = client.request("POST", "/orders", BODY, {"traceparent": TRACEPARENT})
        assert created.status == 201, created.body
        order_id = created.json()["orderId"]
        assert client.request("POST", f"/orders/{order_id}/confirm").status == 200
        assert client.request("POST", "/orders", BODY).status == 201

        overview = client.request("GET", f"{API}/overview")
        assert overview.status == 200, overview.body
        answer = overview.json()
        assert answer["capabilities"]["orders"] is True
        assert answer["capabilities"]["timeline"] is True
        assert answer["capabilities"]["outbox"] is True
        assert answer["counts"] == {"PENDING": 1, "CONFIRMED": 1, "FULFILLED": 0, "CANCELLED": 0}
        assert (answer["outbox"]["undelivered"], answer["outbox"]["failed"]) == (3, 0)

        listed = client.request("GET", f"{API}/orders?status=CONFIRMED")
        assert listed.status == 200
        assert [o["orderId"] for o in listed.json()["orders"]] == [order_id]

        detail = client.request("GET", f"{API}/orders/{order_id}")
        assert detail.status == 200, detail.body
        timeline = detail.json()["timeline"]
        assert [(t["version"], t["status"]) for t in timeline] == [
            (1, "PENDING"),
            (2, "CONFIRMED"),
        ]
        assert [t["event"]["eventId"] for t in timeline] == [f"{order_id}.v1", f"{order_id}.v2"]
        assert timeline[0]["event"]["traceId"] == TRACEPARENT.split("-")[1]
        assert timeline[0]["command"]["type"] == "io.orderscore.order.create.v1"
        assert timeline[0]["command"]["principalKind"] == "anonymous"
        assert [t["event"]["state"] for t in timeline] == ["pending", "pending"]

        # The first event fails once, as the relay would mark it; then it is redelivered.
        (first,) = [p for p in inspector.pending() if p.event.id == f"{order_id}.v1"]
        inspector.mark_failed([first.position], "SinkDown: refused")
        page = client.request("GET", "/console")
        found = re.match(r"orders-console-csrf=([0-9a-f]{64});", page.headers["set-cookie"])
        assert found is not None
        token = found.group(1)
        headers = {
            "cookie": f"orders-console-csrf={token}",
            "x-console-csrf": token,
            "origin": f"http://127.0.0.1:{server.port}",
            "sec-fetch-site": "same-origin",
        }
        path = f"{API}/outbox/{order_id}.v1/redeliver"
        asked = client.request("POST", path, b"", headers)
        assert asked.status == 202, asked.body
        again = client.request("POST", path, b"", headers)
        assert again.status == 200, again.body
        assert again.json()["created"] is False
        assert again.json()["requestId"] == asked.json()["requestId"]
        assert postgres.sql(f"SELECT count(*) FROM {schema}.redeliveries") == [(1,)]
        pending = client.request("POST", f"{API}/outbox/{order_id}.v2/redeliver", b"", headers)
        assert pending.status == 409  # not failed: it waits its turn
        event = client.request("GET", f"{API}/orders/{order_id}").json()["timeline"][0]["event"]
        assert event["state"] == "failed"
        assert event["redeliveryRequestedAt"] is not None
        client.close()
    finally:
        inspector.close()
        stop(server, postgres)
