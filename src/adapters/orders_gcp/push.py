"""What a Pub/Sub push request carries, in the two shapes Google Cloud sends it.

* **Pub/Sub push** (a push subscription's endpoint): a JSON envelope,
  ``{"message": {"data": <base64>, "attributes": {...}, "messageId": ..., "publishTime": ...,
  "orderingKey": ...}, "subscription": "projects/.../subscriptions/...", "deliveryAttempt": n}``
  (``deliveryAttempt`` only with a dead-letter policy; snake_case twins of the message's
  fields are sent too).
* **Eventarc** (a trigger on ``google.cloud.pubsub.topic.v1.messagePublished``): a CloudEvent
  whose data is that same envelope, in binary mode (``ce-*`` headers, the envelope as the
  body) or structured mode (``application/cloudevents+json``, the envelope as ``data``).

Either way the result is one :class:`PushedMessage`. Anything that is not one of these shapes
is :class:`~orders_core.errors.MalformedRequest` (400): the request is not a Pub/Sub delivery,
so there is no message to judge, let alone dead-letter. (Pub/Sub treats the 400 as a nack;
the subscription's own dead-letter policy is the backstop.) What the *message* carries, the
command CloudEvent, is judged later (:mod:`orders_gcp.binding`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from orders_core.application import parse_json_object
from orders_core.errors import MalformedRequest, RequestError

MESSAGE_PUBLISHED: Final = "google.cloud.pubsub.topic.v1.messagePublished"
MAX_ATTRIBUTES: Final = 100
"""Pub/Sub's limit of attributes per message."""


@dataclass(frozen=True, slots=True)
class PushedMessage:
    """One Pub/Sub message as a push delivered it."""

    data: bytes
    attributes: dict[str, str]
    message_id: str
    subscription: str = ""
    ordering_key: str = ""
    publish_time: str = ""
    delivery_attempt: int | None = None
    via: str = "pubsub"
    """``pubsub`` (a push subscription) or ``eventarc``."""


def pushed_message(headers: Mapping[str, str], body: bytes) -> PushedMessage:
    """The message in a push request (lower-case ``headers``); MalformedRequest if none."""
    media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    via = "pubsub"
    if any(name.startswith("ce-") for name in headers):
        if headers.get("ce-type") != MESSAGE_PUBLISHED:
            raise MalformedRequest(f"a CloudEvent pushed here must be of type {MESSAGE_PUBLISHED}")
        envelope, via = _object(body), "eventarc"
    elif media == "application/cloudevents+json":
        event = _object(body)
        if event.get("type") != MESSAGE_PUBLISHED:
            raise MalformedRequest(f"a CloudEvent pushed here must be of type {MESSAGE_PUBLISHED}")
        data = event.get("data")
        if not isinstance(data, dict):
            raise MalformedRequest("the CloudEvent carries no Pub/Sub message envelope")
        envelope, via = data, "eventarc"
    else:
        envelope = _object(body)
    return _message(envelope, via)


def _object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        raise MalformedRequest("a push request carries a JSON envelope; this one is empty")
    try:
        return parse_json_object(body)  # the core's limits: size, depth, duplicate keys
    except RequestError as error:
        raise MalformedRequest(f"the push envelope is not a JSON object ({error.slug})") from None


def _message(envelope: dict[str, Any], via: str) -> PushedMessage:
    message = envelope.get("message")
    if not isinstance(message, dict):
        raise MalformedRequest('the envelope has no "message" object')
    message_id = _text(message, "messageId", "message_id")
    if not message_id:
        raise MalformedRequest("the message has no messageId")
    raw = message.get("data", "")
    if not isinstance(raw, str):
        raise MalformedRequest("the message's data is not base64 text")
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedRequest("the message's data is not valid base64") from None
    attributes = message.get("attributes") or {}
    if (
        not isinstance(attributes, dict)
        or len(attributes) > MAX_ATTRIBUTES
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in attributes.items())
    ):
        raise MalformedRequest("the message's attributes are not a map of strings")
    attempt = envelope.get("deliveryAttempt")
    subscription = envelope.get("subscription", "")
    return PushedMessage(
        data=data,
        attributes=dict(attributes),
        message_id=message_id,
        subscription=subscription if isinstance(subscription, str) else "",
        ordering_key=_text(message, "orderingKey", "ordering_key"),
        publish_time=_text(message, "publishTime", "publish_time"),
        delivery_attempt=attempt if isinstance(attempt, int) and attempt > 0 else None,
        via=via,
    )


def _text(message: Mapping[str, Any], *names: str) -> str:
    for name in names:
        value = message.get(name)
        if isinstance(value, str) and value:
            return value
    return ""
