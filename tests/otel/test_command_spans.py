"""With the OpenTelemetry SDK configured, commands make spans and events continue the trace."""

from __future__ import annotations

import json

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from orders_core import commands
from orders_core.commands import Command
from orders_core.service import OrderService
from orders_core.testing import InMemoryStore

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TP = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def test_a_queued_command_continues_its_trace_into_the_emitted_event(
    spans: InMemorySpanExporter,
) -> None:
    store = InMemoryStore()
    data = {"items": [{"sku": "a", "quantity": 1}]}
    result = OrderService(store).handle(
        Command(commands.CREATE, "urn:test", "e-1", data, traceparent=TP)
    )
    (span,) = spans.get_finished_spans()
    assert span.name == f"orders.command {commands.CREATE}"
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert span.attributes is not None
    assert span.attributes["orders.order_id"] == result.order_id
    assert span.attributes["orders.idempotent_replay"] is False
    (event,) = store.events_for(result.order_id)
    assert event.traceparent is not None
    _, trace_id, parent_id, _ = event.traceparent.split("-")
    # The consumer of the event becomes a child of the command span, in the same trace.
    assert (trace_id, parent_id) == (TRACE_ID, format(span.context.span_id, "016x"))
    assert json.loads(result.body)["orderId"] == result.order_id
