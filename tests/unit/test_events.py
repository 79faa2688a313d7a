"""Domain events: stable ids and their CloudEvent form."""

import json
from datetime import UTC, datetime

import pytest
from cloudevents.core.bindings.http import from_http, to_binary
from cloudevents.core.formats.json import JSONFormat

from orders_core.application import event_for
from orders_core.domain import DomainEvent, LineItem, Order, OrderStatus

NOW = datetime(2026, 1, 1, tzinfo=UTC)
TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def placed() -> Order:
    return Order.place("o-1", [LineItem(sku="a", quantity=1)], "c-1", NOW)


def test_event_ids_are_derived_from_order_and_version() -> None:
    order = placed()
    first = event_for(order)
    again = event_for(order)
    confirmed = event_for(order.transition(OrderStatus.CONFIRMED, NOW))
    assert first.id == again.id == "o-1.v1"
    assert confirmed.id == "o-1.v2"
    assert (first.type, confirmed.type) == (
        "io.orderscore.order.created.v1",
        "io.orderscore.order.confirmed.v1",
    )


def test_the_cloudevent_carries_subject_partitionkey_and_trace_context() -> None:
    event = event_for(placed(), traceparent=TP, tracestate="k=v").to_cloudevent()
    assert event.get_subject() == "o-1"
    assert event.get_extension("partitionkey") == "o-1"
    assert event.get_extension("traceparent") == TP
    assert event.get_extension("tracestate") == "k=v"
    assert event.get_data() == json.loads(placed().to_json())


def test_structured_and_binary_forms_round_trip() -> None:
    event = event_for(placed(), traceparent=TP)
    parsed = JSONFormat().read(None, event.to_structured_json())
    assert parsed.get_id() == "o-1.v1"
    message = to_binary(event.to_cloudevent(), JSONFormat())
    back = from_http(message, JSONFormat())
    assert back.get_data() == event.data
    assert back.get_extension("traceparent") == TP


def test_records_round_trip() -> None:
    event = event_for(placed(), traceparent=TP)
    assert DomainEvent.from_record(json.loads(json.dumps(event.to_record()))) == event


def test_building_a_cloudevent_does_not_share_the_events_data() -> None:
    event = event_for(placed())
    ce = event.to_cloudevent()
    ce.get_data()["status"] = "MUTATED"  # type: ignore[index]
    assert event.data["status"] == "PENDING"


def test_our_structured_json_is_what_the_sdk_writes() -> None:
    order = placed().transition(OrderStatus.CANCELLED, NOW, reason='café ☕ "quoted"')
    event = event_for(order, traceparent=TP, tracestate="k=v")
    ours = json.loads(event.to_structured_json())
    sdks = json.loads(JSONFormat().write(event.to_cloudevent()))
    assert ours == sdks
    assert ours["time"].endswith("Z")
    assert ours["data"]["cancelReason"] == 'café ☕ "quoted"'


def test_the_record_json_is_the_record() -> None:
    event = event_for(placed(), traceparent=TP)
    assert json.loads(event.to_record_json()) == event.to_record()
    assert DomainEvent.from_record(json.loads(event.to_record_json())) == event
    assert "data" not in event.to_record(with_data=False)


@pytest.mark.parametrize(
    ("source", "tracestate"),
    [
        ("urn:orders-core:orders", None),
        ('urn:x:"quoted"\\back\nline\u2028', 'k=v,q="a\\b"'),
        ("urn:café:☕", "k=\x7f\x01"),
    ],
)
def test_the_record_json_is_the_encoders_text_byte_for_byte(
    source: str, tracestate: str | None
) -> None:
    order = placed().transition(OrderStatus.CANCELLED, NOW, reason='café ☕ "quoted"')
    event = event_for(order, source=source, traceparent=TP, tracestate=tracestate)
    head = json.dumps(event.to_record(with_data=False), separators=(",", ":"), ensure_ascii=False)
    assert event.to_record_json() == f'{head[:-1]},"data":{event.data_json.decode()}}}'


def test_events_with_the_same_data_are_equal_whatever_its_spacing() -> None:
    event = event_for(placed())
    spaced = DomainEvent.from_record(json.loads(json.dumps(event.to_record(), indent=2)))
    assert spaced == event
    assert event_for(placed().transition(OrderStatus.CONFIRMED, NOW)) != event
