"""Helpers for the AWS adapter's tests: moto setup, table creation, reading the stream."""

from __future__ import annotations

import os
from typing import Any

from orders_aws.item_events import events_from_stream_image
from orders_aws.table import create_table
from orders_core.domain import DomainEvent

FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    # botocore >= 1.44 builds account-based endpoints that moto's Streams API does not serve.
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
}


def set_fake_env(monkeypatch: Any) -> None:
    for name, value in FAKE_ENV.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(name, raising=False)


def new_table(client: Any, name: str = "orders") -> str:
    create_table(client, name)
    return name


def stream_images(client: Any, streams: Any, table: str) -> list[tuple[str, dict[str, Any]]]:
    """(eventName, NewImage) of every record in the table's stream, in order."""
    arn = client.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    out: list[tuple[str, dict[str, Any]]] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        for _ in range(100):
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            out += [(r["eventName"], r["dynamodb"].get("NewImage", {})) for r in page["Records"]]
            iterator = page.get("NextShardIterator")
            if not page["Records"] or iterator is None:
                break
    return out


def stream_events(client: Any, streams: Any, table: str, order_id: str) -> list[DomainEvent]:
    return [
        e
        for _, image in stream_images(client, streams, table)
        for e in events_from_stream_image(image)
        if e.order_id == order_id
    ]


def region() -> str:
    return os.environ.get("AWS_REGION", "us-east-1")
