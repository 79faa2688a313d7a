"""End to end over real sockets: every route and error status, CloudEvents modes, races."""

from __future__ import annotations

import json
import logging
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from orders_local.runtime import LocalRuntime
from tests.local.support import Client, Collected, Reply

SEED = b'{"items":[{"id":"sku-1","qty":2}]}'
TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def problem(reply: Reply, status: int) -> None:
    assert reply.status == status, reply.body
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["status"] == status


def test_the_seed_request(client: Client) -> None:
    reply = client.request("POST", "/orders", SEED)
    assert reply.status == 201
    assert reply.json()["status"] == "PENDING"
    assert reply.json()["orderId"]
    assert reply.headers["location"].startswith("/orders/")


def test_routes_over_one_keep_alive_connection(client: Client) -> None:
    body = b'{"items":[{"id":"a","qty":1}],"customerId":"c-1"}'
    location = client.request("POST", "/orders", body).headers["location"]
    assert client.request("GET", location).json()["status"] == "PENDING"
    confirmed = client.request("POST", f"{location}/confirm", headers={"if-match": '"1"'})
    assert (confirmed.status, confirmed.headers["etag"]) == (200, '"2"')
    assert client.request("POST", f"{location}/fulfill").json()["status"] == "FULFILLED"
    listing = client.request("GET", "/orders?customerId=c-1&limit=10").json()
    assert [o["status"] for o in listing["orders"]] == ["FULFILLED"]
    second = client.request("POST", "/orders", body).headers["location"]
    assert (
        client.request("POST", f"{second}/cancel", b'{"reason":"x"}').json()["status"]
        == "CANCELLED"
    )
    assert client.request("GET", "/openapi.json").json()["openapi"] == "3.1.0"


def test_every_error_status_over_sockets(client: Client, runtime: LocalRuntime) -> None:
    location = client.request("POST", "/orders", SEED).headers["location"]
    problem(client.request("POST", "/orders", b"{nope"), 400)
    problem(client.request("POST", "/orders", SEED, {"idempotency-key": "x" * 300}), 400)
    problem(client.request("GET", "/orders/none"), 404)
    problem(client.request("DELETE", location), 405)
    problem(client.request("POST", f"{location}/fulfill"), 409)
    problem(client.request("POST", f"{location}/confirm", headers={"if-match": '"9"'}), 412)
    problem(client.request("POST", "/orders", b"x" * (64 * 1024 + 1)), 413)
    problem(client.request("POST", "/orders", SEED, {"content-type": "text/plain"}), 415)
    problem(client.request("POST", "/orders", b'{"items":[]}'), 422)
    problem(
        client.request("POST", "/orders", SEED, {"idempotency-key": "k"})
        and client.request(
            "POST", "/orders", b'{"items":[{"id":"b","qty":1}]}', {"idempotency-key": "k"}
        ),
        422,
    )
    # The server still answers after all that.
    assert client.request("GET", location).status == 200


def test_chunked_bodies_are_refused_with_411(runtime: LocalRuntime) -> None:
    port = runtime.server.server_address[1]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"POST /orders HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: application/json\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        )
        head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 411")


def test_a_garbage_request_line_gets_a_problem_not_html(runtime: LocalRuntime) -> None:
    port = runtime.server.server_address[1]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.0 431") or reply.startswith(b"HTTP/1.1 431")
    assert b"application/problem+json" in reply
    assert b"<html" not in reply.lower()


def test_events_in_both_cloudevents_modes(client: Client) -> None:
    data = {"items": [{"sku": "a", "quantity": 1}]}
    structured = {
        "specversion": "1.0",
        "id": "e-1",
        "source": "urn:t",
        "type": "io.orderscore.order.create.v1",
        "data": data,
    }
    first = client.request(
        "POST",
        "/events",
        json.dumps(structured).encode(),
        {"content-type": "application/cloudevents+json"},
    )
    assert first.status == 201
    binary = client.request(
        "POST",
        "/events",
        json.dumps(data).encode(),
        {
            "ce-specversion": "1.0",
            "ce-id": "e-2",
            "ce-source": "urn:t",
            "ce-type": "io.orderscore.order.create.v1",
            "ce-traceparent": TP,
        },
    )
    assert binary.status == 201
    again = client.request(
        "POST",
        "/events",
        json.dumps(structured).encode(),
        {"content-type": "application/cloudevents+json"},
    )
    assert again.body == first.body
    assert again.headers["idempotent-replayed"] == "true"


def test_32_concurrent_creates_with_one_key_make_one_order(runtime: LocalRuntime) -> None:
    port = runtime.server.server_address[1]
    body = b'{"items":[{"id":"a","qty":1}],"customerId":"race"}'

    def create(_: int) -> Reply:
        c = Client(port)
        try:
            return c.request("POST", "/orders", body, {"idempotency-key": "one-key"})
        finally:
            c.close()

    with ThreadPoolExecutor(max_workers=32) as pool:
        replies = list(pool.map(create, range(32)))
    assert {r.status for r in replies} == {201}
    assert len({r.body for r in replies}) == 1
    assert sum("idempotent-replayed" not in r.headers for r in replies) == 1
    assert len(runtime.store.list_by_customer("race").orders) == 1


def test_the_relay_delivers_events_with_the_request_trace(
    client: Client, collected: Collected
) -> None:
    order_id = client.request("POST", "/orders", SEED, {"traceparent": TP}).json()["orderId"]
    events = collected.wait_for(lambda evs: any(e.subject == order_id for e in evs))
    (event,) = [e for e in events if e.subject == order_id]
    assert event.id == f"{order_id}.v1"
    assert event.traceparent is not None
    assert event.traceparent.split("-")[1] == TP.split("-")[1]  # same trace


def test_access_log_lines_carry_ids_but_no_body(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    secret = b'{"items":[{"id":"sku-secret-42","qty":1}]}'
    with caplog.at_level(logging.INFO, logger="orders_local.access"):
        reply = client.request(
            "POST", "/orders", secret, {"traceparent": TP, "x-request-id": "req-7"}
        )
        # The line is written after the response is sent: give the server thread a moment.
        deadline = time.monotonic() + 5
        while not any(r.name == "orders_local.access" for r in caplog.records):
            assert time.monotonic() < deadline, "no access log line"
            time.sleep(0.01)
    (record,) = [r for r in caplog.records if r.name == "orders_local.access"]
    assert record.__dict__["status"] == 201
    assert record.__dict__["correlationId"] == "req-7" == reply.headers["x-correlation-id"]
    assert record.__dict__["traceId"] == TP.split("-")[1]
    assert record.__dict__["durationMs"] >= 0
    assert all(
        "sku-secret-42" not in r.getMessage() and "sku-secret-42" not in str(r.__dict__)
        for r in caplog.records
    )


def test_stop_finishes_in_flight_work_and_flushes_the_relay(tmp_path, collected: Collected) -> None:  # type: ignore[no-untyped-def]
    from orders_local.runtime import LocalConfig
    from orders_local.sinks import CallbackSink

    rt = LocalRuntime(LocalConfig(db=tmp_path / "o.db", port=0), publisher=CallbackSink(collected))
    rt.start()
    c = Client(rt.server.server_address[1])
    ids = [c.request("POST", "/orders", SEED).json()["orderId"] for _ in range(20)]
    c.close()
    assert rt.stop(timeout=5) == 0
    delivered = {e.subject for e in collected.events}
    assert set(ids) <= delivered
