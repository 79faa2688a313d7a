"""The push endpoint, hostile callers first: tokens, envelopes, sizes, replays; then the
outcomes (ok, retry, poison) and Eventarc's shapes. In memory, through ASGI messages."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from orders_core.application import OrderService
from orders_core.edges.asgi import create_app
from orders_core.edges.http import HttpApi
from orders_core.testing import InMemoryStore
from orders_gcp.pubsub import DeadLetterTopic
from orders_gcp.push_app import PushApp
from orders_gcp.push_auth import PushAuthConfig, PushAuthenticator, principal_of
from orders_gcp.push_endpoint import PushEndpoint
from tests.gcp.push_support import (
    AUDIENCE,
    CONFIRM,
    CREATE,
    PUSH_ACCOUNT,
    TRACEPARENT,
    FakeTopic,
    bearer,
    command_attributes,
    envelope,
    google_claims,
    push,
    request,
)
from tests.local.jwks import JwksServer, Key, forged, jwks_server

ORDER = {"items": [{"sku": "sku-1", "quantity": 2}], "customerId": "cust-p"}


@pytest.fixture(scope="module")
def key() -> Key:
    return Key("google-1")


@pytest.fixture(scope="module")
def idp(key: Key) -> Iterator[JwksServer]:
    with jwks_server([key]) as server:
        yield server


class Deployment:
    """The push app over an in-memory store, with a dead-letter topic that records."""

    def __init__(self, idp: JwksServer, key: Key, *, dead_letters: bool = True) -> None:
        self.key, self.issuer = key, idp.issuer
        self.store = InMemoryStore()
        self.topic = FakeTopic()
        config = PushAuthConfig(AUDIENCE, (PUSH_ACCOUNT,), issuer=idp.issuer, jwks_url=idp.url)
        endpoint = PushEndpoint(
            OrderService(self.store),
            authenticate=PushAuthenticator(config),
            dead_letters=DeadLetterTopic("projects/demo-orders/topics/dead", self.topic)  # type: ignore[arg-type]
            if dead_letters
            else None,
        )
        self.app = PushApp(create_app(HttpApi(OrderService(self.store))), endpoint, max_body=8192)

    def token(self, **claims: Any) -> tuple[bytes, bytes]:
        return bearer(self.key, google_claims(self.issuer, **claims))

    def push(self, payload: dict[str, Any] | bytes, *headers: tuple[bytes, bytes]) -> Any:
        return push(self.app, payload, *headers)

    def orders(self) -> list[Any]:
        return self.store.list_by_customer("cust-p").orders


@pytest.fixture
def gcp(idp: JwksServer, key: Key) -> Iterator[Deployment]:
    deployment = Deployment(idp, key)
    deployment.app.app.startup()  # what the lifespan does: the core's lanes start
    try:
        yield deployment
    finally:
        deployment.app.app.shutdown()


def create_push(event_id: str = "evt-1", **attrs: str) -> dict[str, Any]:
    return envelope(ORDER, command_attributes(CREATE, event_id, **attrs))


# -- authentication -------------------------------------------------------------------


def test_a_signed_push_runs_its_command_as_the_push_service_account(gcp: Deployment) -> None:
    answer = gcp.push(create_push(), gcp.token())
    assert answer.status == 200, answer.body
    assert answer.json()["status"] == "ok"
    (order,) = gcp.orders()
    assert order.owner == principal_of(PUSH_ACCOUNT).id
    assert order.order_id == answer.json()["orderId"]


def test_a_push_without_a_token_is_401_and_changes_nothing(gcp: Deployment) -> None:
    answer = gcp.push(create_push())
    assert answer.status == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert gcp.orders() == []


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "https://someone-else.a.run.app/"},
        {"iss": "https://accounts.example.com"},
        {"exp": 1_700_000_000, "iat": 1_699_999_000},  # a token captured and replayed later
        {"sub": None},
    ],
    ids=["wrong-audience", "wrong-issuer", "expired-replay", "no-subject"],
)
def test_a_token_that_does_not_verify_is_401(gcp: Deployment, claims: dict[str, Any]) -> None:
    answer = gcp.push(create_push(), gcp.token(**claims))
    assert answer.status == 401
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]
    assert gcp.orders() == []


def test_garbage_and_forged_tokens_are_401(gcp: Deployment, key: Key) -> None:
    other = Key(key.kid)  # the same kid, another private key: a bad signature
    claims = google_claims(gcp.issuer)
    for value in (
        b"Bearer not-a-jwt",
        b"Basic dXNlcjpwYXNz",
        f"Bearer {other.sign(claims)}".encode(),
        f"Bearer {forged({'alg': 'none', 'kid': key.kid}, claims, None)}".encode(),
        f"Bearer {forged({'alg': 'HS256', 'kid': key.kid}, claims, key.public_pem())}".encode(),
        b"Bearer " + b"a" * 9000,
    ):
        assert gcp.push(create_push(), (b"authorization", value)).status == 401, value[:40]
    assert gcp.orders() == []


@pytest.mark.parametrize(
    "claims",
    [
        {"email": "someone@demo-orders.iam.gserviceaccount.com"},
        {"email": None},
        {"email_verified": False},
    ],
    ids=["another-service-account", "no-email", "email-not-verified"],
)
def test_a_valid_token_of_another_account_is_403(gcp: Deployment, claims: dict[str, Any]) -> None:
    answer = gcp.push(create_push(), gcp.token(**claims))
    assert answer.status == 403
    assert gcp.orders() == []


def test_the_push_path_takes_only_post(gcp: Deployment) -> None:
    answer = request(gcp.app, "GET", "/pubsub/push", headers=[gcp.token()])
    assert answer.status == 405
    assert answer.headers["allow"] == "POST"


# -- the envelope ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"",
        b"[]",
        json.dumps({"subscription": "s"}).encode(),
        json.dumps({"message": {"data": "%%%not-base64", "messageId": "1"}}).encode(),
        json.dumps({"message": {"data": "", "attributes": {"a": 1}, "messageId": "1"}}).encode(),
        json.dumps({"message": {"data": ""}}).encode(),
        b'{"message":' * 200 + b"{}" + b"}" * 200,
    ],
    ids=[
        "not-json",
        "empty",
        "array",
        "no-message",
        "bad-base64",
        "attribute-not-a-string",
        "no-message-id",
        "deeply-nested",
    ],
)
def test_a_malformed_envelope_is_400_and_nothing_is_dead_lettered(
    gcp: Deployment, payload: bytes
) -> None:
    answer = gcp.push(payload, gcp.token())
    assert answer.status == 400, answer.body
    assert answer.headers["content-type"] == "application/problem+json"
    assert gcp.topic.published == []
    assert gcp.orders() == []


def test_an_oversized_push_is_413_before_its_body_is_read(gcp: Deployment) -> None:
    big = envelope({**ORDER, "note": "x" * 10_000}, command_attributes(CREATE, "evt-big"))
    answer = gcp.push(big, gcp.token())
    assert answer.status == 413
    assert answer.headers["connection"] == "close"
    assert gcp.orders() == []


def test_a_push_without_content_length_is_411(gcp: Deployment) -> None:
    body = json.dumps(create_push()).encode()
    answer = request(gcp.app, "POST", "/pubsub/push", body, [gcp.token()], length=False)
    assert answer.status == 411
    chunked = [gcp.token(), (b"transfer-encoding", b"chunked")]
    assert request(gcp.app, "POST", "/pubsub/push", body, chunked).status == 411


# -- replays and outcomes -------------------------------------------------------------


def test_the_same_message_pushed_again_has_no_second_effect(gcp: Deployment) -> None:
    token = gcp.token()
    first = gcp.push(create_push("evt-7"), token)
    again = gcp.push(create_push("evt-7") | {"deliveryAttempt": 2}, token)  # the same token, too
    assert (first.status, again.status) == (200, 200)
    assert (first.json()["replayed"], again.json()["replayed"]) == (False, True)
    assert again.json()["orderId"] == first.json()["orderId"]
    assert len(gcp.orders()) == 1
    assert len(gcp.store.pending()) == 1  # one event, not two


def test_a_command_that_may_succeed_later_is_503_for_pub_sub_to_redeliver(
    gcp: Deployment,
) -> None:
    early = envelope({"orderId": "not-yet"}, command_attributes(CONFIRM, "evt-2"))
    answer = gcp.push(early, gcp.token())
    assert answer.status == 503
    assert "retry-after" in answer.headers
    assert gcp.topic.published == []


@pytest.mark.parametrize(
    ("data", "attributes", "problem"),
    [
        ({"items": []}, command_attributes(CREATE, "evt-3"), "validation-failed"),
        (ORDER, command_attributes("io.example.unknown.v1", "evt-4"), "validation-failed"),
        (ORDER, {"ce-type": CREATE, "content-type": "application/json"}, "malformed-request"),
        (b"not json", command_attributes(CREATE, "evt-5"), "malformed-request"),
        (ORDER, command_attributes(CREATE, "evt-6", **{"content-type": "text/plain"}), None),
    ],
    ids=["invalid-data", "unknown-type", "not-a-cloudevent", "data-not-json", "not-json-type"],
)
def test_a_poison_command_is_acked_and_dead_lettered_with_its_content(
    gcp: Deployment, data: Any, attributes: dict[str, str], problem: str | None
) -> None:
    pushed = envelope(data, attributes, message_id="2002")
    answer = gcp.push(pushed, gcp.token())
    assert answer.status == 200, answer.body
    assert answer.json()["status"] == "dead-lettered"
    ((topic, body, attrs),) = gcp.topic.published
    assert topic == "projects/demo-orders/topics/dead"
    assert body == base64.b64decode(pushed["message"]["data"])  # the content, byte for byte
    assert {k: attrs[k] for k in attributes} == attributes
    assert attrs["orders-source-message-id"] == "2002"
    assert attrs["orders-source-subscription"].endswith("/orders-commands-push")
    if problem is not None:
        assert attrs["orders-poison-reason"] == problem
    assert gcp.orders() == []


def test_poison_is_never_dropped_when_the_dead_letter_topic_fails(gcp: Deployment) -> None:
    gcp.topic.down = True
    answer = gcp.push(envelope({"items": []}, command_attributes(CREATE, "evt-8")), gcp.token())
    assert answer.status == 422  # not acknowledged: Pub/Sub redelivers, then dead-letters it


def test_without_a_dead_letter_topic_poison_is_left_to_the_subscription(
    idp: JwksServer, key: Key
) -> None:
    gcp = Deployment(idp, key, dead_letters=False)
    answer = gcp.push(envelope({"items": []}, command_attributes(CREATE, "evt-9")), gcp.token())
    assert answer.status == 422


def test_an_endpoint_refuses_to_exist_without_authentication_unless_told() -> None:
    with pytest.raises(ValueError, match="insecure_no_auth"):
        PushEndpoint(OrderService(InMemoryStore()), authenticate=None)


# -- Eventarc -------------------------------------------------------------------------


def test_an_eventarc_message_published_cloudevent_in_binary_mode(gcp: Deployment) -> None:
    body = json.dumps(create_push("evt-10")).encode()
    headers = [
        gcp.token(),
        (b"content-type", b"application/json"),
        (b"ce-specversion", b"1.0"),
        (b"ce-type", b"google.cloud.pubsub.topic.v1.messagePublished"),
        (b"ce-source", b"//pubsub.googleapis.com/projects/demo-orders/topics/orders-commands"),
        (b"ce-id", b"1001"),
        (b"ce-time", b"2026-12-02T06:00:00Z"),
    ]
    answer = request(gcp.app, "POST", "/pubsub/push", body, headers)
    assert answer.status == 200, answer.body
    assert len(gcp.orders()) == 1


def test_an_eventarc_cloudevent_in_structured_mode_and_one_of_another_type(
    gcp: Deployment,
) -> None:
    event = {
        "specversion": "1.0",
        "type": "google.cloud.pubsub.topic.v1.messagePublished",
        "source": "//pubsub.googleapis.com/projects/demo-orders/topics/orders-commands",
        "id": "1002",
        "data": create_push("evt-11", **{"ce-traceparent": TRACEPARENT}),
    }
    structured = (b"content-type", b"application/cloudevents+json")
    body = json.dumps(event).encode()
    answer = request(gcp.app, "POST", "/pubsub/push", body, [gcp.token(), structured])
    assert answer.status == 200, answer.body
    other = json.dumps({**event, "type": "google.cloud.storage.object.v1.finalized"}).encode()
    assert request(gcp.app, "POST", "/pubsub/push", other, [gcp.token(), structured]).status == 400
    (pending,) = gcp.store.pending()
    assert pending.event.traceparent is not None
    assert pending.event.traceparent.split("-")[1] == TRACEPARENT.split("-")[1]


# -- everything else is the core's app ------------------------------------------------


def test_other_paths_are_the_core_apps(gcp: Deployment) -> None:
    assert request(gcp.app, "GET", "/healthz").status == 200
    body = b'{"items":[{"id":"sku-1","qty":2}]}'
    created = request(gcp.app, "POST", "/orders", body, [(b"content-type", b"application/json")])
    assert created.status == 201
    assert created.json()["status"] == "PENDING"
    assert request(gcp.app, "GET", "/pubsub/push/x").status == 404
