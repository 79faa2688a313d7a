"""Who may use the console, and the redeliver POST's CSRF checks and effect: each refusal,
through the HTTP binding, the ASGI app (the peer from its scope) and a running server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orders_core.application import Backend
from orders_core.edges.asgi import create_app
from orders_core.edges.http import HttpApi
from orders_core.testing import InMemoryPublisher
from orders_local.console import CSRF_COOKIE, CSRF_HEADER
from orders_local.runtime import LocalConfig, LocalRuntime
from orders_local.sqlite import SQLiteStore
from tests.local.console_support import (
    API,
    HOST,
    SEED,
    call,
    console_api,
    csrf_token,
    page_headers,
)
from tests.local.support import Client

ROUTES = [
    ("GET", "/console"),
    ("GET", "/console/assets/console.js"),
    ("GET", f"{API}/overview"),
    ("GET", f"{API}/orders"),
    ("GET", f"{API}/outbox"),
    ("POST", f"{API}/outbox/x.v1/redeliver"),
]


def failed_event(api: HttpApi, store: SQLiteStore, **headers: str) -> str:
    """An order whose created event's one delivery attempt failed; its event id."""
    reply = call(api, "POST", "/orders", body=SEED, headers=headers)
    assert reply.status == 201, reply.body
    store.mark_failed([store.pending()[-1].position], "webhook unreachable")
    return f"{reply.json()['orderId']}.v1"


# -- authentication off: loopback only -------------------------------------------------


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    "peer", ["10.1.2.3", "192.168.0.7", "2001:db8::1", "::ffff:10.0.0.1", "localhost", None]
)
def test_without_authentication_only_loopback_peers_are_served(
    store: SQLiteStore, method: str, path: str, peer: str | None
) -> None:
    api = console_api(store)
    # A header saying "loopback" changes nothing: only the connection's address counts.
    spoof = {"x-forwarded-for": "127.0.0.1", "x-real-ip": "127.0.0.1", "forwarded": "for=127.0.0.1"}
    reply = call(api, method, path, headers=spoof, peer=peer)
    assert reply.status == 403
    assert reply.json()["type"] == "urn:orders-core:problem:forbidden"
    assert "loopback" in reply.json()["detail"]


@pytest.mark.parametrize("peer", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_loopback_peers_are_served(store: SQLiteStore, peer: str) -> None:
    assert call(console_api(store), "GET", f"{API}/overview", peer=peer).status == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "10.0.0.1:8080", "", "a b"])
def test_a_foreign_host_name_is_refused_even_from_loopback(store: SQLiteStore, host: str) -> None:
    """DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 reaches
    the server from the browser's loopback address, but under its own Host name."""
    reply = call(console_api(store), "GET", f"{API}/orders", headers={"host": host})
    assert reply.status == 403


@pytest.mark.parametrize("host", ["localhost:8080", "127.0.0.1", "[::1]:9000", "app.localhost"])
def test_loopback_host_names_are_served(store: SQLiteStore, host: str) -> None:
    assert call(console_api(store), "GET", "/console", headers={"host": host}).status == 200


