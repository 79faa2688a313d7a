"""Command CloudEvents from HTTP (binary and structured content modes) via ``cloudevents`` 2.x.

Imported only by ``POST /events`` and the queue entrypoints, so the plain REST path never
pays for the ``cloudevents`` import. Two quirks of the library shape this module:

* its constructor invents an ``id`` (and ``time``) when missing. An event without an id has
  no identity to deduplicate on, so we check the required attributes *before* handing them
  over and refuse the event instead.
* binary mode falls back to a string when the body is not JSON; we parse the body ourselves
  first, with the same limits as every other JSON body.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from cloudevents.core.bindings.http import HTTPMessage, from_binary
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from orders_core.application import Command
from orders_core.edges._media import CE_BATCH, CE_JSON
from orders_core.errors import MalformedRequest, UnsupportedMediaType

REQUIRED: Final = ("id", "source", "type", "specversion")
_FORMAT: Final = JSONFormat()


def _media_type(headers: Mapping[str, str]) -> str:
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _check_required(attributes: Mapping[str, Any]) -> None:
    missing = [name for name in REQUIRED if not attributes.get(name)]
    if missing:
        raise MalformedRequest(f"CloudEvent attribute(s) missing: {', '.join(missing)}")
    if attributes["specversion"] != "1.0":
        raise MalformedRequest("only CloudEvents specversion 1.0 is accepted")


def command_from_http(headers: Mapping[str, str], body: bytes) -> Command:
    """Parse a command CloudEvent from lower-cased HTTP headers and a body.

    Binary mode when any ``ce-`` header is present (the spec's rule), else structured mode
    with ``application/cloudevents+json``. Batches are refused with 415.
    """
    from orders_core.application import parse_json_object

    media = _media_type(headers)
    try:
        if any(name.startswith("ce-") for name in headers):
            _check_required({k[3:]: v for k, v in headers.items() if k.startswith("ce-")})
            if body.strip():
                if not (media == "application/json" or media.endswith("+json")):
                    raise UnsupportedMediaType("binary-mode command data must be JSON")
                parse_json_object(body)
            event = from_binary(HTTPMessage(dict(headers), body), _FORMAT, CloudEvent)
        elif media == CE_JSON:
            attributes = parse_json_object(body)
            _check_required(attributes)
            if "data_base64" in attributes:
                raise MalformedRequest("command data must be JSON, not data_base64")
            event = _FORMAT.read(CloudEvent, body)
        elif media == CE_BATCH:
            raise UnsupportedMediaType("batched CloudEvents are not accepted; send one event")
        else:
            raise UnsupportedMediaType(
                f"send a CloudEvent in binary mode (ce-* headers) or as {CE_JSON}"
            )
    except (BaseCloudEventException, ValueError, TypeError) as exc:
        raise MalformedRequest(f"invalid CloudEvent: {_summary(exc)}") from None
    return Command.from_cloudevent(event)


def _summary(exc: Exception) -> str:
    """A one-line reason that names attributes, never echoes values or internals."""
    errors = getattr(exc, "errors", None)
    if isinstance(errors, dict) and errors:
        return "bad attribute(s) " + ", ".join(sorted(errors))
    return type(exc).__name__
