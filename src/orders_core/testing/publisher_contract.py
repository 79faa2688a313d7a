"""The contract every :class:`~orders_core.application.EventPublisher` keeps, as a pytest suite.

Subclass :class:`PublisherContract` in a ``Test*`` class and implement :meth:`make_publisher`
and :meth:`received` (what the sink got, as structured CloudEvents); implement
:meth:`sink_down` if the sink can be made to fail (the failure case is skipped otherwise).
Relays rely on exactly this: a batch goes out, a failure raises so the batch can be tried
again, and an event published twice is recognisably the same event.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from orders_core.application import EventPublisher, PublishFailed, event_for
from orders_core.domain import DomainEvent, LineItem, Order

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
BATCH = 12
"""More than one call's worth for sinks that take batches of 10 (EventBridge)."""


def order_events(n: int, *, start: int = 0) -> list[DomainEvent]:
    """``n`` order-created events with distinct ids."""
    now = datetime.now(UTC)
    items = [LineItem(sku="sku-1", quantity=2, unit_price=1999, currency="EUR")]
    return [
        event_for(
            Order.place(f"{start + i:032x}", items, "customer-1", now), traceparent=TRACEPARENT
        )
        for i in range(n)
    ]


def cloudevent(event: DomainEvent) -> dict[str, Any]:
    """``event`` as the structured CloudEvent a sink receives."""
    received: dict[str, Any] = json.loads(event.to_structured_json())
    return received


class PublisherContract:
    """Base cases; a subclass supplies the publisher and a view of its sink."""

    def make_publisher(self, tmp_path: Path) -> EventPublisher:
        raise NotImplementedError

    def received(self, publisher: EventPublisher) -> list[dict[str, Any]]:
        """Every CloudEvent the sink has received so far, as JSON objects."""
        raise NotImplementedError

    @contextlib.contextmanager
    def sink_down(self, publisher: EventPublisher) -> Iterator[None]:
        """While inside, the sink refuses every publish (skipped if it cannot fail)."""
        pytest.skip("this sink cannot be made to fail")
        yield  # pragma: no cover

    @pytest.fixture
    def publisher(self, tmp_path: Path) -> Iterator[EventPublisher]:
        publisher = self.make_publisher(tmp_path)
        try:
            yield publisher
        finally:
            publisher.close()  # the port's: connections and threads end with the test

    def test_publish_accepts_a_batch(self, publisher: EventPublisher) -> None:
        events = order_events(BATCH)
        publisher.publish(events)
        got = self.received(publisher)
        assert sorted(e["id"] for e in got) == sorted(e.id for e in events)
        by_id = {e["id"]: e for e in got}
        for event in events:
            assert by_id[event.id]["type"] == event.type
            assert by_id[event.id]["source"] == event.source
            assert by_id[event.id]["data"] == cloudevent(event)["data"]

    def test_publishing_nothing_is_a_no_op(self, publisher: EventPublisher) -> None:
        publisher.publish([])
        assert self.received(publisher) == []

    def test_a_failed_publish_raises_and_the_caller_may_retry(
        self, publisher: EventPublisher
    ) -> None:
        events = order_events(3)
        # Any exception will do: the port says "publish all or raise".
        with self.sink_down(publisher), pytest.raises(Exception) as raised:  # noqa: PT011
            publisher.publish(events)
        if isinstance(raised.value, PublishFailed):
            # It names what was not accepted; a sink that is down accepts nothing.
            assert {f.event.id for f in raised.value.failed} == {e.id for e in events}
            assert raised.value.retryable
        publisher.publish(events)
        assert sorted(e["id"] for e in self.received(publisher)) == sorted(e.id for e in events)

    def test_the_same_event_twice_keeps_its_cloudevent_id(self, publisher: EventPublisher) -> None:
        (event,) = order_events(1)
        publisher.publish([event])
        publisher.publish([event])
        got = self.received(publisher)
        assert got, "nothing received"
        assert {e["id"] for e in got} == {event.id}
        assert all(e == got[0] for e in got)  # a consumer sees the same event, not a new one
