"""Fixtures for the AWS adapter: moto in-process, a table, a runtime, a Lambda context."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from orders_aws.bootstrap import AwsConfig, Runtime, build
from orders_aws.clients import make_client
from tests.aws.support import new_table, set_fake_env


@dataclass
class LambdaContext:
    """The parts of Lambda's context object the handlers use."""

    remaining_ms: int = 30_000
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    function_name: str = "orders-http"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from moto import mock_aws

    set_fake_env(monkeypatch)
    with mock_aws():
        yield


@pytest.fixture
def rt(aws: None) -> Runtime:
    client = make_client()
    table = new_table(client)
    return build(AwsConfig(table=table, event_bus="orders-bus"), client)


@pytest.fixture
def context() -> LambdaContext:
    return LambdaContext()


def stream_event(rt: Runtime) -> dict[str, Any]:
    """The table's stream so far, shaped as Lambda delivers it to the relay."""
    import boto3

    from tests.aws.support import stream_images

    streams = boto3.client("dynamodbstreams")
    arn = rt.dynamodb.describe_table(TableName=rt.config.table)["Table"]["LatestStreamArn"]
    records = []
    for i, (name, image) in enumerate(stream_images(rt.dynamodb, streams, rt.config.table)):
        records.append(
            {
                "eventID": f"e{i}",
                "eventName": name,
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": {
                    "ApproximateCreationDateTime": 1_700_000_000,
                    "NewImage": image,
                    "SequenceNumber": str(100 + i),
                    "SizeBytes": 100,
                    "StreamViewType": "NEW_IMAGE",
                },
                "eventSourceARN": arn,
            }
        )
    return {"Records": records}
