"""The stream relay: stream records -> EventBridge, partial failures retried, nothing lost;
and the whole AWS path end to end in moto."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from orders_aws import http_api, relay, sqs
from orders_aws.bootstrap import Runtime
from orders_aws.dynamodb import DynamoDBStore, item_size, write_units
from orders_core.domain import LineItem, Order
from orders_core.events import DomainEvent
from orders_core.idempotency import IdempotencyRecord
from orders_core.ports import Change
from tests.aws.conftest import LambdaContext, stream_event
from tests.aws.samples import apigw_v2, command_event, sqs_record

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
SEED = b'{"items":[{"id":"sku-1","qty":2},{"id":"sku-2","qty":1},{"id":"sku-3","qty":4}]}'


def bus_to_queue(rt: Runtime) -> str:
    """A bus with a rule sending every order event to an SQS queue; returns the queue URL."""
    events, queues = boto3.client("events"), boto3.client("sqs")
    events.create_event_bus(Name=rt.config.event_bus)
    url = queues.create_queue(QueueName="order-events")["QueueUrl"]
    arn = queues.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="all-orders",
        EventBusName=rt.config.event_bus,
        EventPattern=json.dumps({"source": ["urn:orders-core:orders"]}),
    )
    events.put_targets(
        Rule="all-orders", EventBusName=rt.config.event_bus, Targets=[{"Id": "q", "Arn": arn}]
    )
    return url


def drain(url: str) -> list[dict[str, Any]]:
    queues = boto3.client("sqs")
    out: list[dict[str, Any]] = []
    for _ in range(10):
        got = queues.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            break
        out += [json.loads(m["Body"]) for m in got]
    return out


def test_end_to_end_http_to_stream_to_bus_to_queue(rt: Runtime, context: LambdaContext) -> None:
    url = bus_to_queue(rt)
    created = http_api.handle(apigw_v2(body=SEED, headers={"traceparent": TP}), context, rt)
    order_id = json.loads(created["body"])["orderId"]

    assert relay.handle(stream_event(rt), context, rt) == {"batchItemFailures": []}

    (message,) = drain(url)
    assert message["detail-type"] == "io.orderscore.order.created.v1"
    cloudevent = message["detail"]
    assert cloudevent["id"] == f"{order_id}.v1"
    assert cloudevent["subject"] == cloudevent["partitionkey"] == order_id
    assert cloudevent["data"] == json.loads(created["body"])
    assert cloudevent["traceparent"].split("-")[1] == TP.split("-")[1]


def test_remove_records_are_ignored(rt: Runtime, context: LambdaContext) -> None:
    bus_to_queue(rt)
    event = {
        "Records": [
            {
                "eventName": "REMOVE",
                "dynamodb": {"SequenceNumber": "1", "OldImage": {"pk": {"S": "IDEMPOTENCY#x"}}},
            }
        ]
    }
    assert relay.handle(event, context, rt) == {"batchItemFailures": []}


class FlakyEvents:
    """A PutEvents that fails chosen entries a given number of times (per event id)."""

    def __init__(self, fail: dict[str, int]) -> None:
        self.fail = dict(fail)
        self.published: list[str] = []
        self.calls = 0

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        self.calls += 1
        assert len(Entries) <= 10
        results, failed = [], 0
        for entry in Entries:
            event_id = json.loads(entry["Detail"])["id"]
            if self.fail.get(event_id, 0) > 0:
                self.fail[event_id] -= 1
                results.append({"ErrorCode": "InternalFailure", "ErrorMessage": "try again"})
                failed += 1
            else:
                self.published.append(event_id)
                results.append({"EventId": f"eb-{event_id}"})
        return {"FailedEntryCount": failed, "Entries": results}


def make_orders(rt: Runtime, context: LambdaContext, n: int) -> list[str]:
    records = [
        sqs_record(
            command_event(
                "io.orderscore.order.create.v1", {"items": [{"sku": "a", "quantity": 1}]}, f"e-{i}"
            ),
            f"m-{i}",
        )
        for i in range(n)
    ]
    sqs.handle({"Records": records}, context, rt)
    images = [r["dynamodb"]["NewImage"] for r in stream_event(rt)["Records"]]
    return [
        json.loads(i["body"]["S"])["orderId"] for i in images if i["pk"]["S"].startswith("ORDER#")
    ]


def test_partial_putevents_failures_are_retried(rt: Runtime, context: LambdaContext) -> None:
    ids = make_orders(rt, context, 12)  # two chunks of PutEvents
    flaky = FlakyEvents({f"{ids[3]}.v1": 1, f"{ids[11]}.v1": 2})
    rt._clients["events"] = flaky
    assert relay.handle(stream_event(rt), context, rt) == {"batchItemFailures": []}
    assert sorted(flaky.published) == sorted(f"{i}.v1" for i in ids)


def test_persistent_failures_are_reported_by_sequence_number(
    rt: Runtime, context: LambdaContext
) -> None:
    ids = make_orders(rt, context, 3)
    flaky = FlakyEvents({f"{ids[1]}.v1": 99})
    rt._clients["events"] = flaky
    event = stream_event(rt)
    result = relay.handle(event, context, rt)
    (failed_seq,) = [
        r["dynamodb"]["SequenceNumber"]
        for r in event["Records"]
        if r["dynamodb"]["NewImage"]["pk"]["S"] == f"ORDER#{ids[1]}"
    ]
    assert result == {"batchItemFailures": [{"itemIdentifier": failed_seq}]}
    assert f"{ids[1]}.v1" not in flaky.published


# -- write capacity ----------------------------------------------------------------------------


def test_item_sizes_follow_dynamodbs_rules() -> None:
    assert item_size({"pk": {"S": "abc"}}) == 2 + 3
    assert item_size({"n": {"N": "12345"}}) == 1 + 3 + 1
    assert item_size({"b": {"B": b"\x00" * 10}}) == 1 + 10
    assert item_size({"s": {"S": "\u00e9"}}) == 1 + 2
    assert write_units({"s": {"S": "x" * 1021}}) == 1  # 1 + 1021 + ... = 1022 bytes
    assert write_units({"s": {"S": "x" * 1024}}) == 2
    assert write_units({"s": {"S": "x"}}, transactional=True) == 2


def test_a_three_item_create_costs_one_write_unit_two_with_a_key(rt: Runtime) -> None:
    store = rt.service.store
    assert isinstance(store, DynamoDBStore)
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    items = [
        LineItem(sku=f"sku-{i}", quantity=i + 1, unit_price=1999, currency="EUR") for i in range(3)
    ]
    order = Order.place("0123456789abcdef0123456789abcdef", items, "customer-42", now)
    event = DomainEvent.for_order(order, traceparent=TP)
    store.commit(Change(order, 0, (event,)), now=now)
    assert store.last_write_units == 1
    keyed = Order.place("fedcba9876543210fedcba9876543210", items, "customer-42", now)
    record = IdempotencyRecord(
        "k" * 64, "f" * 64, 201, keyed.to_json(), keyed.order_id, 1, now + timedelta(hours=24)
    )
    store.commit(Change(keyed, 0, (DomainEvent.for_order(keyed, traceparent=TP),), record), now=now)
    assert store.last_write_units == 4  # a transaction doubles each item's units


@pytest.mark.parametrize(
    "module", ["http_handler", "queue_handler", "eventbridge_handler", "relay_handler"]
)
def test_entrypoint_modules_build_their_runtime_once_from_the_environment(
    aws: None, monkeypatch: pytest.MonkeyPatch, module: str
) -> None:
    import importlib
    import sys

    from orders_aws import bootstrap

    monkeypatch.setenv("ORDERS_TABLE", "orders-from-env")
    bootstrap.reset()
    sys.modules.pop(f"orders_aws.{module}", None)
    loaded = importlib.import_module(f"orders_aws.{module}")
    assert loaded._RT.config.table == "orders-from-env"
    assert bootstrap.runtime() is loaded._RT
    bootstrap.reset()


def test_a_missing_table_setting_fails_the_init_phase(monkeypatch: pytest.MonkeyPatch) -> None:
    from orders_aws.bootstrap import AwsConfig, ConfigError

    monkeypatch.delenv("ORDERS_TABLE", raising=False)
    with pytest.raises(ConfigError, match="ORDERS_TABLE"):
        AwsConfig.from_env()
