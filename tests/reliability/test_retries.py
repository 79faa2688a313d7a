"""Retries of writes whose answer was lost: the write landed, the client saw an error and
sent it again (botocore's retry, or ours). Nothing may happen twice.

The fault: a ``before-send`` hook answers the first attempts of PutItem/UpdateItem with a
throttling error *after* moto has applied them (moto's own hook runs first), which is what a
timeout after a successful write looks like from the client.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from orders_aws import apigw
from orders_aws.bootstrap import AwsConfig, Runtime, build
from orders_aws.clients import make_client
from tests.aws.conftest import LambdaContext
from tests.aws.samples import apigw_v2
from tests.aws.support import new_table, set_fake_env

SEED = b'{"items":[{"id":"sku-1","qty":2}],"customerId":"c-r"}'
THROTTLED = json.dumps(
    {
        "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "message": "The level of configured provisioned throughput for the table was exceeded.",
    }
).encode()


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


IN_TRANSACTION = json.dumps(
    {
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionConflictException",
        "message": "Transaction is ongoing for the item",
    }
).encode()


class LoseAnswers:
    """Replaces the answer of the first ``times`` calls with an error (throttling unless
    told otherwise)."""

    def __init__(self, times: int, error: bytes = THROTTLED) -> None:
        self.times = times
        self.error = error
        self.calls = 0

    def __call__(self, request: Any, **_: Any) -> AWSResponse | None:
        self.calls += 1
        if self.calls > self.times:
            return None
        return AWSResponse(request.url, 400, {"x-amzn-RequestId": "r"}, _Raw(self.error))


@pytest.fixture
def rt(monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    from moto import mock_aws

    set_fake_env(monkeypatch)
    with mock_aws():
        client = make_client()
        yield build(AwsConfig(table=new_table(client)), client)


def orders(rt: Runtime) -> list[str]:
    scan = rt.dynamodb.scan(TableName=rt.config.table)["Items"]
    return [i["pk"]["S"] for i in scan if i["pk"]["S"].startswith("ORDER#")]


def test_a_create_whose_answer_was_lost_is_not_doubled(rt: Runtime) -> None:
    lost = LoseAnswers(times=1)
    rt.dynamodb.meta.events.register("before-send.dynamodb.PutItem", lost)
    response = apigw.handle(apigw_v2(body=SEED), LambdaContext(), rt)
    assert response["statusCode"] == 201
    assert orders(rt) == [f"ORDER#{json.loads(response['body'])['orderId']}"]


@pytest.mark.parametrize(
    "error", [THROTTLED, IN_TRANSACTION], ids=["throttled", "transaction-conflict"]
)
def test_a_confirm_whose_answer_was_lost_is_a_success_not_a_409(rt: Runtime, error: bytes) -> None:
    """Also when the answer that came back was a TransactionConflictException (which the
    SDK does not retry): the write had landed, and is recognised by its token."""
    created = apigw.handle(apigw_v2(body=SEED), LambdaContext(), rt)
    location = created["headers"]["location"]
    lost = LoseAnswers(times=1, error=error)
    rt.dynamodb.meta.events.register("before-send.dynamodb.UpdateItem", lost)
    confirmed = apigw.handle(apigw_v2("POST", f"{location}/confirm"), LambdaContext(), rt)
    assert confirmed["statusCode"] == 200, confirmed["body"]
    assert json.loads(confirmed["body"])["version"] == 2


def test_answers_lost_past_every_retry_are_a_503(rt: Runtime) -> None:
    lost = LoseAnswers(times=99)
    rt.dynamodb.meta.events.register("before-send.dynamodb.PutItem", lost)
    response = apigw.handle(apigw_v2(body=SEED), LambdaContext(), rt)
    # The first attempt landed; every answer said "throttled", so the client cannot know.
    # A keyless create cannot be recognised later either: send Idempotency-Key.
    assert response["statusCode"] in (201, 503)
    assert len(orders(rt)) == 1
