"""Opaque, tamper-evident pagination cursors.

A cursor is ``base64url(json(position)) + "." + base64url(hmac-sha256(key, body)[:16])``.
Clients cannot read meaning into it or forge a position (for example another customer's
partition key); a cursor that fails verification is a 400, never a store error.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from orders_core.errors import MalformedRequest

MAX_CURSOR_LENGTH = 1024


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_cursor(position: dict[str, Any], key: bytes) -> str:
    body = _b64(json.dumps(position, separators=(",", ":"), sort_keys=True).encode())
    mac = hmac.new(key, body.encode(), hashlib.sha256).digest()[:16]
    return f"{body}.{_b64(mac)}"


def decode_cursor(cursor: str, key: bytes) -> dict[str, Any]:
    invalid = MalformedRequest("invalid pagination cursor")
    if len(cursor) > MAX_CURSOR_LENGTH or cursor.count(".") != 1:
        raise invalid
    body, mac = cursor.split(".")
    try:
        expected = hmac.new(key, body.encode(), hashlib.sha256).digest()[:16]
        if not hmac.compare_digest(expected, _unb64(mac)):
            raise invalid
        position = json.loads(_unb64(body))
    except (ValueError, UnicodeError) as exc:
        raise invalid from exc
    if not isinstance(position, dict):
        raise invalid
    return position
