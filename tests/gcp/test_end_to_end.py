"""Offline, end to end, as it runs on Google Cloud: an HTTP create on the ASGI app (on uvicorn,
Firestore emulator underneath) -> the relay -> the events topic (Pub/Sub emulator) -> a
downstream service answers with a command on the commands topic -> the emulator pushes it
(signed on the way, as Pub/Sub signs) to the push path -> the command's effect, and its event
out again: one trace id from the first request to the last event.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from orders_core.application import OrderService, OutboxRelay
from orders_core.domain import OrderStatus
from orders_core.edges.asgi import create_app
from orders_core.edges.http import HttpApi
from orders_core.edges.lanes import lanes_for
from orders_gcp.firestore import FirestoreStore
from orders_gcp.pubsub import DeadLetterTopic, PubSubPublisher, publisher_client
from orders_gcp.push_app import PushApp
from orders_gcp.push_auth import PushAuthConfig, PushAuthenticator, principal_of
from orders_gcp.push_endpoint import PushEndpoint
from orders_local.uvicorn_server import UvicornServer
from tests.gcp import pubsub_support as ps
from tests.gcp.conftest import RUN
from tests.gcp.push_support import AUDIENCE, CONFIRM, PUSH_ACCOUNT, command_attributes
from tests.gcp.signing_proxy import SigningProxy
from tests.local.jwks import JwksServer, Key

T = TypeVar("T")
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
_run = itertools.count()


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 20.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (value := probe()) is not None:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Deployment:
    url: str
    store: FirestoreStore
    events_sub: str
    dead_sub: str
    commands_topic: str
    proxy: SigningProxy
    publisher: Any
    subscriber: Any

    def post(self, path: str, body: dict[str, Any], **headers: str) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"content-type": "application/json", **headers},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())

    def events(self, expect: int) -> list[Any]:
        return ps.pull(self.subscriber, self.events_sub, expect=expect, wait=20)

    def send_command(self, data: dict[str, Any] | bytes, attributes: dict[str, str]) -> None:
        raw = data if isinstance(data, bytes) else json.dumps(data).encode()
        self.publisher.publish(self.commands_topic, raw, **attributes).result(timeout=10)


@pytest.fixture(scope="module")
def gcp(
    firestore_client: Any, pubsub_publisher: Any, pubsub_subscriber: Any
) -> Iterator[Deployment]:
    key = Key("google-e2e")
    idp = JwksServer([key])
    store = FirestoreStore(firestore_client, prefix=f"e2e{RUN}-{next(_run)}-")
    events_topic = ps.topic(pubsub_publisher)
    events_sub = ps.subscription(pubsub_subscriber, events_topic)
    dead_topic = ps.topic(pubsub_publisher)
    dead_sub = ps.subscription(pubsub_subscriber, dead_topic, ordering=False)
    commands_topic = ps.topic(pubsub_publisher)

    service = OrderService(store)
    relay = OutboxRelay(
        store, PubSubPublisher(events_topic, pubsub_publisher, timeout=10), poll_interval=0.05
    )
    api = HttpApi(service)
    core_app = create_app(api, lanes_for(api, on_commit=relay.wake))
    endpoint = PushEndpoint(
        service,
        authenticate=PushAuthenticator(
            PushAuthConfig(AUDIENCE, (PUSH_ACCOUNT,), issuer=idp.issuer, jwks_url=idp.url)
        ),
        dead_letters=DeadLetterTopic(dead_topic, publisher_client(ordering=False)),
    )
    app = PushApp(core_app, endpoint)
    server = UvicornServer(("127.0.0.1", 0), app)  # type: ignore[arg-type]  # same surface
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    assert server.wait_started()
    relay.start()
    proxy = SigningProxy(server.url + "/pubsub/push", key, idp.issuer)
    pubsub_subscriber.create_subscription(
        request={
            "name": f"projects/{ps.PROJECT}/subscriptions/{ps.unique('push')}",
            "topic": commands_topic,
            "push_config": {"push_endpoint": proxy.url},
            "ack_deadline_seconds": 10,
        }
    )
    try:
        yield Deployment(
            server.url,
            store,
            events_sub,
            dead_sub,
            commands_topic,
            proxy,
            pubsub_publisher,
            pubsub_subscriber,
        )
    finally:
        proxy.stop()
        server.shutdown(5)
        server.server_close()
        relay.stop(timeout=5)
        idp.stop()


def _confirm_from_downstream(gcp: Deployment, created_event: Any, command_id: str) -> None:
    """What a payment service does on order.created: a confirm command back, carrying the
    event's trace context on."""
    order_id = json.loads(created_event.data)["orderId"]
    attributes = command_attributes(
        CONFIRM,
        command_id,
        **{
            "ce-source": "urn:payments",
            "ce-traceparent": created_event.attributes["ce-traceparent"],
        },
    )
    gcp.send_command({"orderId": order_id}, attributes)


