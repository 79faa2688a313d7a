"""The console's operations in the OpenAPI document (its schemas come from ``_views``).

The read API is versioned in its path (``/console/api/v1``): a change that breaks a
script moves to ``v2`` beside it.
"""

from __future__ import annotations

from typing import Any, Final

from orders_core.application import ID_PATTERN

EVENT_ID_PATTERN: Final = ID_PATTERN[:-1] + r"\.v[0-9]{1,18}$"
"""What :func:`orders_core.domain.event_id` makes: ``<orderId>.v<version>``."""

_REF = "#/components/schemas/{model}"
_PROBLEM = {"application/problem+json": {"schema": {"$ref": _REF.format(model="Problem")}}}
_TAG = ["console"]
_ACCESS = (
    "Authentication on: the admin scope is required (403 without it). Authentication off: "
    "loopback callers under a loopback Host name only (403 otherwise)."
)


def _json(model: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {"ETag": {"schema": {"type": "string"}}},
        "content": {"application/json": {"schema": {"$ref": _REF.format(model=model)}}},
    }


def _problems(*codes: int) -> dict[str, Any]:
    titles = {
        400: "A query value out of range (status, customerId, limit, cursor, after, state)",
        401: "No credentials, or ones that do not verify",
        403: "Not an admin, not a loopback caller, or (POST) not the console page's own",
        404: "No such order or event, or a view this store cannot give",
        409: "The event is delivered already, or has not failed",
        500: "Internal error",
        503: "Store unavailable",
    }
    return {str(code): {"description": titles[code], "content": _PROBLEM} for code in codes}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


_NOT_MODIFIED = {"304": {"description": "Unchanged since the ETag sent in If-None-Match"}}
_ID = {"type": "string", "pattern": ID_PATTERN}
_READ = (401, 403, 500, 503)

OPERATIONS: Final[dict[str, dict[str, Any]]] = {
    "consolePage": {
        "summary": "The console (HTML); sets the orders-console-csrf cookie",
        "description": _ACCESS,
        "tags": _TAG,
        "responses": {
            "200": {"description": "The page", "content": {"text/html": {}}},
            **_problems(*_READ),
        },
    },
    "consoleAsset": {
        "summary": "The console's stylesheet and script",
        "tags": _TAG,
        "parameters": [
            {
                "name": "name",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "enum": ["console.css", "console.js", "icon.svg"]},
            }
        ],
        "responses": {
            "200": {"description": "The file", "content": {"text/css": {}, "text/javascript": {}}},
            **_problems(404, *_READ),
        },
    },
    "consoleOverview": {
        "summary": "Counts by status and the outbox at a glance",
        "description": _ACCESS,
        "tags": _TAG,
        "parameters": [_query("customerId", _ID, "Count one customer's orders only.")],
        "responses": {
            "200": _json("Overview", "The overview"),
            **_NOT_MODIFIED,
            **_problems(400, *_READ),
        },
    },
    "consoleOrders": {
        "summary": "Every order, newest first (by commit)",
        "description": _ACCESS + " A page may hold fewer than `limit` orders while "
        "`nextCursor` leads on (a status filter reads a bounded window per page).",
        "tags": _TAG,
        "parameters": [
            _query(
                "status",
                {"type": "string", "enum": ["PENDING", "CONFIRMED", "FULFILLED", "CANCELLED"]},
                "Only orders in this status.",
            ),
            _query("customerId", _ID, "Only this customer's orders."),
            _query(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
                "Orders per page.",
            ),
            _query(
                "cursor",
                {"type": "string", "maxLength": 1024},
                "`nextCursor` of the previous page.",
            ),
        ],
        "responses": {
            "200": _json("OrderList", "A page of orders"),
            **_NOT_MODIFIED,
            **_problems(400, 404, *_READ),
        },
    },
    "consoleOrder": {
        "summary": "One order and its timeline: commands, versions, events, deliveries",
        "description": _ACCESS,
        "tags": _TAG,
        "parameters": [{"name": "orderId", "in": "path", "required": True, "schema": _ID}],
        "responses": {
            "200": _json("OrderDetail", "The order"),
            **_NOT_MODIFIED,
            **_problems(400, 404, *_READ),
        },
    },
    "consoleOutbox": {
        "summary": "Undelivered (or only failed) events in commit order, and the relay's lag",
        "description": _ACCESS,
        "tags": _TAG,
        "parameters": [
            _query(
                "state",
                {"type": "string", "enum": ["undelivered", "failed"], "default": "undelivered"},
                "`failed`: only events whose last attempt failed.",
            ),
            _query("after", {"type": "integer", "minimum": 0}, "`nextAfter` of the last page."),
            _query(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": 100, "default": 50},
                "Events per page.",
            ),
        ],
        "responses": {
            "200": _json("OutboxList", "Undelivered events"),
            **_NOT_MODIFIED,
            **_problems(400, 404, *_READ),
        },
    },
    "consoleRedeliver": {
        "summary": "Ask the relay to retry a failed event now (recorded; idempotent)",
        "description": _ACCESS
        + " The request is recorded in the outbox and ends the relay's pause; the relay "
        "publishes the event as always (its CloudEvent id, in commit order). While a request "
        "made after the event's last attempt is open, repeating it answers 200 with that "
        "request. CSRF: the X-Console-CSRF header must repeat the orders-console-csrf "
        "cookie, Origin (if sent) must be this server and Sec-Fetch-Site (if sent) "
        "same-origin.",
        "tags": _TAG,
        "parameters": [
            {
                "name": "eventId",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": EVENT_ID_PATTERN},
            },
            {
                "name": "X-Console-CSRF",
                "in": "header",
                "required": True,
                "schema": {"type": "string"},
            },
        ],
        "responses": {
            "202": _json("Redelivery", "Recorded; the relay retries now"),
            "200": _json("Redelivery", "An open request already existed; nothing changed"),
            **_problems(400, 404, 409, *_READ),
        },
    },
}
