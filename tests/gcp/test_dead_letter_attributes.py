"""A poison message is dead-lettered whole whatever its attributes are named. They went as
keyword arguments of ``PublisherClient.publish(topic, data, ordering_key=, retry=,
timeout=, **attrs)``: legal Pub/Sub names (``ordering_key``, ``retry``, ``timeout``,
``topic``, ``data``) collided with its parameters, send() returned False, and the push
answered 4xx for Pub/Sub to redeliver it until the subscription's own policy took it, or for
the retention period (helper-40's review)."""

from __future__ import annotations

from typing import Any

import pytest

from orders_gcp.pubsub import DeadLetterTopic, publisher_client
from tests.gcp.pubsub_support import pull, subscription, topic


@pytest.mark.parametrize("name", ["ordering_key", "retry", "timeout", "topic", "data"])
def test_a_poison_message_with_any_legal_attribute_name_is_dead_lettered_whole(
    pubsub_emulator: str, pubsub_subscriber: Any, name: str
) -> None:
    client = publisher_client(ordering=False)
    dead = topic(client)
    sub = subscription(pubsub_subscriber, dead, ordering=False)
    attributes = {"ce-id": "evt-1", name: "5"}
    sent = DeadLetterTopic(dead, client, timeout=3).send(
        b"{not json", attributes, "malformed-request", message_id="42", subscription="s"
    )
    assert sent, f"a message with attribute {name!r} could not be dead-lettered"
    (message,) = pull(pubsub_subscriber, sub, expect=1)
    assert message.data == b"{not json"
    assert dict(message.attributes)[name] == "5"
