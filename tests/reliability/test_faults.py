"""Injected AWS faults (botocore's Stubber): throttling and 5xx become a 503 with Retry-After
and never a partial write; a spent deadline starts nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import Stubber

from orders_aws import apigw
from orders_aws.bootstrap import AwsConfig, build
from orders_aws.clients import make_client
from orders_aws.items import Items
from orders_core.domain import Order
from tests.aws.conftest import LambdaContext
from tests.aws.samples import apigw_v2
from tests.aws.support import set_fake_env

SEED = b'{"items":[{"id":"sku-1","qty":2}]}'


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Stubber]]:
    set_fake_env(monkeypatch)
    client = make_client()
    with Stubber(client) as stubber:
        yield build(AwsConfig(table="orders"), client), stubber


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ProvisionedThroughputExceededException", 400),
        ("ThrottlingException", 400),
        ("RequestLimitExceeded", 400),
        ("InternalServerError", 500),
        ("ServiceUnavailable", 503),
    ],
)
def test_throttling_and_5xx_become_503_with_retry_after(
    stubbed: tuple[Any, Stubber], code: str, status: int
) -> None:
    rt, stubber = stubbed
    stubber.add_client_error("put_item", service_error_code=code, http_status_code=status)
    response = apigw.handle(apigw_v2(body=SEED), LambdaContext(), rt)
    assert response["statusCode"] == 503
    assert response["headers"]["retry-after"] == "1"
    body = json.loads(response["body"])
    assert body["type"].endswith("store-unavailable")
    assert "orders" not in body["detail"].lower().replace("orders-core", "")  # no table names
    stubber.assert_no_pending_responses()


def test_a_keyed_create_that_fails_writes_nothing_and_a_retry_succeeds(
    stubbed: tuple[Any, Stubber],
) -> None:
    rt, stubber = stubbed
    headers = {"idempotency-key": "k-1"}
    # First attempt: the write (a keyed create reads nothing first) is throttled.
    stubber.add_client_error("put_item", "ThrottlingException", http_status_code=400)
    failed = apigw.handle(apigw_v2(body=SEED, headers=headers), LambdaContext(), rt)
    assert failed["statusCode"] == 503
    # The retry's write meets no record (nothing was written) and commits once.
    stubber.add_response("put_item", {})
    retried = apigw.handle(apigw_v2(body=SEED, headers=headers), LambdaContext(), rt)
    assert retried["statusCode"] == 201
    stubber.assert_no_pending_responses()


def test_a_keyed_create_meeting_a_transaction_on_its_slot_reads_the_key_and_retries(
    stubbed: tuple[Any, Stubber],
) -> None:
    """A keyed confirm's transaction is writing the slot a keyed create under the same key
    aims at: DynamoDB answers the create TransactionConflictException, which the SDK does
    not retry. It was a bare 500; the service reads the key and tries again."""
    rt, stubber = stubbed
    stubber.add_client_error("put_item", "TransactionConflictException", http_status_code=400)
    stubber.add_response("get_item", {})  # ours did not land
    stubber.add_response("batch_get_item", {"Responses": {"orders": []}})  # nor did theirs
    stubber.add_response("put_item", {})
    response = apigw.handle(
        apigw_v2(body=SEED, headers={"idempotency-key": "k"}), LambdaContext(), rt
    )
    assert response["statusCode"] == 201
    stubber.assert_no_pending_responses()


def test_a_keyed_confirm_whose_slot_is_in_a_transaction_is_no_false_412(
    stubbed: tuple[Any, Stubber],
) -> None:
    """Its transaction is cancelled for a conflict on the key's slot, not on the order: with
    If-Match the order is unchanged, so the answer must not be 412 "order changed"."""
    rt, stubber = stubbed
    stubber.add_response("put_item", {})
    created = apigw.handle(apigw_v2(body=SEED), LambdaContext(), rt)
    order = Order.model_validate_json(created["body"])
    item = {"Item": Items().order_item(order, ())}
    confirm = apigw_v2(
        path=f"/orders/{order.order_id}/confirm",
        headers={"idempotency-key": "k", "if-match": '"1"'},
    )
    stubber.add_response("get_item", item)  # the load
    stubber.add_response("batch_get_item", {"Responses": {"orders": []}})  # the key: none
    stubber.add_client_error(
        "transact_write_items",
        "TransactionCanceledException",
        http_status_code=400,
        modeled_fields={"CancellationReasons": [{"Code": "None"}, {"Code": "TransactionConflict"}]},
    )
    stubber.add_response("batch_get_item", {"Responses": {"orders": []}})  # read again: none
    stubber.add_response("get_item", item)  # decided again on the same order
    stubber.add_response("transact_write_items", {})
    response = apigw.handle(confirm, LambdaContext(), rt)
    assert response["statusCode"] == 200, response["body"]
    stubber.assert_no_pending_responses()


def test_a_confirm_meeting_a_transaction_on_its_order_decides_again_not_412(
    stubbed: tuple[Any, Stubber],
) -> None:
    """An unkeyed confirm with If-Match whose UpdateItem meets another request's
    transaction on the order: that transaction may yet cancel, so nothing says the order
    changed. It was a bare 500 (the SDK does not retry the conflict); a plain
    ConcurrencyConflict would be a false 412. The service decides again."""
    rt, stubber = stubbed
    stubber.add_response("put_item", {})
    created = apigw.handle(apigw_v2(body=SEED), LambdaContext(), rt)
    order = Order.model_validate_json(created["body"])
    item = {"Item": Items().order_item(order, ())}
    stubber.add_response("get_item", item)  # the load
    stubber.add_client_error("update_item", "TransactionConflictException", http_status_code=400)
    stubber.add_response("get_item", item)  # did ours land? no (no token of ours)
    stubber.add_response("get_item", item)  # the load, a moment later: unchanged
    stubber.add_response("update_item", {})
    confirm = apigw_v2(path=f"/orders/{order.order_id}/confirm", headers={"if-match": '"1"'})
    response = apigw.handle(confirm, LambdaContext(), rt)
    assert response["statusCode"] == 200, response["body"]
    stubber.assert_no_pending_responses()


def test_an_unknown_client_error_is_a_bare_500(stubbed: tuple[Any, Stubber]) -> None:
    rt, stubber = stubbed
    stubber.add_client_error(
        "put_item",
        "ValidationException",
        service_message="One or more parameter values were invalid: table orders",
    )
    response = apigw.handle(apigw_v2(body=SEED), LambdaContext(), rt)
    assert response["statusCode"] == 500
    assert json.loads(response["body"])["detail"] == "Internal error"
    assert "parameter values" not in response["body"]
    assert "Traceback" not in response["body"]


def test_a_deadline_about_to_expire_starts_nothing(stubbed: tuple[Any, Stubber]) -> None:
    rt, stubber = stubbed  # no stubbed responses: any AWS call would fail the test
    response = apigw.handle(apigw_v2(body=SEED), LambdaContext(remaining_ms=400), rt)
    assert response["statusCode"] == 503
    stubber.assert_no_pending_responses()
