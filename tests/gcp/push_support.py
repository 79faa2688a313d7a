"""Push requests as Pub/Sub and Eventarc send them, signed as Google signs them (but with a
key of ours, its JWKS on 127.0.0.1), and an ASGI driver with no server."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any, Final

from tests.local.jwks import Key

PUSH_ACCOUNT: Final = "orders-push@demo-orders.iam.gserviceaccount.com"
AUDIENCE: Final = "https://orders-abc123-ew.a.run.app/pubsub/push"
SUBSCRIPTION: Final = "projects/demo-orders/subscriptions/orders-commands-push"
CREATE: Final = "io.orderscore.order.create.v1"
CONFIRM: Final = "io.orderscore.order.confirm.v1"
TRACEPARENT: Final = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def google_claims(issuer: str, **extra: Any) -> dict[str, Any]:
    """The claims of a Pub/Sub push token (as Google's documentation shows one)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": AUDIENCE,
        "azp": "113774264463038321964",
        "sub": "113774264463038321964",
        "email": PUSH_ACCOUNT,
        "email_verified": True,
        "iat": now,
        "exp": now + 3600,
    }
    claims.update(extra)
    return {k: v for k, v in claims.items() if v is not None}


def command_attributes(command_type: str, event_id: str, **extra: str) -> dict[str, str]:
    """A command CloudEvent's binary-mode Pub/Sub attributes."""
    return {
        "ce-specversion": "1.0",
        "ce-type": command_type,
        "ce-source": "urn:erp:orders",
        "ce-id": event_id,
        "content-type": "application/json",
        **extra,
    }


def envelope(
    data: dict[str, Any] | bytes,
    attributes: dict[str, str],
    *,
    message_id: str = "1001",
    attempt: int | None = None,
) -> dict[str, Any]:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    message = {
        "data": base64.b64encode(raw).decode(),
        "attributes": attributes,
        "messageId": message_id,
        "message_id": message_id,
        "publishTime": "2026-12-02T06:00:00.000Z",
        "publish_time": "2026-12-02T06:00:00.000Z",
    }
    out: dict[str, Any] = {"message": message, "subscription": SUBSCRIPTION}
    if attempt is not None:
        out["deliveryAttempt"] = attempt
    return out


def bearer(key: Key, claims: dict[str, Any]) -> tuple[bytes, bytes]:
    return (b"authorization", f"Bearer {key.sign(claims)}".encode())


async def _call(app: Any, scope: dict[str, Any], body: bytes) -> list[dict[str, Any]]:
    chunks = [body]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if not chunks:
            await asyncio.sleep(3600)  # a body that never ends (the timeout's case)
        return {"type": "http.request", "body": chunks.pop(0), "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


class Answer:
    def __init__(self, sent: list[dict[str, Any]]) -> None:
        self.status = int(sent[0]["status"])
        self.headers = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
        self.body = sent[1]["body"]

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    app: Any,
    method: str,
    path: str,
    body: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    length: bool = True,
) -> Answer:
    """One request through ``app`` (an ASGI app), its Content-Length declared unless not."""
    head = list(headers or [])
    if length:
        head.append((b"content-length", str(len(body)).encode()))
    scope = {"type": "http", "method": method, "path": path, "headers": head, "query_string": b""}
    return Answer(asyncio.run(_call(app, scope, body)))


def push(app: Any, payload: dict[str, Any] | bytes, *extra: tuple[bytes, bytes]) -> Answer:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    head = [(b"content-type", b"application/json"), *extra]
    return request(app, "POST", "/pubsub/push", body, head)


class FakeTopic:
    """A publisher client's ``publish`` that records, or fails when ``down``."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, dict[str, str]]] = []
        self.down = False

    def publish(self, topic: str, data: bytes, **attributes: str) -> Any:
        outer = self

        class Future:
            def result(self, timeout: float | None = None) -> str:
                if outer.down:
                    raise TimeoutError("the topic did not answer")
                outer.published.append((topic, data, attributes))
                return str(len(outer.published))

        return Future()

    def publish_request(self, request: dict[str, Any], timeout: float | None = None) -> None:
        """The generated client's Publish, as DeadLetterTopic calls it: attributes as a map."""
        if self.down:
            raise TimeoutError("the topic did not answer")
        for message in request["messages"]:
            self.published.append((request["topic"], message["data"], message["attributes"]))
