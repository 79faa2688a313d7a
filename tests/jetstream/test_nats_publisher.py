"""The NATS publisher against a real nats-server: JetStream deduplicates on Nats-Msg-Id, the
binding's headers are what the spec says, an order's events never overtake each other, and a
server that is down, comes back or refuses is a bounded, clearly named failure."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from orders_core.application import event_for
from orders_core.domain import DomainEvent, LineItem, Order, OrderStatus
from orders_core.testing.publisher_contract import cloudevent as structured
from orders_core.testing.publisher_contract import order_events
from orders_nats import NatsConfig, NatsPublisher, NatsPublishFailed
from orders_nats.publisher import MAX_RUN, segments
from tests.jetstream.nats_server import (
    NatsServer,
    add_stream,
    cloudevent,
    delete_stream,
    stream_messages,
)

_names = itertools.count(1)
Make = Callable[..., NatsPublisher]


class Stream:
    def __init__(self, server: NatsServer) -> None:
        self.server = server
        self.name = f"PUB{next(_names)}"
        self.prefix = self.name.lower()

    def spec(self, scheme: str = "nats", subject: str = "{type}", query: str = "") -> str:
        return (
            f"{scheme}://127.0.0.1:{self.server.port}/{self.prefix}.{subject}"
            f"?stream={self.name}&timeout=1{query}"
        )

    def messages(self) -> list[tuple[str, dict[str, str], bytes]]:
        return stream_messages(self.server.url, self.name)


@pytest.fixture
def stream(nats_server: NatsServer) -> Stream:
    s = Stream(nats_server)
    add_stream(nats_server.url, s.name, [f"{s.prefix}.>"])
    return s


@pytest.fixture
def open_publishers() -> Iterator[list[NatsPublisher]]:
    made: list[NatsPublisher] = []
    yield made
    for publisher in made:
        publisher.close()


@pytest.fixture
def publisher_for(open_publishers: list[NatsPublisher]) -> Make:
    """Publishers on a spec, with a 1 s connect timeout, closed after the test."""

    def make(spec: str, **changes: float) -> NatsPublisher:
        config = replace(NatsConfig.from_spec(spec, {}), connect_timeout=1, **changes)
        publisher = NatsPublisher(config)
        open_publishers.append(publisher)
        return publisher

    return make


def event_of(order_id: str, version: int = 1, **fields: str) -> DomainEvent:
    now = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
    order = Order.place(order_id, [LineItem(sku="sku-1", quantity=1)], "c-1", now)
    if version > 1:
        order = order.transition(OrderStatus.CONFIRMED, now)
    return replace(event_for(order), **fields)


# -- deduplication -------------------------------------------------------------------------


def test_the_same_event_twice_is_one_stream_message(stream: Stream, publisher_for: Make) -> None:
    publisher = publisher_for(stream.spec())
    events = order_events(3, start=100)
    publisher.publish(events)
    publisher.publish(events)  # a relay's retry after a lost acknowledgement
    publisher.publish(events[1:2])
    got = stream.messages()
    assert [headers["Nats-Msg-Id"] for _, headers, _ in got] == [e.id for e in events]


def test_a_second_publisher_is_deduplicated_too(stream: Stream, publisher_for: Make) -> None:
    """Deduplication is the server's, not the client's: a restarted relay is covered."""
    (event,) = order_events(1, start=200)
    publisher_for(stream.spec()).publish([event])
    publisher_for(stream.spec()).publish([event])
    assert len(stream.messages()) == 1


# -- the binding ---------------------------------------------------------------------------


def test_binary_mode_headers_follow_the_nats_binding(stream: Stream, publisher_for: Make) -> None:
    event = event_of("a" * 32, source='urn:orders core:€ "x" 100%')
    publisher_for(stream.spec()).publish([event])
    ((subject, headers, data),) = stream.messages()
    assert subject == f"{stream.prefix}.io.orderscore.order.created.v1"
    assert headers["Nats-Msg-Id"] == headers["ce-id"] == event.id
    # 3.1.3.2: space, double quote, percent and non-ASCII are percent-encoded, upper-case.
    assert headers["ce-source"] == "urn:orders%20core:%E2%82%AC%20%22x%22%20100%25"
    assert headers["ce-time"] == "2026-12-02T09:30:00Z"
    assert headers["ce-datacontenttype"] == "application/json"  # an attribute like any other
    assert "Content-Type" not in headers  # its presence would say structured mode
    assert data == event.data_json
    assert cloudevent(headers, data) == structured(event)


def test_structured_mode_carries_the_json_event_format(stream: Stream, publisher_for: Make) -> None:
    event = event_of("b" * 32)
    publisher_for(stream.spec("nats+structured")).publish([event])
    ((_, headers, data),) = stream.messages()
    assert headers["Content-Type"].startswith("application/cloudevents+json")
    assert not any(name.startswith("ce-") for name in headers)
    assert data == event.to_structured_json()
    assert headers["Nats-Msg-Id"] == event.id


def test_the_subject_template_can_name_the_order(stream: Stream, publisher_for: Make) -> None:
    event = event_of("c" * 32)
    publisher_for(stream.spec(subject="{subject}.{type}")).publish([event])
    ((subject, _, _),) = stream.messages()
    assert subject == f"{stream.prefix}.{'c' * 32}.io.orderscore.order.created.v1"


# -- ordering ------------------------------------------------------------------------------


def test_segments_hold_an_order_once_and_keep_commit_order() -> None:
    a1, b1, a2, c1, a3 = (
        event_of(o, v) for o, v in [("a", 1), ("b", 1), ("a", 2), ("c", 1), ("a", 3)]
    )
    assert segments([a1, b1, a2, c1, a3]) == [range(0, 2), range(2, 4), range(4, 5)]
    assert segments([]) == []
    many = order_events(MAX_RUN + 5)
    assert segments(many) == [range(0, MAX_RUN), range(MAX_RUN, MAX_RUN + 5)]


def test_after_a_failure_no_later_event_of_that_order_goes_out(
    stream: Stream, publisher_for: Make
) -> None:
    """B1 cannot be published: A1 before it goes out; A2 (after B1 in commit order) and C1
    do not, so a retry publishes from B1 and A2 never precedes an unpublished A1."""
    a1, a2, c1 = event_of("a" * 32), event_of("a" * 32, 2), event_of("e" * 32)
    b1 = event_of("d" * 32, type="bad type with spaces")
    with pytest.raises(NatsPublishFailed) as raised:
        publisher_for(stream.spec()).publish([a1, b1, a2, c1])
    assert raised.value.delivered == 1
    codes = {f.event.id: (f.code, f.retryable) for f in raised.value.failed}
    assert codes == {
        b1.id: ("Unpublishable", False),
        a2.id: ("NotSent", True),
        c1.id: ("NotSent", True),
    }
    assert [h["Nats-Msg-Id"] for _, h, _ in stream.messages()] == [a1.id]


def test_a_relay_batch_reaches_the_stream_in_commit_order(
    stream: Stream, publisher_for: Make
) -> None:
    from orders_core.application import Change, OutboxRelay
    from orders_core.testing.memory import InMemoryStore

    store = InMemoryStore()
    now = datetime(2026, 12, 2, tzinfo=UTC)
    for i in range(30):
        order = Order.place(f"{i:032x}", [LineItem(sku="s", quantity=1)], "c", now)
        store.commit(Change(order, 0, (event_for(order),)), now=now)
        if i % 3 == 0:
            confirmed = order.transition(OrderStatus.CONFIRMED, now)
            store.commit(Change(confirmed, 1, (event_for(confirmed),)), now=now)
    committed = [p.event.id for p in store.pending(1000)]
    relay = OutboxRelay(store, publisher_for(stream.spec()), batch_size=25)
    while relay.run_once():
        pass
    assert [h["Nats-Msg-Id"] for _, h, _ in stream.messages()] == committed
    assert store.undelivered_count() == 0


# -- failures: bounded and named -----------------------------------------------------------


@pytest.mark.parametrize(
    "field",
    [{"type": "io.orders.*"}, {"type": "io.orders.>"}, {"type": "x" * 300}, {"type": "a..b"}],
)
def test_an_event_that_would_break_the_subject_is_refused(
    stream: Stream,
    publisher_for: Make,
    field: dict[str, str],
) -> None:
    publisher = publisher_for(stream.spec())
    with pytest.raises(NatsPublishFailed) as raised:
        publisher.publish([event_of("f" * 32, **field)])
    assert [(f.code, f.retryable) for f in raised.value.failed] == [("Unpublishable", False)]
    publisher.publish(order_events(1, start=300))  # the connection is fine
    assert len(stream.messages()) == 1


def test_a_huge_header_is_refused_before_it_is_sent(stream: Stream, publisher_for: Make) -> None:
    publisher = publisher_for(stream.spec())
    started = time.monotonic()
    with pytest.raises(NatsPublishFailed) as raised:
        publisher.publish([event_of("1" * 32, tracestate="k=" + "v" * 2_000_000)])
    ((failure),) = raised.value.failed
    assert (failure.code, failure.retryable) == ("TooLarge", False)
    assert "max_payload" in failure.message
    assert time.monotonic() - started < 1
    publisher.publish(order_events(1, start=400))
    assert len(stream.messages()) == 1


def test_no_stream_for_the_subject_says_so_and_recovers(
    stream: Stream, publisher_for: Make
) -> None:
    delete_stream(stream.server.url, stream.name)
    publisher = publisher_for(stream.spec(), ack_timeout=1)
    events = order_events(2, start=500)
    with pytest.raises(NatsPublishFailed) as raised:
        publisher.publish(events)
    first = raised.value.failed[0]
    assert (first.code, first.retryable) == ("NoStream", True)
    assert "nats stream add" in first.message
    add_stream(stream.server.url, stream.name, [f"{stream.prefix}.>"])
    publisher.publish(events)  # the operator created it: the retry goes through
    assert len(stream.messages()) == 2


def test_a_stream_other_than_the_expected_one_refuses(stream: Stream, publisher_for: Make) -> None:
    spec = stream.spec().replace(f"stream={stream.name}", "stream=ELSEWHERE")
    with pytest.raises(NatsPublishFailed) as raised:
        publisher_for(spec).publish(order_events(1, start=600))
    assert raised.value.failed[0].code.startswith("APIError:")
    assert stream.messages() == []


def test_a_server_that_is_down_fails_fast_then_delivers_once_back(
    stream: Stream,
    publisher_for: Make,
) -> None:
    publisher = publisher_for(stream.spec())
    publisher.publish(order_events(1, start=700))  # connected
    stream.server.stop()
    events = order_events(3, start=710)
    try:
        started = time.monotonic()
        with pytest.raises(NatsPublishFailed) as raised:
            publisher.publish(events)
        assert time.monotonic() - started < 3  # ack_timeout 1 s, not nats-py's 60 attempts
        assert raised.value.retryable
        assert raised.value.delivered == 0
    finally:
        stream.server.start()
    deadline = time.monotonic() + 15
    while True:  # the relay's backoff, in short
        try:
            publisher.publish(events)
            break
        except NatsPublishFailed:
            assert time.monotonic() < deadline, "never reconnected"
            time.sleep(0.2)
    # What the client had buffered while down may have gone out on reconnection: once each.
    ids = [h["Nats-Msg-Id"] for _, h, _ in stream.messages()]
    assert sorted(ids[1:]) == sorted(e.id for e in events)


def test_unreachable_at_start_is_a_bounded_failure(publisher_for: Make) -> None:
    publisher = publisher_for("nats://127.0.0.1:9/x.{type}")  # discard port: nothing listens
    started = time.monotonic()
    with pytest.raises(NatsPublishFailed) as raised:
        publisher.publish(order_events(2))
    assert time.monotonic() - started < 3  # connect_timeout 1 s
    assert {f.code for f in raised.value.failed} == {"Unreachable"}


# -- lifecycle -----------------------------------------------------------------------------


def test_close_stops_the_loop_thread_and_refuses_later_publishes(
    stream: Stream,
) -> None:
    before = len(_loop_threads())
    publisher = NatsPublisher(NatsConfig.from_spec(stream.spec(), {}))
    assert len(_loop_threads()) == before  # nothing runs before the first publish
    publisher.publish(order_events(1, start=800))
    assert len(_loop_threads()) == before + 1
    publisher.close()
    publisher.close()  # twice is fine
    assert len(_loop_threads()) == before
    with pytest.raises(RuntimeError, match="closed"):
        publisher.publish(order_events(1, start=801))


def _loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "nats-publisher" and t.is_alive()]
