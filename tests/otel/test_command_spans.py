"""With the OpenTelemetry SDK configured, commands make spans and events continue the trace."""

from __future__ import annotations

import json

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from orders_core.application import CREATE, Command, OrderService
from orders_core.testing import InMemoryStore

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TP = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def test_a_queued_command_continues_its_trace_into_the_emitted_event(
    spans: InMemorySpanExporter,
) -> None:
    store = InMemoryStore()
    data = {"items": [{"sku": "a", "quantity": 1}]}
    result = OrderService(store).handle(Command(CREATE, "urn:test", "e-1", data, traceparent=TP))
    (span,) = spans.get_finished_spans()
    assert span.name == f"orders.command {CREATE}"
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


@pytest.mark.parametrize("traceparent", [5, "5", "00-zz-yy-01", ["00"], None])
def test_a_malformed_trace_context_is_dropped_not_a_failure(
    spans: InMemorySpanExporter, traceparent: object
) -> None:
    """A queue record's CloudEvent may carry anything as its traceparent extension: with an
    SDK recording, the command still runs, in a new trace (W3C: ignore, do not reject)."""
    from orders_aws import sqs
    from orders_aws.bootstrap import AwsConfig, Runtime
    from orders_core.edges.http import HttpApi

    service = OrderService(InMemoryStore())
    rt = Runtime(AwsConfig(table="unused"), service, HttpApi(service), dynamodb=None)  # type: ignore[arg-type]
    event = {
        "specversion": "1.0",
        "id": "e-1",
        "source": "urn:test",
        "type": "io.orderscore.order.create.v1",
        "data": {"items": [{"sku": "a", "quantity": 1}], "customerId": "c"},
        "traceparent": traceparent,
    }
    record = {"messageId": "m-1", "body": json.dumps(event), "messageAttributes": {}}
    assert sqs.handle({"Records": [record]}, None, rt) == {"batchItemFailures": []}
    assert len(service.store.list_by_customer("c").orders) == 1
    assert any(s.name.startswith("orders.command") for s in spans.get_finished_spans())


def test_an_extra_commands_metric_is_counted_with_no_other_change(
    metric_reader: object,
) -> None:
    from orders_core.edges.http import HttpApi, HttpRequest
    from tests.unit.test_command_table import EXPEDITE, SEED, TABLE

    api = HttpApi(OrderService(InMemoryStore(), commands=TABLE))
    created = api.handle(
        HttpRequest("POST", "/orders", {"content-type": "application/json"}, body=SEED)
    )
    api.handle(HttpRequest("POST", f"/orders/{created.json()['orderId']}/expedite"))
    data = metric_reader.get_metrics_data()  # type: ignore[attr-defined]
    names = {
        m.name: sum(getattr(p, "value", 0) for p in m.data.data_points)
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    assert names.get(f"orders.{EXPEDITE.metric}", 0) >= 1
