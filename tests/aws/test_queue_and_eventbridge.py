"""SQS and EventBridge functions: redelivery has one effect, poison records are not retried."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import boto3
import pytest

from orders_aws import eventbridge, sqs
from orders_aws.bootstrap import Runtime
from orders_core.errors import NotFound, StoreUnavailable
from tests.aws.conftest import LambdaContext
from tests.aws.samples import command_event, sqs_record
from tests.aws.samples import eventbridge as eb_event

CREATE = "io.orderscore.order.create.v1"
DATA = {"items": [{"sku": "a", "quantity": 1}], "customerId": "c-q"}


def orders(rt: Runtime) -> list[str]:
    return [o.order_id for o in rt.service.store.list_by_customer("c-q").orders]


def test_the_same_sqs_record_three_times_has_one_effect(
    rt: Runtime, context: LambdaContext
) -> None:
    record = sqs_record(command_event(CREATE, DATA))
    for _ in range(3):
        assert sqs.handle({"Records": [record]}, context, rt) == {"batchItemFailures": []}
    assert len(orders(rt)) == 1


def test_a_poison_record_is_dead_lettered_not_retried(rt: Runtime, context: LambdaContext) -> None:
    client = boto3.client("sqs")
    poison_url = client.create_queue(QueueName="orders-poison")["QueueUrl"]
    rt_with_poison = Runtime(
        rt.config.__class__(**{**rt.config.__dict__, "poison_queue_url": poison_url}),
        rt.service,
        rt.api,
        rt.dynamodb,
    )
    batch = {
        "Records": [
            sqs_record(command_event(CREATE, DATA, "e-1"), "m-1"),
            sqs_record("{not json", "m-2"),
            sqs_record(command_event(CREATE, {"items": []}, "e-3"), "m-3"),
            sqs_record(command_event(CREATE, DATA, "e-4"), "m-4"),
        ]
    }
    assert sqs.handle(batch, context, rt_with_poison) == {"batchItemFailures": []}
    assert len(orders(rt)) == 2
    dead = client.receive_message(
        QueueUrl=poison_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )["Messages"]
    reasons = sorted(m["MessageAttributes"]["reason"]["StringValue"] for m in dead)
    assert reasons == ["malformed-request", "validation-failed"]


def test_transient_failures_are_reported_and_fifo_keeps_order(
    rt: Runtime, context: LambdaContext
) -> None:
    calls = {"n": 0}
    real = rt.service.store.commit

    def flaky(change, *, now):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise StoreUnavailable("throttled")
        return real(change, now=now)

    rt.service.store.commit = flaky  # type: ignore[method-assign]
    records = [
        sqs_record(command_event(CREATE, DATA, f"e-{i}"), f"m-{i}", fifo=True) for i in range(4)
    ]
    result = sqs.handle({"Records": records}, context, rt)
    assert result == {"batchItemFailures": [{"itemIdentifier": f"m-{i}"} for i in (1, 2, 3)]}
    # Redelivered, they succeed; the first is not applied twice.
    assert sqs.handle({"Records": records}, context, rt) == {"batchItemFailures": []}
    assert len(orders(rt)) == 4


def test_sqs_message_attributes_carry_trace_context(rt: Runtime, context: LambdaContext) -> None:
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    record = sqs_record(command_event(CREATE, DATA), attributes={"traceparent": tp})
    sqs.handle({"Records": [record]}, context, rt)
    (order_id,) = orders(rt)
    item = rt.dynamodb.get_item(
        TableName=rt.config.table, Key={"pk": {"S": f"ORDER#{order_id}"}, "sk": {"S": "ORDER"}}
    )["Item"]
    assert json.loads(item["events"]["S"])[0]["traceparent"].split("-")[1] == tp.split("-")[1]


def test_eventbridge_detail_as_data_and_as_a_whole_cloudevent(
    rt: Runtime, context: LambdaContext
) -> None:
    first = eventbridge.handle(eb_event(DATA), context, rt)
    assert first["status"] == "ok"
    for _ in range(2):  # redelivered: no second effect
        assert eventbridge.handle(eb_event(DATA), context, rt)["replayed"] is True
    whole = json.loads(command_event(CREATE, DATA, "e-whole"))
    assert (
        eventbridge.handle(eb_event(whole, detail_type="anything"), context, rt)["status"] == "ok"
    )
    assert len(orders(rt)) == 2


def with_poison_queue(rt: Runtime) -> tuple[Runtime, str]:
    url = boto3.client("sqs").create_queue(QueueName="orders-poison")["QueueUrl"]
    return replace(rt, config=replace(rt.config, poison_queue_url=url)), url


def dead_letters(url: str) -> list[dict[str, Any]]:
    return (
        boto3.client("sqs")
        .receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
        .get("Messages", [])
    )


def test_eventbridge_dead_letters_what_can_never_succeed_with_its_content(
    rt: Runtime, context: LambdaContext
) -> None:
    rt_poison, url = with_poison_queue(rt)
    result = eventbridge.handle(eb_event({"items": "nope"}), context, rt_poison)
    assert result == {"status": "rejected", "problem": "validation-failed"}
    assert orders(rt) == []
    (dead,) = dead_letters(url)
    assert json.loads(dead["Body"])["detail"] == {"items": "nope"}
    # Without a poison queue it is raised, so the function's on-failure destination keeps
    # the event: poison is never dropped.
    with pytest.raises(eventbridge.PoisonCommand, match="validation-failed"):
        eventbridge.handle(eb_event({"items": "nope"}), context, rt)


def test_eventbridge_retries_what_may_succeed_later(rt: Runtime, context: LambdaContext) -> None:
    early = eb_event({"orderId": "not-yet"}, "io.orderscore.order.confirm.v1", "e-early")
    with pytest.raises(NotFound):
        eventbridge.handle(early, context, with_poison_queue(rt)[0])


def test_one_odd_record_never_fails_its_batch(rt: Runtime, context: LambdaContext) -> None:
    rt_poison, url = with_poison_queue(rt)
    deep = '{"specversion":"1.0","id":"d","source":"s","type":"t","data":' + "[" * 50_000
    records = [sqs_record(command_event(CREATE, DATA, f"e-{i}"), f"m-{i}") for i in range(8)]
    records.insert(3, sqs_record(command_event(CREATE, DATA, "e-tp", traceparent=5), "m-tp"))  # type: ignore[arg-type]
    records.insert(6, sqs_record(deep, "m-deep"))
    records.append({"messageId": "m-odd", "body": 7, "messageAttributes": {"traceparent": 5}})
    result = sqs.handle({"Records": records}, context, rt_poison)
    assert result == {"batchItemFailures": []}, result
    # A legal CloudEvent whose traceparent is a number: processed, its trace context ignored.
    assert len(orders(rt)) == 9
    reasons = {m["MessageAttributes"]["sourceMessageId"]["StringValue"] for m in dead_letters(url)}
    assert reasons == {"m-deep", "m-odd"}


def test_out_of_order_commands_are_retried_not_dropped(rt: Runtime, context: LambdaContext) -> None:
    created = sqs.handle({"Records": [sqs_record(command_event(CREATE, DATA, "e-c"))]}, context, rt)
    assert created == {"batchItemFailures": []}
    (oid,) = orders(rt)
    fulfill = sqs_record(
        command_event("io.orderscore.order.fulfill.v1", {"orderId": oid}, "e-f"), "m-f"
    )
    confirm = sqs_record(
        command_event("io.orderscore.order.confirm.v1", {"orderId": oid}, "e-k"), "m-k"
    )
    missing = sqs_record(
        command_event("io.orderscore.order.confirm.v1", {"orderId": "later"}, "e-m"), "m-m"
    )
    first = sqs.handle({"Records": [fulfill, confirm, missing]}, context, rt)
    assert first == {"batchItemFailures": [{"itemIdentifier": "m-f"}, {"itemIdentifier": "m-m"}]}
    assert sqs.handle({"Records": [fulfill]}, context, rt) == {"batchItemFailures": []}
    status = rt.service.store.get(oid)
    assert status is not None
    assert status.status == "FULFILLED"


def test_without_a_poison_queue_poison_stays_for_the_redrive_policy(
    rt: Runtime, context: LambdaContext
) -> None:
    # A transition out of a terminal status can never succeed: poison, yet not deleted.
    sqs.handle({"Records": [sqs_record(command_event(CREATE, DATA, "e-c"))]}, context, rt)
    (oid,) = orders(rt)
    cancel = command_event("io.orderscore.order.cancel.v1", {"orderId": oid}, "e-x")
    sqs.handle({"Records": [sqs_record(cancel)]}, context, rt)
    confirm = sqs_record(
        command_event("io.orderscore.order.confirm.v1", {"orderId": oid}, "e-y"), "m-y"
    )
    bad = sqs_record("{not json", "m-bad")
    result = sqs.handle({"Records": [confirm, bad]}, context, rt)
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-y"}, {"itemIdentifier": "m-bad"}]}


def test_a_failing_poison_queue_leaves_the_record_on_its_queue(
    rt: Runtime, context: LambdaContext
) -> None:
    gone = replace(
        rt,
        config=replace(
            rt.config, poison_queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/gone"
        ),
    )
    result = sqs.handle({"Records": [sqs_record("{not json", "m-bad")]}, context, gone)
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-bad"}]}
