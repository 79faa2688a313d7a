"""How ``POST /events`` is described in the OpenAPI document: a command as a CloudEvent,
binary mode (``ce-*`` headers) or structured mode (``application/cloudevents+json``)."""

from __future__ import annotations

from typing import Any, Final

REF: Final = "#/components/schemas/{model}"
CE_JSON: Final = "application/cloudevents+json"
SEED: Final = {"items": [{"id": "sku-1", "qty": 2}], "customerId": "c-1"}
_BINARY: Final = "Binary mode (the body is the event's data, as `application/json`): required"


def _ce_header(attribute: str, schema: dict[str, Any], example: str, what: str) -> dict[str, Any]:
    """A CloudEvents attribute as a binary-mode header. Not ``required`` in the OpenAPI
    sense: structured mode carries it in the body instead, and one operation has one
    parameter list for both modes."""
    return {
        "name": f"ce-{attribute}",
        "in": "header",
        "required": False,
        "description": f"{_BINARY}. {what} Omit in structured mode ({CE_JSON}).",
        "schema": schema,
        "example": example,
    }


def ce_headers(types: list[str]) -> list[dict[str, Any]]:
    text = {"type": "string", "minLength": 1}
    return [
        _ce_header("specversion", {"type": "string", "enum": ["1.0"]}, "1.0", "Always 1.0."),
        _ce_header(
            "type",
            {"type": "string", "enum": types},
            "io.orderscore.order.create.v1",
            "The command.",
        ),
        _ce_header(
            "source",
            text,
            "urn:example:shop",
            "Who sends it; (source, id) is the event's identity, deduplicated.",
        ),
        _ce_header("id", text, "evt-1", "Unique per source; a redelivery keeps its id."),
        {
            "name": "ce-subject",
            "in": "header",
            "required": False,
            "description": "Binary mode, optional: the CloudEvent subject.",
            "schema": text,
        },
        {
            "name": "ce-traceparent",
            "in": "header",
            "required": False,
            "description": "Binary mode, optional: W3C trace context of the command "
            "(else the request's traceparent header is used).",
            "schema": {"type": "string"},
        },
    ]


def command_event(types: list[str]) -> dict[str, Any]:
    """A structured-mode command CloudEvent (JSON event format, CloudEvents 1.0)."""
    return {
        "type": "object",
        "description": "A command as a structured-mode CloudEvent. Extension attributes "
        "(lower-case letters and digits, such as traceparent) are allowed.",
        "required": ["specversion", "id", "source", "type"],
        "properties": {
            "specversion": {"type": "string", "enum": ["1.0"]},
            "id": {"type": "string", "minLength": 1},
            "source": {"type": "string", "minLength": 1},
            "type": {"type": "string", "enum": types},
            "subject": {"type": "string"},
            "time": {"type": "string", "format": "date-time"},
            "datacontenttype": {"type": "string", "enum": ["application/json"]},
            "traceparent": {"type": "string"},
            "tracestate": {"type": "string"},
            "data": {"$ref": REF.format(model="CommandData")},
        },
    }