def test_create_relay_push_effect_under_one_trace(gcp: Deployment) -> None:
    status, created = gcp.post(
        "/orders",
        {"items": [{"id": "sku-1", "qty": 2}], "customerId": "cust-e2e"},
        traceparent=TRACEPARENT,
    )
    assert (status, created["status"]) == (201, "PENDING")
    order_id = created["orderId"]

    (event,) = gcp.events(expect=1)
    assert event.attributes["ce-id"] == f"{order_id}.v1"
    assert event.attributes["ce-traceparent"].split("-")[1] == TRACE_ID

    _confirm_from_downstream(gcp, event, "pay-1")

    confirmed = eventually(
        lambda: o if (o := gcp.store.get(order_id)) and o.status is OrderStatus.CONFIRMED else None,
        "the pushed confirm",
    )
    assert confirmed.owner != principal_of(PUSH_ACCOUNT).id  # the order stays its creator's
    (second,) = gcp.events(expect=1)
    assert second.attributes["ce-id"] == f"{order_id}.v2"
    assert json.loads(second.data)["status"] == "CONFIRMED"
    # One trace: HTTP request -> created event -> pushed command -> confirmed event.
    assert second.attributes["ce-traceparent"].split("-")[1] == TRACE_ID


def test_the_same_command_pushed_twice_has_one_effect(gcp: Deployment) -> None:
    _, created = gcp.post("/orders", {"items": [{"id": "sku-2", "qty": 1}], "customerId": "c2"})
    order_id = created["orderId"]
    (event,) = gcp.events(expect=1)
    answered = len(gcp.proxy.statuses())
    for _ in range(2):  # a redelivery, or a downstream service that sent it twice
        _confirm_from_downstream(gcp, event, "pay-2")
    eventually(lambda: True if len(gcp.proxy.statuses()) >= answered + 2 else None, "two pushes")
    assert gcp.proxy.statuses()[answered:] == [200, 200]
    replays = [json.loads(body)["replayed"] for _, body in gcp.proxy.answers[answered:]]
    assert sorted(replays) == [False, True]
    order = gcp.store.get(order_id)
    assert order is not None
    assert (order.status, order.version) == (OrderStatus.CONFIRMED, 2)
    assert [e.id for e in gcp.store.events_for(order_id)] == [f"{order_id}.v1", f"{order_id}.v2"]
    (confirmed,) = gcp.events(expect=1)  # one event out, not two
    assert confirmed.attributes["ce-id"] == f"{order_id}.v2"


def test_a_poison_command_reaches_the_dead_letter_topic_with_its_content(gcp: Deployment) -> None:
    data = {"orderId": "x", "expectedVersion": "not a number"}
    attributes = command_attributes(CONFIRM, "bad-1")
    gcp.send_command(data, attributes)
    (dead,) = ps.pull(gcp.subscriber, gcp.dead_sub, expect=1, wait=20)
    assert json.loads(dead.data) == data
    assert dead.attributes["orders-poison-reason"] == "validation-failed"
    assert {k: dead.attributes[k] for k in attributes} == attributes
