"""One trace from an HTTP request to the consumer of the published event, across the async
hop: through the local runtime, and through the AWS path in moto."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from orders_core import telemetry
from orders_core.domain import DomainEvent

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TP = f"00-{TRACE}-00f067aa0ba902b7-01"
SEED = b'{"items":[{"id":"sku-1","qty":2}]}'


def trace_of(span: ReadableSpan) -> str:
    return format(span.context.trace_id, "032x")


def by_name(spans: list[ReadableSpan], prefix: str) -> ReadableSpan:
    (found,) = [s for s in spans if s.name.startswith(prefix)]
    return found


def consume(received: list[str]) -> Any:
    """A downstream consumer: continues the trace its event carries."""

    def subscriber(event: DomainEvent) -> None:
        with telemetry.tracer().start_as_current_span(
            "consume order event",
            context=telemetry.context_from(event.traceparent),
            kind=trace.SpanKind.CONSUMER,
        ):
            received.append(event.id)

    return subscriber


def test_local_runtime_one_trace_from_request_to_consumer(
    tmp_path: Path, spans: InMemorySpanExporter, metric_reader: InMemoryMetricReader
) -> None:
    from orders_local.runtime import LocalConfig, LocalRuntime
    from orders_local.sinks import CallbackSink
    from tests.local.support import Client

    received: list[str] = []
    rt = LocalRuntime(
        LocalConfig(db=tmp_path / "o.db", port=0), publisher=CallbackSink(consume(received))
    )
    rt.start()
    try:
        client = Client(rt.server.server_address[1])
        order_id = client.request("POST", "/orders", SEED, {"traceparent": TP}).json()["orderId"]
        client.close()
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        rt.stop()
    assert received == [f"{order_id}.v1"]
    finished = spans.get_finished_spans()
    server = by_name(finished, "POST /orders")
    command = by_name(finished, "orders.command")
    publish = by_name(finished, "publish io.orderscore.order.created.v1")
    consumer = by_name(finished, "consume order event")
    assert {trace_of(s) for s in (server, command, publish, consumer)} == {TRACE}
    assert server.kind is trace.SpanKind.SERVER
    assert server.attributes["http.route"] == "/orders"
    assert server.attributes["http.response.status_code"] == 201
    assert command.parent.span_id == server.context.span_id
    assert command.attributes["orders.order_id"] == order_id
    assert publish.kind is trace.SpanKind.PRODUCER
    assert consumer.parent.span_id == publish.context.span_id

    data = metric_reader.get_metrics_data()
    names = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert {"orders.created", "orders.command.duration", "orders.relay.lag"} <= names


def test_aws_one_trace_from_http_api_to_the_queue_consumer(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    from moto import mock_aws

    from orders_aws import apigw, sqs, stream
    from orders_aws.bootstrap import AwsConfig, build
    from orders_aws.clients import make_client
    from tests.aws.conftest import LambdaContext, stream_event
    from tests.aws.samples import apigw_v2
    from tests.aws.support import new_table, set_fake_env

    set_fake_env(monkeypatch)
    with mock_aws():
        client = make_client()
        rt = build(AwsConfig(table=new_table(client), event_bus="orders-bus"), client)
        events, queues = boto3.client("events"), boto3.client("sqs")
        events.create_event_bus(Name="orders-bus")
        url = queues.create_queue(QueueName="downstream")["QueueUrl"]
        arn = queues.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events.put_rule(
            Name="all",
            EventBusName="orders-bus",
            EventPattern=json.dumps({"source": ["urn:orders-core:orders"]}),
        )
        # The target delivers the CloudEvent itself (detail), as a consumer queue would want.
        events.put_targets(
            Rule="all",
            EventBusName="orders-bus",
            Targets=[{"Id": "q", "Arn": arn, "InputPath": "$.detail"}],
        )

        created = apigw.handle(
            apigw_v2(body=SEED, headers={"traceparent": TP}), LambdaContext(), rt
        )
        assert created["statusCode"] == 201
        stream.handle(stream_event(rt), LambdaContext(function_name="orders-relay"), rt)
        (message,) = queues.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        # moto delivers the whole envelope (it ignores InputPath); AWS would deliver detail.
        body = json.dumps(json.loads(message["Body"])["detail"])
        record = {
            "messageId": message["MessageId"],
            "body": body,
            "eventSourceARN": arn,
            "messageAttributes": {},
        }
        # The queue entrypoint consumes it (a domain event is no command: it is refused, but
        # the processing span still belongs to the request's trace).
        sqs.handle({"Records": [record]}, LambdaContext(function_name="orders-queue"), rt)

    finished = spans.get_finished_spans()
    server = by_name(finished, "POST /orders")
    publish = by_name(finished, "publish io.orderscore.order.created.v1")
    consumer = by_name(finished, "process io.orderscore.order.created.v1")
    batch = by_name(finished, "orders-commands process")
    assert server.attributes["faas.trigger"] == "http"
    assert server.attributes["faas.invocation_id"] == LambdaContext().aws_request_id
    assert {trace_of(server), trace_of(publish), trace_of(consumer)} == {TRACE}
    assert consumer.parent.span_id == publish.context.span_id
    # The batch span is its own trace, linked to each record's producer.
    assert [format(link.context.span_id, "016x") for link in batch.links] == [
        format(publish.context.span_id, "016x")
    ]
    assert consumer.links[0].context.span_id == batch.context.span_id
