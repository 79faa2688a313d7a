"""The stream relay: stream records -> EventBridge, partial failures retried, nothing lost;
and the whole AWS path end to end in moto."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import boto3
import pytest

from orders_aws import apigw, sqs, stream
from orders_aws.bootstrap import AwsConfig, Runtime
from orders_aws.capacity import item_size, write_units
from orders_aws.dynamodb import DynamoDBStore
from orders_core.application import Change, IdempotencyRecord, event_for
from orders_core.domain import LineItem, Order
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
    created = apigw.handle(apigw_v2(body=SEED, headers={"traceparent": TP}), context, rt)
    order_id = json.loads(created["body"])["orderId"]

    assert stream.handle(stream_event(rt), context, rt) == {"batchItemFailures": []}

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
    assert stream.handle(event, context, rt) == {"batchItemFailures": []}


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
    assert stream.handle(stream_event(rt), context, rt) == {"batchItemFailures": []}
    assert sorted(flaky.published) == sorted(f"{i}.v1" for i in ids)


def test_persistent_failures_are_reported_by_sequence_number(
    rt: Runtime, context: LambdaContext
) -> None:
    ids = make_orders(rt, context, 3)
    flaky = FlakyEvents({f"{ids[1]}.v1": 99})
    rt._clients["events"] = flaky
    event = stream_event(rt)
    result = stream.handle(event, context, rt)
    (failed_seq,) = [
        r["dynamodb"]["SequenceNumber"]
        for r in event["Records"]
        if r["dynamodb"]["NewImage"]["pk"]["S"] == f"ORDER#{ids[1]}"
    ]
    assert result == {"batchItemFailures": [{"itemIdentifier": failed_seq}]}
    assert f"{ids[1]}.v1" not in flaky.published


# -- events that can never be published: to the events DLQ, with their content ---------------


class RejectingEvents(FlakyEvents):
    """A PutEvents that rejects chosen events for good, with a non-retryable error code."""

    def __init__(self, reject: dict[str, str], fail: dict[str, int] | None = None) -> None:
        super().__init__(fail or {})
        self.reject = reject
        self.offered: list[str] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        self.offered += [json.loads(e["Detail"])["id"] for e in Entries]
        keep = [e for e in Entries if json.loads(e["Detail"])["id"] not in self.reject]
        answer = super().put_events(keep) if keep else {"FailedEntryCount": 0, "Entries": []}
        results, kept = [], iter(answer["Entries"])
        for e in Entries:
            code = self.reject.get(json.loads(e["Detail"])["id"])
            results.append({"ErrorCode": code, "ErrorMessage": "no"} if code else next(kept))
        failed = sum(1 for r in results if r.get("ErrorCode"))
        return {"FailedEntryCount": failed, "Entries": results}


def configure(rt: Runtime, monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    """Set relay settings as the deployment would: in the environment, read at init."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from_env = AwsConfig.from_env({**os.environ, "ORDERS_TABLE": rt.config.table})
    rt.config = dataclasses.replace(
        rt.config,
        events_dlq_url=from_env.events_dlq_url,
        relay_give_up_seconds=from_env.relay_give_up_seconds,
    )


