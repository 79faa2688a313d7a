"""The EventBridge publisher: the publisher contract on moto (bus -> rule -> SQS queue), and
how it splits batches and reports the entries EventBridge did not accept."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from orders_aws import publisher
from orders_aws.clients import client
from orders_aws.publisher import (
    MAX_REQUEST_BYTES,
    TOO_LARGE,
    EventBridgePublisher,
    entry,
    entry_size,
)
from orders_core.application import EventPublisher, PublishFailed, event_for
from orders_core.domain import LineItem, Order
from orders_core.testing.publisher_contract import PublisherContract, order_events
from tests.aws.support import set_fake_env

BUS = "orders-contract"


class TestEventBridgePublisherMoto(PublisherContract):
    @pytest.fixture(autouse=True)
    def _moto(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
        from moto import mock_aws

        set_fake_env(monkeypatch)
        with mock_aws():
            yield

    def make_publisher(self, tmp_path: Path) -> EventPublisher:
        events, queues = boto3.client("events"), boto3.client("sqs")
        events.create_event_bus(Name=BUS)
        self.queue = queues.create_queue(QueueName="published")["QueueUrl"]
        arn = queues.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])
        events.put_rule(
            Name="all", EventBusName=BUS, EventPattern=json.dumps({"source": [{"prefix": ""}]})
        )
        events.put_targets(
            Rule="all",
            EventBusName=BUS,
            Targets=[{"Id": "q", "Arn": arn["Attributes"]["QueueArn"]}],
        )
        self.seen: list[dict[str, Any]] = []
        return EventBridgePublisher(client("events"), BUS)

    def received(self, publisher: EventPublisher) -> list[dict[str, Any]]:
        queues = boto3.client("sqs")
        for _ in range(20):
            got = queues.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10)
            if not got.get("Messages"):
                break
            for message in got["Messages"]:
                self.seen.append(json.loads(message["Body"])["detail"])
                queues.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])
        return list(self.seen)

    @contextlib.contextmanager
    def sink_down(self, publisher: EventPublisher) -> Iterator[None]:
        assert isinstance(publisher, EventBridgePublisher)
        working = publisher.client
        publisher.client = Unreachable()  # type: ignore[assignment]
        try:
            yield
        finally:
            publisher.client = working


class Unreachable:
    """A PutEvents whose every call fails as a whole, as after the SDK gave up retrying."""

    def put_events(self, **_: Any) -> dict[str, Any]:
        from botocore.exceptions import EndpointConnectionError

        raise EndpointConnectionError(endpoint_url="https://events.us-east-1.amazonaws.com")


class Recording:
    """A PutEvents that records each call and answers with chosen error codes by event id."""

    def __init__(self, codes: dict[str, str] | None = None) -> None:
        self.codes = codes or {}
        self.calls: list[list[dict[str, Any]]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        self.calls.append(Entries)
        results = []
        for item in Entries:
            code = self.codes.get(json.loads(item["Detail"])["id"])
            results.append({"ErrorCode": code, "ErrorMessage": "no"} if code else {"EventId": "x"})
        return {"FailedEntryCount": sum(1 for r in results if "ErrorCode" in r), "Entries": results}


def test_calls_carry_at_most_ten_entries_in_order() -> None:
    events = order_events(23)
    sink = Recording()
    EventBridgePublisher(sink, BUS).publish(events)  # type: ignore[arg-type]
    assert [len(c) for c in sink.calls] == [10, 10, 3]
    sent = [json.loads(i["Detail"])["id"] for c in sink.calls for i in c]
    assert sent == [e.id for e in events]
    assert {i["EventBusName"] for c in sink.calls for i in c} == {BUS}


def test_calls_stay_under_the_request_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    events = order_events(4)
    monkeypatch.setattr(publisher, "MAX_REQUEST_BYTES", 2 * entry_size(entry(events[0], BUS)) + 1)
    sink = Recording()
    EventBridgePublisher(sink, BUS).publish(events)  # type: ignore[arg-type]
    assert [len(c) for c in sink.calls] == [2, 2]


def test_entry_failures_name_the_events_and_whether_to_retry() -> None:
    events = order_events(12)
    codes = {events[1].id: "ThrottlingException", events[11].id: "MalformedDetail"}
    sink = Recording(codes)
    with pytest.raises(PublishFailed) as raised:
        EventBridgePublisher(sink, BUS).publish(events)  # type: ignore[arg-type]
    failed = {f.event.id: (f.code, f.retryable) for f in raised.value.failed}
    assert failed == {
        events[1].id: ("ThrottlingException", True),
        events[11].id: ("MalformedDetail", False),
    }
    assert not raised.value.retryable
    assert len(sink.calls) == 2  # the second call was made although the first had a failure


def test_an_entry_too_large_for_any_call_is_rejected_for_good_and_the_rest_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = order_events(3)
    small = entry_size(entry(events[0], BUS))
    items = [LineItem(sku="sku-1", quantity=2, unit_price=1999, currency="EUR")] * 5
    big = event_for(Order.place("f" * 32, items, "customer-1", datetime.now(UTC)))
    assert entry_size(entry(big, BUS)) > small
    monkeypatch.setattr(publisher, "MAX_REQUEST_BYTES", small)
    sink = Recording()
    with pytest.raises(PublishFailed) as raised:
        EventBridgePublisher(sink, BUS).publish([events[0], big, events[2]])  # type: ignore[arg-type]
    (failure,) = raised.value.failed
    assert (failure.event.id, failure.code, failure.retryable) == (big.id, TOO_LARGE, False)
    sent = [json.loads(i["Detail"])["id"] for c in sink.calls for i in c]
    assert sent == [events[0].id, events[2].id]
    assert MAX_REQUEST_BYTES == 256 * 1024
