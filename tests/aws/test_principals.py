"""Principals from each API Gateway authorizer and each queue or bus, through the handlers.

Event shapes as AWS documents them (tests/aws/samples.py); DynamoDB in moto. The ownership
rule itself is in the contract suite; here: that every Lambda path derives the right one.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from orders_aws import apigw, eventbridge, sqs
from orders_aws.bootstrap import AwsConfig, Runtime
from orders_aws.shapes import AuthSettings, principal_from
from orders_core.application import ANONYMOUS, Principal
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
    return apigw.handle(apigw_v2(*args, **kwargs), context, rt)


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


SSO = "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Shop_0123456789abcdef/{}"
FLEET = "arn:aws:sts::111122223333:assumed-role/orders-client/{}"


def get_as(rt: Runtime, context: LambdaContext, oid: str, authorizer: dict[str, Any]) -> int:
    return status_of(call(rt, context, "GET", f"/orders/{oid}", authorizer=authorizer))


def test_people_behind_one_role_are_distinct_principals(
    rt: Runtime, context: LambdaContext
) -> None:
    alice = iam_authorizer(SSO.format("alice@example.com"))
    oid = json.loads(call(rt, context, body=SEED, authorizer=alice)["body"])["orderId"]
    assert get_as(rt, context, oid, iam_authorizer(SSO.format("bob@example.com"))) == 404
    assert get_as(rt, context, oid, alice) == 200


def test_a_shared_roles_sessions_are_one_principal_when_configured(
    rt: Runtime, context: LambdaContext
) -> None:
    first = iam_authorizer(FLEET.format("botocore-session-1772000000"))
    later = iam_authorizer(FLEET.format("botocore-session-1772003600"))  # refreshed
    oid = json.loads(call(rt, context, body=SEED, authorizer=first)["body"])["orderId"]
    assert get_as(rt, context, oid, later) == 404
    shared = AuthSettings(shared_roles=frozenset({"arn:aws:iam::111122223333:role/orders-client"}))
    rt = replace(rt, config=replace(rt.config, auth=shared))
    oid = json.loads(call(rt, context, body=SEED, authorizer=first)["body"])["orderId"]
    assert get_as(rt, context, oid, later) == 200


def test_admin_roles_count_for_every_session_path_or_not(
    rt: Runtime, context: LambdaContext
) -> None:
    oid = json.loads(call(rt, context, body=SEED, claims=jwt("alice"))["body"])["orderId"]
    ops = iam_authorizer("arn:aws:sts::111122223333:assumed-role/orders-ops/alice")
    assert get_as(rt, context, oid, ops) == 404
    # Configured with its path, as IAM shows the role; session ARNs carry no path.
    auth = AuthSettings(admin_arns=frozenset({"arn:aws:iam::111122223333:role/ops/orders-ops"}))
    admin_rt = replace(rt, config=replace(rt.config, auth=auth))
    assert get_as(admin_rt, context, oid, ops) == 200
    other_account = iam_authorizer("arn:aws:sts::444455556666:assumed-role/orders-ops/eve")
    assert get_as(admin_rt, context, oid, other_account) == 404


def test_cognito_identity_pool_users_are_told_apart_by_identity_id(
    rt: Runtime, context: LambdaContext
) -> None:
    def user(identity: str) -> dict[str, Any]:
        authorizer = iam_authorizer(FLEET.format("CognitoIdentityCredentials"))
        authorizer["iam"]["cognitoIdentity"] = {
            "amr": ["authenticated"],
            "identityId": f"us-east-1:{identity}",
            "identityPoolId": "us-east-1:3f0f2f7a-1111-2222-3333-444455556666",
        }
        return authorizer

    oid = json.loads(call(rt, context, body=SEED, authorizer=user("a1"))["body"])["orderId"]
    assert get_as(rt, context, oid, user("b2")) == 404
    assert get_as(rt, context, oid, user("a1")) == 200


@pytest.mark.parametrize(
    "claims",
    [
        {"scope": "openid orders:admin"},
        {"scp": "[openid orders:admin]"},  # how API Gateway hands over an array claim
    ],
)
def test_the_admin_scope_in_any_form_api_gateway_delivers(
    rt: Runtime, context: LambdaContext, claims: dict[str, str]
) -> None:
    oid = json.loads(call(rt, context, body=SEED, claims=jwt("alice"))["body"])["orderId"]
    admin = {"iss": ISSUER, "sub": "ops", **claims}
    assert status_of(call(rt, context, "GET", f"/orders/{oid}", claims=admin)) == 200
    for near_miss in ("[openid orders:admin2]", "orders:administrator", "ORDERS:ADMIN"):
        other = {"iss": ISSUER, "sub": "eve", "scp": near_miss}
        assert status_of(call(rt, context, "GET", f"/orders/{oid}", claims=other)) == 404


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
    # From another account: the bus is still the function's, not the sender's.
    mine = LambdaContext()
    mine.invoked_function_arn = "arn:aws:lambda:us-east-1:999988887777:function:orders-eb"  # type: ignore[attr-defined]
    assert eventbridge.bus_principal(event, "orders-commands", mine).id == (
        "service:arn:aws:events:us-east-1:999988887777:event-bus/orders-commands"
    )