def _asgi_get(app: Any, path: str, client: tuple[str, int] | None) -> int:
    """One GET through the ASGI app with the scope a server gives; the answer's status."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": b"",
        "headers": [(b"host", HOST.encode())],
        "http_version": "1.1",
        "client": client,
    }
    asyncio.run(app(scope, receive, send))
    status: int = sent[0]["status"]
    return status


def test_the_asgi_app_takes_the_peer_from_the_scope(store: SQLiteStore) -> None:
    app = create_app(console_api(store))
    app.startup()
    try:
        assert _asgi_get(app, f"{API}/overview", ("127.0.0.1", 50000)) == 200
        assert _asgi_get(app, f"{API}/overview", ("10.9.8.7", 50000)) == 403
        assert _asgi_get(app, f"{API}/overview", None) == 403  # unknown: refused
        assert _asgi_get(app, "/healthz", ("10.9.8.7", 50000)) == 200  # the API is not
    finally:
        app.shutdown()


# -- authentication on: admins only ----------------------------------------------------


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_with_authentication_the_console_needs_the_admin_scope(
    store: SQLiteStore, method: str, path: str
) -> None:
    api = console_api(store, authenticated=True)
    assert call(api, method, path).status == 401
    assert call(api, method, path, headers={"authorization": "Bearer nobody"}).status == 401
    for tenant in ("alice", "bob"):
        reply = call(api, method, path, headers={"authorization": f"Bearer {tenant}"})
        assert reply.status == 403
        assert reply.json()["detail"] == "the console needs the admin scope"


def test_an_admin_sees_every_tenants_orders_from_any_address(store: SQLiteStore) -> None:
    api = console_api(store, authenticated=True)
    mine = {}
    for tenant in ("alice", "bob"):
        reply = call(
            api, "POST", "/orders", body=SEED, headers={"authorization": f"Bearer {tenant}"}
        )
        mine[tenant] = reply.json()["orderId"]
    admin = {"authorization": "Bearer admin"}
    listed = call(api, "GET", f"{API}/orders", headers=admin, peer="203.0.113.9").json()
    assert {o["orderId"] for o in listed["orders"]} == set(mine.values())
    detail = call(api, "GET", f"{API}/orders/{mine['bob']}", headers=admin).json()
    assert detail["timeline"][0]["command"]["principalKind"] == "jwt"
    # Tenants never reach another's order through the console, nor their own.
    bob = {"authorization": "Bearer bob"}
    assert call(api, "GET", f"{API}/orders/{mine['alice']}", headers=bob).status == 403
    assert call(api, "GET", f"/orders/{mine['alice']}", headers=bob).status == 404


def test_a_tenant_cannot_redeliver_another_tenants_event(store: SQLiteStore) -> None:
    api = console_api(store, authenticated=True)
    event_id = failed_event(api, store, authorization="Bearer alice")
    forged = page_headers(api, authorization="Bearer admin")  # a token the page was given
    forged["authorization"] = "Bearer bob"
    reply = call(api, "POST", f"{API}/outbox/{event_id}/redeliver", headers=forged)
    assert reply.status == 403
    assert store.timeline(event_id.split(".")[0])[0].delivery.redelivery_requested_at is None


# -- the redeliver POST: CSRF ----------------------------------------------------------


def _without(headers: dict[str, str], name: str) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k != name}


CSRF_CASES: list[tuple[str, Callable[[dict[str, str]], dict[str, str]]]] = [
    ("no token header", lambda h: _without(h, CSRF_HEADER)),
    ("no cookie", lambda h: _without(h, "cookie")),
    ("a token that is not the cookie's", lambda h: {**h, CSRF_HEADER: "0" * 64}),
    ("a cookie that is not the header's", lambda h: {**h, "cookie": f"{CSRF_COOKIE}={'1' * 64}"}),
    ("a non-ASCII token", lambda h: {**h, CSRF_HEADER: "\u00e9" * 64}),
    ("a cross-site fetch", lambda h: {**h, "sec-fetch-site": "cross-site"}),
    ("a same-site sibling", lambda h: {**h, "sec-fetch-site": "same-site"}),
    ("a foreign origin", lambda h: {**h, "origin": "http://evil.example"}),
    ("an origin on another port", lambda h: {**h, "origin": "http://127.0.0.1:9999"}),
    ("the null origin", lambda h: {**h, "origin": "null"}),
]


@pytest.mark.parametrize(("case", "change"), CSRF_CASES, ids=[c for c, _ in CSRF_CASES])
def test_a_redeliver_post_that_is_not_the_pages_own_is_refused(
    store: SQLiteStore, case: str, change: Callable[[dict[str, str]], dict[str, str]]
) -> None:
    api = console_api(store)
    event_id = failed_event(api, store)
    headers = change(page_headers(api))
    reply = call(api, "POST", f"{API}/outbox/{event_id}/redeliver", headers=headers)
    assert reply.status == 403, case
    assert reply.json()["type"] == "urn:orders-core:problem:forbidden"
    order_id = event_id.split(".")[0]
    assert store.timeline(order_id)[0].delivery.redelivery_requested_at is None  # nothing kept


def test_a_redelivery_is_recorded_once_and_wakes_the_relay(store: SQLiteStore) -> None:
    woken: list[str] = []
    api = console_api(store, retry_now=lambda: woken.append("retry"))
    event_id = failed_event(api, store)
    headers = page_headers(api)
    first = call(api, "POST", f"{API}/outbox/{event_id}/redeliver", headers=headers)
    assert first.status == 202, first.body
    asked = first.json()
    assert (asked["eventId"], asked["created"], asked["requestedBy"]) == (
        event_id,
        True,
        "anonymous",
    )
    again = call(api, "POST", f"{API}/outbox/{event_id}/redeliver", headers=headers)
    assert again.status == 200
    assert again.json()["requestId"] == asked["requestId"]
    assert again.json()["created"] is False
    assert woken == ["retry", "retry"]
    detail = call(api, "GET", f"{API}/orders/{event_id.split('.')[0]}").json()
    assert detail["timeline"][0]["event"]["redeliveryRequestedAt"] == asked["requestedAt"]


def test_a_script_without_a_browser_may_redeliver_with_the_token(store: SQLiteStore) -> None:
    """No Origin, no Sec-Fetch-Site (curl): the double-submitted token is still required."""
    api = console_api(store)
    event_id = failed_event(api, store)
    token = csrf_token(call(api, "GET", "/console"))
    headers = {"cookie": f"{CSRF_COOKIE}={token}", CSRF_HEADER: token}
    assert call(api, "POST", f"{API}/outbox/{event_id}/redeliver", headers=headers).status == 202


@pytest.mark.parametrize(
    ("event", "status"),
    [
        ("delivered", 409),
        ("pending", 409),
        ("unknown.v1", 404),
        ("unknown", 400),
        ("x.v1;drop", 400),
        ("bad/../id", 404),  # no such route
    ],
)
def test_only_failed_events_may_be_redelivered(store: SQLiteStore, event: str, status: int) -> None:
    api = console_api(store)
    order_id = call(api, "POST", "/orders", body=SEED).json()["orderId"]
    event_id = {"delivered": f"{order_id}.v1", "pending": f"{order_id}.v1"}.get(event, event)
    if event == "delivered":
        store.mark_delivered([store.pending()[0].position])
    path = f"{API}/outbox/{event_id}/redeliver"
    reply = call(api, "POST", path, headers=page_headers(api))
    assert reply.status == status, reply.body
    if status == 409:
        assert reply.json()["type"] == "urn:orders-core:problem:not-redeliverable"


# -- a running runtime -----------------------------------------------------------------


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll until ``predicate`` returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = predicate()
        if found:
            return found
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.05)


@pytest.fixture
def flaky_runtime(tmp_path: Path) -> Iterator[tuple[LocalRuntime, InMemoryPublisher]]:
    """A runtime whose relay, after a failure, would pause for 5 to 10 minutes."""
    publisher = InMemoryPublisher()
    publisher.down = True
    config = LocalConfig(
        db=tmp_path / "orders.db",
        port=0,
        relay_backoff_base=600,
        relay_backoff_cap=600,
    )
    runtime = LocalRuntime(config, publisher=publisher)
    runtime.start()
    try:
        yield runtime, publisher
    finally:
        runtime.stop(timeout=5)


def test_redeliver_ends_the_relays_pause_and_the_event_is_delivered(
    flaky_runtime: tuple[LocalRuntime, InMemoryPublisher],
) -> None:
    runtime, publisher = flaky_runtime
    assert runtime.server is not None
    client = Client(runtime.server.server_address[1])
    order_id = client.request("POST", "/orders", SEED).json()["orderId"]

    def event() -> dict[str, Any]:
        detail = client.request("GET", f"{API}/orders/{order_id}").json()
        found: dict[str, Any] = detail["timeline"][0]["event"]
        return found

    wait_for(lambda: event()["state"] == "failed")
    publisher.down = False  # the sink is back; the relay sleeps on for minutes
    page = client.request("GET", "/console")
    token = page.headers["set-cookie"].split(";")[0].split("=")[1]
    headers = {"cookie": f"{CSRF_COOKIE}={token}", CSRF_HEADER: token}
    reply = client.request("POST", f"{API}/outbox/{order_id}.v1/redeliver", b"", headers)
    assert reply.status == 202, reply.body
    delivered = wait_for(lambda: event()["state"] == "delivered" and event())
    assert delivered["attempts"] == 1
    assert [e.id for e in publisher.published] == [f"{order_id}.v1"]
    client.close()


def test_console_off_serves_no_console(tmp_path: Path) -> None:
    runtime = LocalRuntime(LocalConfig(db=tmp_path / "o.db", port=0, sink="none", console=False))
    runtime.start()
    try:
        assert runtime.server is not None
        client = Client(runtime.server.server_address[1])
        assert client.request("GET", "/console").status == 404
        assert client.request("GET", f"{API}/overview").status == 404
        assert client.request("GET", "/healthz").status == 200
        client.close()
    finally:
        runtime.stop(timeout=5)


def test_a_custom_store_declares_its_ports_by_its_classes(tmp_path: Path) -> None:
    from orders_core.testing import InMemoryStore

    runtime = LocalRuntime(LocalConfig(port=0, sink="none"), store=InMemoryStore())
    backend: Backend = runtime.backend
    assert backend.browser is runtime.store
    assert backend.inspector is runtime.store
    runtime.stop(timeout=1)


@pytest.mark.parametrize(
    "template",
    ["javascript:alert(1)//{traceId}", "http://jaeger.local/trace/", "file:///{traceId}"],
)
def test_serve_refuses_a_trace_link_that_is_not_an_http_url_with_the_id(
    tmp_path: Path, template: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from orders_local.cli import main

    code = main(["serve", "--db", str(tmp_path / "o.db"), "--traces-ui-url", template])
    assert code == 1
    assert "--traces-ui-url must be an http(s) URL containing {traceId}" in capsys.readouterr().err
    assert not (tmp_path / "o.db").exists()  # refused before anything opened
