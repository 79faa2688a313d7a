"""The HTTP API function with payload format 2.0 events, against DynamoDB in moto."""

from __future__ import annotations

import json

import pytest

from orders_aws import apigw
from orders_aws.bootstrap import Runtime
from tests.aws.conftest import LambdaContext
from tests.aws.samples import apigw_v2

SEED = b'{"items":[{"id":"sku-1","qty":2}],"customerId":"c-1"}'


def test_create_then_get_then_confirm(rt: Runtime, context: LambdaContext) -> None:
    created = apigw.handle(apigw_v2(body=SEED), context, rt)
    assert created["statusCode"] == 201
    assert created["isBase64Encoded"] is False
    order = json.loads(created["body"])
    assert order["status"] == "PENDING"
    location = created["headers"]["location"]
    got = apigw.handle(apigw_v2("GET", location), context, rt)
    assert json.loads(got["body"]) == order
    confirmed = apigw.handle(
        apigw_v2("POST", f"{location}/confirm", headers={"if-match": '"1"'}), context, rt
    )
    assert (confirmed["statusCode"], confirmed["headers"]["etag"]) == (200, '"2"')


def test_head_is_get_without_its_body(rt: Runtime, context: LambdaContext) -> None:
    created = apigw.handle(apigw_v2(body=SEED), context, rt)
    location = created["headers"]["location"]
    got = apigw.handle(apigw_v2("GET", location), context, rt)
    head = apigw.handle(apigw_v2("HEAD", location), context, rt)
    assert (head["statusCode"], head["headers"]["etag"]) == (200, got["headers"]["etag"])
    assert head["body"] == ""


def test_base64_bodies_and_query_strings(rt: Runtime, context: LambdaContext) -> None:
    created = apigw.handle(apigw_v2(body=SEED, base64_body=True), context, rt)
    assert created["statusCode"] == 201
    listing = apigw.handle(apigw_v2("GET", "/orders", query="customerId=c-1&limit=5"), context, rt)
    assert [o["orderId"] for o in json.loads(listing["body"])["orders"]] == [
        json.loads(created["body"])["orderId"]
    ]


def test_a_blank_query_value_reaches_the_binding(rt: Runtime, context: LambdaContext) -> None:
    listing = apigw.handle(apigw_v2("GET", "/orders", query="customerId=c-1&limit="), context, rt)
    assert listing["statusCode"] == 400  # limit= is refused, not read as "no limit"


def test_undecodable_base64_is_a_400_problem(rt: Runtime, context: LambdaContext) -> None:
    event = apigw_v2(body=SEED, base64_body=True)
    event["body"] = "***not base64***"
    response = apigw.handle(event, context, rt)
    assert response["statusCode"] == 400
    assert response["headers"]["content-type"] == "application/problem+json"


def test_idempotency_is_scoped_by_jwt_subject(rt: Runtime, context: LambdaContext) -> None:
    def post(sub: str) -> dict:  # type: ignore[type-arg]
        event = apigw_v2(
            body=SEED,
            headers={"idempotency-key": "k-1"},
            claims={"sub": sub, "iss": "https://issuer.example"},
        )
        return apigw.handle(event, context, rt)

    alice, alice_again, bob = post("alice"), post("alice"), post("bob")
    assert alice_again["body"] == alice["body"]
    assert alice_again["headers"]["idempotent-replayed"] == "true"
    assert json.loads(bob["body"])["orderId"] != json.loads(alice["body"])["orderId"]


def test_a_nearly_spent_invocation_starts_nothing(rt: Runtime) -> None:
    response = apigw.handle(apigw_v2(body=SEED), LambdaContext(remaining_ms=300), rt)
    assert response["statusCode"] == 503
    assert response["headers"]["retry-after"] == "1"
    listing = apigw.handle(apigw_v2("GET", "/orders", query="customerId=c-1"), LambdaContext(), rt)
    assert json.loads(listing["body"])["orders"] == []


def test_each_commit_logs_its_write_units_at_debug(
    rt: Runtime, context: LambdaContext, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("DEBUG", logger="orders_aws.dynamodb"):
        apigw.handle(apigw_v2(body=SEED), context, rt)
        apigw.handle(apigw_v2(body=SEED, headers={"idempotency-key": "k-9"}), context, rt)
    units = [r.__dict__["writeUnits"] for r in caplog.records if r.getMessage() == "commit"]
    assert units == [1, 2]
