"""The core's outbox relay over the Firestore outbox, publishing to the Pub/Sub emulator."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from orders_core.application import CONFIRM, CREATE, Command, OrderService, OutboxRelay
from orders_core.testing.contract._base import TRACEPARENT
from orders_gcp.firestore import FirestoreStore
from orders_gcp.pubsub import PubSubPublisher, publisher_client
from tests.gcp import pubsub_support as ps
from tests.gcp.conftest import RUN

_prefixes = itertools.count()
DATA = {"items": [{"sku": "sku-1", "quantity": 2}], "customerId": "cust-r"}


@pytest.fixture
def store(firestore_client: Any) -> FirestoreStore:
    return FirestoreStore(firestore_client, prefix=f"relay{RUN}-{next(_prefixes)}-")


@pytest.fixture
def wire(pubsub_publisher: Any, pubsub_subscriber: Any) -> tuple[PubSubPublisher, str]:
    topic = ps.topic(pubsub_publisher)
    return PubSubPublisher(topic, pubsub_publisher, timeout=5), ps.subscription(
        pubsub_subscriber, topic
    )


def _relay(store: FirestoreStore, publisher: PubSubPublisher) -> OutboxRelay:
    return OutboxRelay(store, publisher, destination="pubsub", jitter=lambda: 0.0)


def test_committed_events_reach_the_topic_once_marked_and_in_order(
    store: FirestoreStore, wire: tuple[PubSubPublisher, str], pubsub_subscriber: Any
) -> None:
    publisher, sub = wire
    service = OrderService(store)
    created = service.handle(Command(CREATE, "urn:t", "c-1", DATA, traceparent=TRACEPARENT))
    service.handle(Command(CONFIRM, "urn:t", "c-2", {"orderId": created.order_id}))
    assert store.undelivered_count() == 2

    assert _relay(store, publisher).run_once() == 2

    got = ps.pull(pubsub_subscriber, sub, expect=2)
    assert [m.attributes["ce-id"] for m in got] == [
        f"{created.order_id}.v1",
        f"{created.order_id}.v2",
    ]
    assert [json.loads(m.data)["status"] for m in got] == ["PENDING", "CONFIRMED"]
    assert {m.ordering_key for m in got} == {created.order_id}
    trace_id = TRACEPARENT.split("-")[1]
    assert got[0].attributes["ce-traceparent"].split("-")[1] == trace_id
    assert store.pending() == []
    assert store.undelivered_count() == 0
    # Delivered entries keep their history until their retention runs out.
    assert [e.id for e in store.events_for(created.order_id)] == [
        m.attributes["ce-id"] for m in got
    ]


def test_a_failing_topic_keeps_events_pending_until_it_recovers(
    store: FirestoreStore, wire: tuple[PubSubPublisher, str], pubsub_subscriber: Any
) -> None:
    publisher, sub = wire
    created = OrderService(store).handle(Command(CREATE, "urn:t", "c-1", DATA))
    relay = _relay(store, publisher)
    working = publisher.client
    with ps.client_on_a_dead_port(publisher_client) as dead:
        publisher.client, publisher.timeout = dead, 1.0
        assert relay.run_once() == 0
        assert relay.run_once() == 0
    publisher.client, publisher.timeout = working, 5.0
    (waiting,) = store.pending()
    assert waiting.attempts == 2
    assert relay.backoff() > 0  # the relay pauses before its next pass

    assert relay.run_once() == 1
    (message,) = ps.pull(pubsub_subscriber, sub, expect=1)
    assert message.attributes["ce-id"] == f"{created.order_id}.v1"
    assert store.undelivered_count() == 0


def test_a_relay_that_publishes_again_sends_the_same_cloudevent_identity(
    store: FirestoreStore, wire: tuple[PubSubPublisher, str], pubsub_subscriber: Any
) -> None:
    publisher, sub = wire
    OrderService(store).handle(Command(CREATE, "urn:t", "c-1", DATA))
    (entry,) = store.pending()
    publisher.publish([entry.event])  # a relay that died before marking it delivered
    assert _relay(store, publisher).run_once() == 1  # the next one publishes it again
    first, again = ps.pull(pubsub_subscriber, sub, expect=2)
    assert first.attributes == again.attributes
    assert first.data == again.data
    assert first.message_id != again.message_id  # two messages, one event: consumers dedupe
