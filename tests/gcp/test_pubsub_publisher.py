"""The publisher contract against the Pub/Sub emulator, and the binding on the wire."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orders_core.application import EventPublisher, PublishFailed
from orders_core.testing.publisher_contract import TRACEPARENT, PublisherContract, order_events
from orders_gcp.binding import cloudevent_of, command_from_message, message_of
from orders_gcp.pubsub import PubSubPublisher, publisher_client
from tests.gcp import pubsub_support as ps


class TestPubSubPublisher(PublisherContract):
    @pytest.fixture(autouse=True)
    def _clients(self, pubsub_publisher: Any, pubsub_subscriber: Any) -> None:
        self.client = pubsub_publisher
        self.subscriber = pubsub_subscriber
        self.subscriptions: dict[int, str] = {}
        self.seen: dict[int, list[dict[str, Any]]] = {}

    def make_publisher(self, tmp_path: Path) -> EventPublisher:
        topic = ps.topic(self.client)
        publisher = PubSubPublisher(topic, self.client, timeout=10)
        self.subscriptions[id(publisher)] = ps.subscription(self.subscriber, topic)
        return publisher

    def received(self, publisher: EventPublisher) -> list[dict[str, Any]]:
        messages = ps.pull(self.subscriber, self.subscriptions[id(publisher)], wait=0.5)
        seen = self.seen.setdefault(id(publisher), [])
        seen += [cloudevent_of(m.data, dict(m.attributes)) for m in messages]
        return seen

    @contextlib.contextmanager
    def sink_down(self, publisher: EventPublisher) -> Iterator[None]:
        assert isinstance(publisher, PubSubPublisher)
        working, publisher.timeout = publisher.client, 1.0
        with ps.client_on_a_dead_port(publisher_client) as dead:
            publisher.client = dead
            try:
                yield
            finally:
                publisher.client, publisher.timeout = working, 10.0


def test_events_go_out_in_the_binding_with_the_order_as_ordering_key(
    pubsub_publisher: Any, pubsub_subscriber: Any
) -> None:
    topic = ps.topic(pubsub_publisher)
    sub = ps.subscription(pubsub_subscriber, topic)
    events = order_events(3)
    PubSubPublisher(topic, pubsub_publisher).publish(events)
    got = {m.attributes["ce-id"]: m for m in ps.pull(pubsub_subscriber, sub, expect=3)}
    for event in events:
        message = got[event.id]
        assert message.ordering_key == event.order_id
        assert json.loads(message.data) == event.data  # the data, not an envelope
        attributes = dict(message.attributes)
        assert attributes == {
            "ce-specversion": "1.0",
            "ce-id": event.id,
            "ce-type": event.type,
            "ce-source": event.source,
            "ce-subject": event.order_id,
            "ce-time": attributes["ce-time"],
            "ce-partitionkey": event.order_id,
            "ce-traceparent": TRACEPARENT,
            "content-type": "application/json",
        }
        assert cloudevent_of(message.data, attributes) == json.loads(event.to_structured_json())


def test_one_orders_events_arrive_in_publish_order(
    pubsub_publisher: Any, pubsub_subscriber: Any
) -> None:
    from orders_core.application import event_for
    from orders_core.domain import OrderStatus

    (created,) = order_events(1)
    order = _order_of(created)
    confirmed = order.transition(OrderStatus.CONFIRMED, order.updated_at)
    fulfilled = confirmed.transition(OrderStatus.FULFILLED, order.updated_at)
    events = [created, event_for(confirmed), event_for(fulfilled)]
    topic = ps.topic(pubsub_publisher)
    sub = ps.subscription(pubsub_subscriber, topic)
    PubSubPublisher(topic, pubsub_publisher).publish(events)
    got = ps.pull(pubsub_subscriber, sub, expect=3)
    assert [m.attributes["ce-id"] for m in got] == [e.id for e in events]


def test_a_published_event_reads_back_as_the_same_command_cloudevent() -> None:
    (event,) = order_events(1)
    message = message_of(event)
    command = command_from_message(message.data, message.attributes)
    assert (command.id, command.source, command.type) == (event.id, event.source, event.type)
    assert command.traceparent == TRACEPARENT


def test_a_publish_to_a_missing_topic_fails_retryably(pubsub_publisher: Any) -> None:
    publisher = PubSubPublisher(
        f"projects/{ps.PROJECT}/topics/{ps.unique('gone')}", pubsub_publisher, timeout=5
    )
    events = order_events(2)
    with pytest.raises(PublishFailed) as raised:
        publisher.publish(events)
    assert {f.event.id for f in raised.value.failed} == {e.id for e in events}
    assert raised.value.retryable


def _order_of(event: Any) -> Any:
    from orders_core.domain import Order

    return Order.model_validate_json(event.data_json)
