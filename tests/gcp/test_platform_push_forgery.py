"""Behind Cloud Run IAM (ORDERS_GCP_PUSH_VERIFY=platform) the push check reads the token
Cloud Run verified. When a request carries ``X-Serverless-Authorization``, Cloud Run checks
that one alone and hands ``Authorization`` on unverified (deploy/gcp/README.md tells API
callers to use the pair so). The check read ``Authorization`` whatever came: any invoker
could send their own valid token in the one and an unsigned token claiming the push
account in the other, and run commands as the push service principal on every tenant's
orders (helper-40's review)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from orders_core.application import Backend
from orders_core.errors import Unauthenticated
from orders_core.testing.memory import InMemoryStore
from orders_gcp.cloud_run import GcpConfig, build
from orders_gcp.push_auth import GOOGLE_ISSUER, PlatformVerifiedPush, PushAuthConfig
from tests.gcp.push_support import (
    AUDIENCE,
    PUSH_ACCOUNT,
    command_attributes,
    envelope,
    google_claims,
    push,
    request,
)
from tests.local.jwks import Key, claims, jwks_server

SERVICE_URL = "https://orders-abc123-ew.a.run.app"
MALLORY = "mallory@example.com"  # an invoker: holds roles/run.invoker, not the push account


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned(payload: dict[str, Any]) -> str:
    """A token anyone can write: header and payload, no signature (what Cloud Run would have
    handed on after verifying it, but here nobody verified it)."""
    header = _b64(json.dumps({"alg": "RS256", "kid": "x", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(payload).encode())}."


def stripped(claims_: dict[str, Any]) -> str:
    """A real token Cloud Run verified, its signature removed (as Cloud Run hands it on)."""
    header, payload, _ = Key("google").sign(claims_).split(".")
    return f"{header}.{payload}."


def mallorys_google_token() -> str:
    now = int(time.time())
    return stripped(
        {
            "iss": GOOGLE_ISSUER,
            "aud": SERVICE_URL,
            "sub": "1234",
            "email": MALLORY,
            "email_verified": True,
            "iat": now,
            "exp": now + 3600,
        }
    )


def test_a_forged_authorization_beside_a_verified_x_serverless_authorization_is_refused() -> None:
    platform = PlatformVerifiedPush(PushAuthConfig(AUDIENCE, (PUSH_ACCOUNT,)))
    headers = {
        # what Cloud Run verified (Mallory's own token, signature stripped):
        "x-serverless-authorization": f"Bearer {mallorys_google_token()}",
        # what nobody verified: written by Mallory, claiming the push account
        "authorization": f"Bearer {unsigned(google_claims(GOOGLE_ISSUER))}",
    }
    with pytest.raises(Unauthenticated):  # NotThePushAccount (403) would do as well
        platform(headers)


def test_an_invoker_cannot_cancel_another_tenants_order_by_forging_a_push() -> None:
    """End to end through the Cloud Run app: Alice's order, cancelled by Mallory's forged push."""
    from orders_local.bearer import BearerConfig

    api_key = Key("idp-1")
    store = InMemoryStore()
    with jwks_server([api_key]) as idp:
        config = GcpConfig(
            jwt=BearerConfig(idp.issuer, ("orders-api",), jwks_url=idp.url),
            push=PushAuthConfig(AUDIENCE, (PUSH_ACCOUNT,)),
            push_verify="platform",
        )
        app = build(config, backend=Backend("memory", store, "in memory", outbox=store))
        app.startup()
        try:
            alice = api_key.sign(claims(idp.issuer, sub="alice", aud="orders-api"))
            created = request(
                app,
                "POST",
                "/orders",
                b'{"items":[{"id":"sku-1","qty":2}]}',
                [
                    (b"content-type", b"application/json"),
                    (b"authorization", f"Bearer {alice}".encode()),
                ],
            )
            assert created.status == 201, created.body
            order_id = created.json()["orderId"]

            forged = envelope(
                {"orderId": order_id, "reason": "mallory was here"},
                command_attributes("io.orderscore.order.cancel.v1", "evt-mallory-1"),
            )
            answer = push(
                app,
                forged,
                (b"x-serverless-authorization", f"Bearer {mallorys_google_token()}".encode()),
                (b"authorization", f"Bearer {unsigned(google_claims(GOOGLE_ISSUER))}".encode()),
            )
            order = store.get(order_id)
            assert order is not None
            assert order.status.value == "PENDING", "Mallory cancelled Alice's order"
            assert answer.status in (401, 403), answer.body
        finally:
            app.shutdown()
