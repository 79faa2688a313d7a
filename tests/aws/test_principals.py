"""Principals from each API Gateway authorizer and each queue or bus, through the handlers.

Event shapes as AWS documents them (tests/aws/samples.py); DynamoDB in moto. The ownership
rule itself is in the contract suite; here: that every Lambda path derives the right one.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from orders_aws import eventbridge, http_api, sqs
from orders_aws.bootstrap import AwsConfig, Runtime
from orders_aws.events import AuthSettings, principal_from
from orders_core.security import ANONYMOUS, Principal
from tests.aws.conftest import LambdaContext
from tests.aws.samples import (
    apigw_v2,
    command_event,
    iam_authorizer,
    lambda_authorizer,
    sqs_record,
)
from tests.aws.samples import (
    eventbridge as eventbridge_event,
)

SEED = b'{"items":[{"id":"sku-1","qty":2}],"customerId":"c-1"}'
ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_EXAMPLE"


def jwt(sub: str, scope: str = "openid") -> dict[str, str]:
    return {"iss": ISSUER, "sub": sub, "aud": "app", "scope": scope, "exp": "1772000000"}


def call(rt: Runtime, context: LambdaContext, *args: Any, **kwargs: Any) -> dict[str, Any]:
    return http_api.handle(apigw_v2(*args, **kwargs), context, rt)


def status_of(response: dict[str, Any]) -> int:
    return int(response["statusCode"])


def test_jwt_callers_cannot_touch_each_others_orders(rt: Runtime, context: LambdaContext) -> None:
    created = call(rt, context, body=SEED, claims=jwt("alice"))
    assert status_of(created) == 201
    oid = json.loads(created["body"])["orderId"]
    bob = jwt("bob")
    assert status_of(call(rt, context, "GET", f"/orders/{oid}", claims=bob)) == 404
    listing = call(rt, context, "GET", "/orders", query="customerId=c-1", claims=bob)
    assert json.loads(listing["body"])["orders"] == []
    for action in ("confirm", "cancel", "fulfill"):
        assert status_of(call(rt, context, "POST", f"/orders/{oid}/{action}", claims=bob)) == 404
    mine = call(rt, context, "GET", f"/orders/{oid}", claims=jwt("alice"))
    assert json.loads(mine["body"])["status"] == "PENDING"
    admin = call(rt, context, "GET", f"/orders/{oid}", claims=jwt("ops", "openid orders:admin"))
    assert status_of(admin) == 200


def test_the_same_subject_from_another_issuer_is_another_principal(
    rt: Runtime, context: LambdaContext
) -> None:
    oid = json.loads(call(rt, context, body=SEED, claims=jwt("alice"))["body"])["orderId"]
    other = {**jwt("alice"), "iss": "https://evil.example/"}
    assert status_of(call(rt, context, "GET", f"/orders/{oid}", claims=other)) == 404


def test_two_iam_users_with_one_key_and_body_get_two_orders(
    rt: Runtime, context: LambdaContext
) -> None:
    key = {"idempotency-key": "k-1"}
    a = iam_authorizer("arn:aws:iam::111122223333:user/a")
    b = iam_authorizer("arn:aws:iam::111122223333:user/b")
    first = call(rt, context, body=SEED, headers=key, authorizer=a)
    second = call(rt, context, body=SEED, headers=key, authorizer=b)
    assert (status_of(first), status_of(second)) == (201, 201)
    assert "idempotent-replayed" not in second["headers"]
    assert json.loads(first["body"])["orderId"] != json.loads(second["body"])["orderId"]
    oid = json.loads(first["body"])["orderId"]
    assert status_of(call(rt, context, "GET", f"/orders/{oid}", authorizer=b)) == 404
    assert status_of(call(rt, context, "GET", f"/orders/{oid}", authorizer=a)) == 200


def test_sessions_of_one_role_are_one_principal_and_admin_roles_are_configured(
    rt: Runtime, context: LambdaContext
) -> None:
    session = "arn:aws:sts::111122223333:assumed-role/orders-client/{}"
    first = iam_authorizer(session.format("i-0abc"))
    created = call(rt, context, body=SEED, authorizer=first)
    oid = json.loads(created["body"])["orderId"]
    later = iam_authorizer(session.format("i-0def"))  # credentials refreshed
    assert status_of(call(rt, context, "GET", f"/orders/{oid}", authorizer=later)) == 200
    ops = iam_authorizer("arn:aws:sts::111122223333:assumed-role/orders-ops/alice")
    assert status_of(call(rt, context, "GET", f"/orders/{oid}", authorizer=ops)) == 404
    auth = AuthSettings(admin_arns=frozenset({"arn:aws:iam::111122223333:role/orders-ops"}))
    admin_rt = replace(rt, config=replace(rt.config, auth=auth))
    assert status_of(call(admin_rt, context, "GET", f"/orders/{oid}", authorizer=ops)) == 200


def test_a_lambda_authorizer_principal_is_scoped_by_its_configured_key(
    rt: Runtime, context: LambdaContext
) -> None:
    auth = AuthSettings(principal_key="tenantUser")
    rt = replace(rt, config=replace(rt.config, auth=auth))
    alice = lambda_authorizer({"tenantUser": "t1/alice", "plan": "gold"})
    bob = lambda_authorizer({"tenantUser": "t1/bob", "plan": "gold"})
    oid = json.loads(call(rt, context, body=SEED, authorizer=alice)["body"])["orderId"]
    assert status_of(call(rt, context, "GET", f"/orders/{oid}", authorizer=bob)) == 404
    assert status_of(call(rt, context, "GET", f"/orders/{oid}", authorizer=alice)) == 200
    admin = lambda_authorizer({"tenantUser": "t1/ops", "admin": True})
    assert status_of(call(rt, context, "GET", f"/orders/{oid}", authorizer=admin)) == 200
    not_admin = lambda_authorizer({"tenantUser": "t1/eve", "admin": "yes please"})
    assert status_of(call(rt, context, "GET", f"/orders/{oid}", authorizer=not_admin)) == 404


@pytest.mark.parametrize(
    "authorizer",
    [
        {"jwt": {"claims": {"iss": ISSUER}, "scopes": None}},  # no sub
        {"jwt": {"claims": {"iss": ISSUER, "sub": ""}, "scopes": None}},
        {"iam": {"accountId": "111122223333"}},  # no userArn
        {"lambda": {"somethingElse": "x"}},  # the configured key is missing
        {"lambda": {"principalId": True}},
        {"surprise": {}},
    ],
)
def test_an_authorizer_that_names_nobody_is_401_never_a_shared_identity(
    rt: Runtime, context: LambdaContext, authorizer: dict[str, Any]
) -> None:
    response = call(rt, context, body=SEED, authorizer=authorizer)
    assert status_of(response) == 401
    assert response["headers"]["content-type"] == "application/problem+json"
    assert "Traceback" not in response["body"]


def test_kinds_never_collide_even_with_equal_names() -> None:
    name = "arn:aws:iam::111122223333:user/a"
    principals = {
        principal_from(apigw_v2(authorizer=iam_authorizer(name))),
        principal_from(apigw_v2(authorizer=lambda_authorizer({"principalId": name}))),
        principal_from(apigw_v2(claims={"iss": "", "sub": name})),
        principal_from(apigw_v2()),
    }
    assert len({p.id for p in principals}) == 4
    assert ANONYMOUS in principals  # no authorizer: a route deployed with auth=none


def test_an_http_key_shaped_like_an_event_identity_does_not_preclaim_the_sqs_command(
    rt: Runtime, context: LambdaContext
) -> None:
    forged = call(
        rt, context, body=SEED, headers={"idempotency-key": "ce:14:urn:erp:orders:evt-42"}
    )
    assert status_of(forged) == 201
    body = command_event(
        "io.orderscore.order.create.v1",
        json.loads(SEED),
        event_id="evt-42",
        source="urn:erp:orders",
    )
    assert sqs.handle({"Records": [sqs_record(body)]}, context, rt) == {"batchItemFailures": []}
    orders = rt.service.store.list_by_customer("c-1").orders
    assert len(orders) == 2
    queue = Principal.service("arn:aws:sqs:us-east-1:123456789012:orders-commands")
    assert {o.owner for o in orders} == {ANONYMOUS.id, queue.id}


def test_commands_from_a_queue_or_bus_act_on_any_order_as_that_service(
    rt: Runtime, context: LambdaContext
) -> None:
    oid = json.loads(call(rt, context, body=SEED, claims=jwt("alice"))["body"])["orderId"]
    confirm = command_event("io.orderscore.order.confirm.v1", {"orderId": oid}, "evt-c")
    assert sqs.handle({"Records": [sqs_record(confirm)]}, context, rt) == {"batchItemFailures": []}
    answer = eventbridge.handle(
        eventbridge_event({"orderId": oid}, "io.orderscore.order.fulfill.v1"), context, rt
    )
    assert answer["status"] == "ok"
    got = call(rt, context, "GET", f"/orders/{oid}", claims=jwt("alice"))
    assert json.loads(got["body"])["status"] == "FULFILLED"  # still Alice's


def test_admin_settings_come_from_the_environment() -> None:
    config = AwsConfig.from_env(
        {
            "ORDERS_TABLE": "t",
            "ORDERS_ADMIN_SCOPE": "shop/admin",
            "ORDERS_ADMIN_ROLE_ARNS": " arn:aws:iam::1:role/a , arn:aws:iam::1:role/b,",
            "ORDERS_AUTHORIZER_PRINCIPAL_KEY": "user",
            "ORDERS_AUTHORIZER_ADMIN_KEY": "isAdmin",
            "ORDERS_COMMAND_BUS": "orders-commands",
        }
    )
    assert config.auth == AuthSettings(
        admin_scope="shop/admin",
        admin_arns=frozenset({"arn:aws:iam::1:role/a", "arn:aws:iam::1:role/b"}),
        principal_key="user",
        admin_key="isAdmin",
    )
    assert config.command_bus == "orders-commands"
    event = eventbridge_event({})
    assert eventbridge.bus_principal(event, config.command_bus).id == (
        "service:arn:aws:events:us-east-1:123456789012:event-bus/orders-commands"
    )
