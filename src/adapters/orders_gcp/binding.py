"""CloudEvents <-> Pub/Sub messages: the CloudEvents Pub/Sub protocol binding.

Events leave in **binary** content mode: the event's data (the order's JSON) is the message
data, every other attribute a ``ce-`` message attribute (``ce-id``, ``ce-source``, ``ce-type``,
``ce-specversion``, ``ce-subject``, ``ce-time``, the ``ce-partitionkey``, ``ce-traceparent``
and ``ce-tracestate`` extensions), ``datacontenttype`` the ``content-type`` attribute, and the
ordering key the order id, so one order's events reach a subscriber with message ordering in
the order they were published.

Commands arrive in either mode, told apart as the binding says: a ``content-type`` attribute
starting with ``application/cloudevents`` is structured mode, anything else binary. The
binding's attribute names are case-insensitive and ``ce-`` attributes map one to one onto
the CloudEvents HTTP binding's headers, so both modes are parsed by the core's
:func:`~orders_core.edges.cloudevents_http.command_from_http`, with its checks (required
attributes present before the SDK could invent an id, JSON data only, no batches).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from orders_core import telemetry
from orders_core.application import Command
from orders_core.domain import DomainEvent

CONTENT_TYPE: Final = "content-type"
MAX_ATTRIBUTE_VALUE: Final = 1024
"""Pub/Sub's limit on an attribute value, in bytes."""


@dataclass(frozen=True, slots=True)
class Message:
    """What :meth:`PublisherClient.publish` takes: data, attributes and an ordering key."""

    data: bytes
    attributes: dict[str, str]
    ordering_key: str


def message_of(event: DomainEvent) -> Message:
    """``event`` as a binary-mode Pub/Sub message (the module says how)."""
    attributes: dict[str, str] = {}
    for name, value in event.attributes().items():
        text = _rfc3339(value) if isinstance(value, datetime) else str(value)
        attributes[CONTENT_TYPE if name == "datacontenttype" else f"ce-{name}"] = text
    return Message(event.data_json, attributes, event.order_id)


def _rfc3339(moment: datetime) -> str:
    """As ``to_structured_json`` writes ``time``: ISO 8601, ``Z`` for UTC."""
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def headers_of(attributes: Mapping[str, str]) -> dict[str, str]:
    """A message's attributes as the HTTP binding's lower-case headers.

    ``ce-datacontenttype`` (written by some senders, and by the binding's own example) stands
    for ``content-type`` when that is absent. Binary-mode data without either is taken as
    JSON: Pub/Sub publishers rarely set a content type, and JSON is all a command may carry.
    """
    headers = {str(name).lower(): str(value) for name, value in attributes.items()}
    declared = headers.pop("ce-datacontenttype", None)
    if CONTENT_TYPE not in headers and any(name.startswith("ce-") for name in headers):
        headers[CONTENT_TYPE] = declared or "application/json"
    return headers


def command_from_message(data: bytes, attributes: Mapping[str, str]) -> Command:
    """The command CloudEvent a message carries, in either content mode.

    Raises :class:`~orders_core.errors.MalformedRequest` (or
    :class:`~orders_core.errors.UnsupportedMediaType`) when it carries none: poison.
    """
    from orders_core.edges.cloudevents_http import command_from_http

    headers = headers_of(attributes)
    command = command_from_http(headers, data)
    if command.traceparent is None and (parent := traceparent_of(attributes)) is not None:
        # A sender that traces with the Pub/Sub client library's own propagation.
        command = Command(
            command.type,
            command.source,
            command.id,
            command.data,
            traceparent=parent,
            tracestate=command.tracestate,
        )
    return command


def traceparent_of(attributes: Mapping[str, str]) -> str | None:
    """The producer's trace context: the CloudEvent's ``ce-traceparent``, else the attribute
    the Pub/Sub client libraries' OpenTelemetry propagation writes (``googclient_traceparent``)."""
    lowered = {str(k).lower(): v for k, v in attributes.items()}
    for name in ("ce-traceparent", "googclient_traceparent", "traceparent"):
        value = lowered.get(name)
        if isinstance(value, str) and (valid := telemetry.valid_traceparent(value)):
            return valid
    return None


def cloudevent_of(data: bytes, attributes: Mapping[str, str]) -> dict[str, Any]:
    """A received binary-mode message as the structured CloudEvent JSON object (for
    consumers that want one, and for tests that compare with ``to_structured_json``)."""
    headers = headers_of(attributes)
    if headers.get(CONTENT_TYPE, "").startswith("application/cloudevents"):
        event: dict[str, Any] = json.loads(data)
        return event
    event = {name[3:]: value for name, value in headers.items() if name.startswith("ce-")}
    if CONTENT_TYPE in headers:
        event["datacontenttype"] = headers[CONTENT_TYPE]
    event["data"] = json.loads(data) if data else None
    return event