def events_dlq(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> str:
    url = boto3.client("sqs").create_queue(QueueName="orders-events-dlq")["QueueUrl"]
    configure(rt, monkeypatch, ORDERS_EVENTS_DLQ_URL=url)
    return url


def aged(event: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The stream event with every record written ``seconds`` ago."""
    import time

    for record in event["Records"]:
        record["dynamodb"]["ApproximateCreationDateTime"] = time.time() - seconds
    return event


def dead_letters(url: str) -> list[dict[str, Any]]:
    got = boto3.client("sqs").receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )
    return got.get("Messages", [])


def sequence_of(event: dict[str, Any], order_id: str) -> str:
    (sequence,) = [
        r["dynamodb"]["SequenceNumber"]
        for r in event["Records"]
        if r["dynamodb"]["NewImage"]["pk"]["S"] == f"ORDER#{order_id}"
    ]
    return str(sequence)


def test_an_event_eventbridge_rejects_for_good_lands_in_the_dlq_with_its_content(
    rt: Runtime, context: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = events_dlq(rt, monkeypatch)
    ids = make_orders(rt, context, 3)
    rejected = f"{ids[1]}.v1"
    bus = RejectingEvents({rejected: "MalformedDetail"})
    rt._clients["events"] = bus
    event = aged(stream_event(rt), 1)

    # Nothing to retry: the stream moves on, the others are published, the rejected one is
    # not offered again (retrying a non-retryable code cannot help).
    assert stream.handle(event, context, rt) == {"batchItemFailures": []}
    assert sorted(bus.published) == sorted(f"{i}.v1" for i in ids if f"{i}.v1" != rejected)
    assert bus.offered.count(rejected) == 1
    (letter,) = dead_letters(url)
    cloudevent = json.loads(letter["Body"])
    assert cloudevent["id"] == rejected
    assert cloudevent["type"] == "io.orderscore.order.created.v1"
    assert cloudevent["data"]["orderId"] == ids[1]
    attributes = {k: v["StringValue"] for k, v in letter["MessageAttributes"].items()}
    assert attributes["reason"] == "MalformedDetail"
    assert attributes["sequenceNumber"] == sequence_of(event, ids[1])
    assert attributes["eventBusName"] == rt.config.event_bus


def test_retryable_failures_are_left_to_lambda_until_the_give_up_age_then_dead_lettered(
    rt: Runtime, context: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = events_dlq(rt, monkeypatch)
    configure(rt, monkeypatch, ORDERS_RELAY_GIVE_UP_SECONDS="3600")
    ids = make_orders(rt, context, 2)
    stuck = f"{ids[0]}.v1"
    rt._clients["events"] = FlakyEvents({stuck: 99})

    young = aged(stream_event(rt), 3599)
    assert stream.handle(young, context, rt) == {
        "batchItemFailures": [{"itemIdentifier": sequence_of(young, ids[0])}]
    }
    assert dead_letters(url) == []

    old = aged(stream_event(rt), 3601)
    assert stream.handle(old, context, rt) == {"batchItemFailures": []}
    (letter,) = dead_letters(url)
    assert json.loads(letter["Body"])["id"] == stuck
    assert letter["MessageAttributes"]["reason"]["StringValue"] == "InternalFailure"


def test_letters_after_a_retried_record_wait_for_the_retry(
    rt: Runtime, context: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lambda retries from the lowest reported sequence number: a rejected event after it is
    seen again then, so dead-lettering it now would dead-letter it twice."""
    url = events_dlq(rt, monkeypatch)
    ids = make_orders(rt, context, 3)
    rt._clients["events"] = RejectingEvents(
        {f"{ids[2]}.v1": "InvalidArgument"}, {f"{ids[0]}.v1": 99}
    )
    event = aged(stream_event(rt), 1)
    result = stream.handle(event, context, rt)
    reported = [f["itemIdentifier"] for f in result["batchItemFailures"]]
    assert min(reported, key=int) == sequence_of(event, ids[0])
    assert dead_letters(url) == []


def test_old_records_the_deadline_left_untried_are_retried_not_dead_lettered(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a long outage every record is past the give-up age: those not even offered to
    EventBridge in this invocation must wait for the next one."""
    url = events_dlq(rt, monkeypatch)
    ids = make_orders(rt, LambdaContext(), 2)
    bus = FlakyEvents({})
    rt._clients["events"] = bus
    event = aged(stream_event(rt), 10 * 3600)
    short = LambdaContext(remaining_ms=rt.config.deadline_margin_ms + 100)
    result = stream.handle(event, short, rt)
    assert {f["itemIdentifier"] for f in result["batchItemFailures"]} == {
        sequence_of(event, i) for i in ids
    }
    assert bus.calls == 0
    assert dead_letters(url) == []


def test_without_a_dlq_nothing_is_dropped(rt: Runtime, context: LambdaContext) -> None:
    ids = make_orders(rt, context, 2)
    rt._clients["events"] = RejectingEvents({f"{ids[1]}.v1": "MalformedDetail"})
    event = aged(stream_event(rt), 10 * 3600)
    assert stream.handle(event, context, rt) == {
        "batchItemFailures": [{"itemIdentifier": sequence_of(event, ids[1])}]
    }


def test_a_dlq_that_cannot_be_written_leaves_the_record_to_lambda(
    rt: Runtime, context: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(
        rt, monkeypatch, ORDERS_EVENTS_DLQ_URL="https://sqs.us-east-1.amazonaws.com/1/missing"
    )
    ids = make_orders(rt, context, 2)
    rt._clients["events"] = RejectingEvents({f"{ids[0]}.v1": "MalformedDetail"})
    event = aged(stream_event(rt), 1)
    assert stream.handle(event, context, rt) == {
        "batchItemFailures": [{"itemIdentifier": sequence_of(event, ids[0])}]
    }


def test_an_unreadable_record_is_dead_lettered_raw_and_the_rest_published(
    rt: Runtime, context: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record the relay cannot even decode would fail every retry and block the shard."""
    url = events_dlq(rt, monkeypatch)
    ids = make_orders(rt, context, 2)
    bus = FlakyEvents({})
    rt._clients["events"] = bus
    event = aged(stream_event(rt), 1)
    broken = next(
        r for r in event["Records"] if r["dynamodb"]["NewImage"]["pk"]["S"] == f"ORDER#{ids[0]}"
    )
    broken["dynamodb"]["NewImage"]["events"] = {"S": "{not json"}
    assert stream.handle(event, context, rt) == {"batchItemFailures": []}
    assert bus.published == [f"{ids[1]}.v1"]
    (letter,) = dead_letters(url)
    assert letter["MessageAttributes"]["reason"]["StringValue"] == "UnreadableRecord"
    assert json.loads(letter["Body"])["NewImage"]["pk"] == {"S": f"ORDER#{ids[0]}"}


def test_dead_lettered_events_replay_onto_the_bus(
    rt: Runtime, context: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deploy.aws import replay

    url = events_dlq(rt, monkeypatch)
    target = bus_to_queue(rt)
    ids = make_orders(rt, context, 2)
    rt._clients["events"] = RejectingEvents({f"{i}.v1": "AccessDeniedException" for i in ids})
    assert stream.handle(aged(stream_event(rt), 1), context, rt) == {"batchItemFailures": []}

    assert replay.main(["--queue-url", url, "--bus", rt.config.event_bus]) == 0

    delivered = drain(target)
    assert sorted(m["detail"]["id"] for m in delivered) == sorted(f"{i}.v1" for i in ids)
    assert {m["detail-type"] for m in delivered} == {"io.orderscore.order.created.v1"}
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"


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
    event = event_for(order, traceparent=TP)
    store.commit(Change(order, 0, (event,)), now=now)
    assert store.last_write_units == 1
    keyed = Order.place("fedcba9876543210fedcba9876543210", items, "customer-42", now)
    record = IdempotencyRecord(
        "k" * 64, "f" * 64, 201, keyed.to_json(), keyed.order_id, 1, now + timedelta(hours=24)
    )
    store.commit(Change(keyed, 0, (event_for(keyed, traceparent=TP),), record), now=now)
    assert store.last_write_units == 4  # a transaction doubles each item's units


TRIGGERS = ["apigw", "sqs", "eventbridge", "stream"]


@pytest.mark.parametrize("module", TRIGGERS)
def test_entrypoint_modules_build_their_runtime_once_from_the_environment(
    aws: None, monkeypatch: pytest.MonkeyPatch, module: str
) -> None:
    import importlib
    import sys

    from orders_aws import bootstrap

    monkeypatch.setenv("ORDERS_TABLE", "orders-from-env")
    monkeypatch.setenv("_HANDLER", f"orders_aws.{module}.handler")  # as Lambda sets it
    bootstrap.reset()
    sys.modules.pop(f"orders_aws.{module}", None)
    importlib.import_module(f"orders_aws.{module}")
    built = bootstrap.current()
    assert built is not None
    assert built.config.table == "orders-from-env"
    assert bootstrap.runtime() is built
    bootstrap.reset()


@pytest.mark.parametrize("module", TRIGGERS)
def test_importing_a_trigger_that_is_not_the_handler_builds_nothing(
    aws: None, monkeypatch: pytest.MonkeyPatch, module: str
) -> None:
    """Tests, and a function whose handler is another trigger, pay no runtime for it; the
    handler then builds it on its first call."""
    import importlib
    import sys

    from orders_aws import bootstrap

    monkeypatch.setenv("ORDERS_TABLE", "orders-from-env")
    monkeypatch.setenv("_HANDLER", "orders_aws.other.handler")
    bootstrap.reset()
    sys.modules.pop(f"orders_aws.{module}", None)
    loaded = importlib.import_module(f"orders_aws.{module}")
    assert bootstrap.current() is None
    assert callable(loaded.handler)
    bootstrap.reset()


def test_a_missing_table_setting_fails_the_init_phase(monkeypatch: pytest.MonkeyPatch) -> None:
    from orders_aws.bootstrap import AwsConfig, ConfigError

    monkeypatch.delenv("ORDERS_TABLE", raising=False)
    with pytest.raises(ConfigError, match="ORDERS_TABLE"):
        AwsConfig.from_env()
