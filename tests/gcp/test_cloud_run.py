"""The Cloud Run composition root: what it refuses, what it builds; and the push check used
behind Cloud Run IAM (where the platform verified the token and stripped its signature)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from orders_core.application import Backend
from orders_core.errors import Unauthenticated
from orders_core.testing.memory import InMemoryStore
from orders_gcp.cloud_run import GcpConfig, build
from orders_gcp.push_auth import (
    GOOGLE_ISSUER,
    GOOGLE_JWKS_URL,
    NotThePushAccount,
    PlatformVerifiedPush,
    PushAuthConfig,
    PushAuthenticator,
    principal_of,
)
from tests.gcp.push_support import (
    AUDIENCE,
    CREATE,
    PUSH_ACCOUNT,
    SUBSCRIPTION,
    command_attributes,
    envelope,
    google_claims,
    push,
    request,
)
from tests.local.jwks import Key

PUSH_ENV = {
    "ORDERS_GCP_PUSH_AUDIENCE": AUDIENCE,
    "ORDERS_GCP_PUSH_SERVICE_ACCOUNTS": f"{PUSH_ACCOUNT}, other@p.iam.gserviceaccount.com",
}


def test_it_refuses_to_run_without_authentication_unless_told() -> None:
    with pytest.raises(ValueError, match="ORDERS_GCP_INSECURE_NO_AUTH"):
        GcpConfig.from_env({})
    with pytest.raises(ValueError, match="ORDERS_JWT_ISSUER"):
        GcpConfig.from_env(PUSH_ENV)
    assert GcpConfig.from_env({"ORDERS_GCP_INSECURE_NO_AUTH": "1"}).insecure_no_auth


def test_google_id_tokens_for_http_callers_get_googles_keys() -> None:
    config = GcpConfig.from_env(
        {**PUSH_ENV, "ORDERS_JWT_ISSUER": GOOGLE_ISSUER, "ORDERS_JWT_AUDIENCE": "orders-api"}
    )
    assert config.jwt is not None
    assert (config.jwt.issuer, config.jwt.jwks_url) == (GOOGLE_ISSUER, GOOGLE_JWKS_URL)
    assert config.push is not None
    assert config.push.service_accounts == (PUSH_ACCOUNT, "other@p.iam.gserviceaccount.com")
    assert config.push.jwks_url == GOOGLE_JWKS_URL


def test_the_built_app_serves_the_api_and_the_push_path() -> None:
    store = InMemoryStore()
    backend = Backend("memory", store, "in memory", outbox=store)
    app = build(GcpConfig(insecure_no_auth=True), backend=backend)
    app.startup()
    try:
        assert request(app, "GET", "/healthz").status == 200
        pushed = envelope({"items": [{"sku": "s", "quantity": 1}]}, command_attributes(CREATE, "e"))
        answer = push(app, pushed)
        assert answer.status == 200, answer.body
        order = store.get(answer.json()["orderId"])
        assert order is not None
        # No token to name an account: the subscription the envelope names is the principal.
        assert order.owner == f"service:pubsub:{SUBSCRIPTION}"
    finally:
        app.shutdown()


# -- behind Cloud Run IAM ------------------------------------------------------------


def stripped(claims: dict[str, Any], *, dot: bool = True) -> str:
    """A token as Cloud Run hands it on: header and payload, the signature removed."""
    header, payload, _ = Key("k").sign(claims).split(".")
    return f"{header}.{payload}{'.' if dot else ''}"


@pytest.fixture
def platform() -> PlatformVerifiedPush:
    return PlatformVerifiedPush(PushAuthConfig(AUDIENCE, (PUSH_ACCOUNT,)))


@pytest.mark.parametrize("dot", [True, False])
def test_behind_iam_the_verified_claims_name_the_principal(
    platform: PlatformVerifiedPush, dot: bool
) -> None:
    token = stripped(google_claims(GOOGLE_ISSUER), dot=dot)
    assert platform({"authorization": f"Bearer {token}"}) == principal_of(PUSH_ACCOUNT)


@pytest.mark.parametrize(
    ("claims", "error"),
    [
        ({"aud": "https://elsewhere.a.run.app"}, Unauthenticated),
        ({"iss": "https://issuer.example.com"}, Unauthenticated),
        ({"exp": int(time.time()) - 3600}, Unauthenticated),
        ({"exp": None}, Unauthenticated),
        ({"email": "intruder@p.iam.gserviceaccount.com"}, NotThePushAccount),
        ({"email_verified": None}, NotThePushAccount),
    ],
    ids=["audience", "issuer", "expired", "no-expiry", "another-account", "unverified-email"],
)
def test_behind_iam_claims_that_do_not_match_are_refused(
    platform: PlatformVerifiedPush, claims: dict[str, Any], error: type[Exception]
) -> None:
    token = stripped(google_claims(GOOGLE_ISSUER, **claims))
    with pytest.raises(error):
        platform({"authorization": f"Bearer {token}"})


@pytest.mark.parametrize(
    "value", ["", "Basic abc", "Bearer ", "Bearer one-part", "Bearer a.%%%.c", "Bearer a.W10.c"]
)
def test_behind_iam_no_readable_token_is_401(platform: PlatformVerifiedPush, value: str) -> None:
    with pytest.raises(Unauthenticated):
        platform({"authorization": value})


def test_a_full_verifier_refuses_a_token_whose_signature_was_stripped() -> None:
    """Why the two postures differ: off Cloud Run IAM, an unsigned token proves nothing."""
    verifier = PushAuthenticator(
        PushAuthConfig(AUDIENCE, (PUSH_ACCOUNT,), jwks_url="http://127.0.0.1:9/jwks.json")
    )
    token = stripped(google_claims(GOOGLE_ISSUER))
    with pytest.raises(Unauthenticated):
        verifier({"authorization": f"Bearer {token}"})


def test_http_callers_are_verified_by_the_jwt_machinery_and_own_what_they_create() -> None:
    from orders_core.application import Principal
    from orders_local.bearer import BearerConfig
    from tests.local.jwks import claims, jwks_server

    key = Key("idp-1")
    store = InMemoryStore()
    with jwks_server([key]) as idp:
        config = GcpConfig(
            jwt=BearerConfig(idp.issuer, ("orders-api",), jwks_url=idp.url),
            push=PushAuthConfig(AUDIENCE, (PUSH_ACCOUNT,), issuer=idp.issuer, jwks_url=idp.url),
        )
        app = build(config, backend=Backend("memory", store, "in memory", outbox=store))
        app.startup()
        try:
            body = b'{"items":[{"id":"sku-1","qty":2}]}'
            json_type = (b"content-type", b"application/json")
            assert request(app, "POST", "/orders", body, [json_type]).status == 401
            token = key.sign(claims(idp.issuer, sub="carol", aud="orders-api"))
            auth = (b"authorization", f"Bearer {token}".encode())
            created = request(app, "POST", "/orders", body, [json_type, auth])
            assert created.status == 201, created.body
            order = store.get(created.json()["orderId"])
            assert order is not None
            assert order.owner == Principal.jwt(idp.issuer, "carol").id
            # The push path takes no HTTP caller's token: it was minted for another audience.
            pushed = envelope(
                {"items": [{"sku": "s", "quantity": 1}]}, command_attributes(CREATE, "x")
            )
            assert push(app, pushed, auth).status == 401
        finally:
            app.shutdown()
