"""The Firestore layout: which collections hold what, and each document's fields.

=========================  ====================  =============================================
collection (``prefix`` +)  document id           fields
=========================  ====================  =============================================
``orders``                 the order id          ``body`` (the order's JSON, as the API answers
                                                 it), ``version``, ``owner``, ``customerId``,
                                                 ``createdUs`` (listing order), ``lastPosition``
                                                 (its latest outbox position), ``commit`` (the
                                                 token of the commit that wrote it)
``outbox``                 the position, as 19   ``position``, ``pending`` (= position while
                           digits                undelivered, removed on delivery), ``eventId``,
                                                 ``orderId``, ``record`` (the event's JSON),
                                                 ``attempts``, ``lastError``, ``committedAt``,
                                                 ``deliveredAt``, ``expireAt`` (TTL)
``idempotency``            the scoped key (64    ``fingerprint``, ``status``, ``body`` (bytes),
                           hex digits)           ``orderId``, ``version``, ``expiresAt``,
                                                 ``generation``
``meta``                   ``cursor``            ``secret``: the HMAC key of listing cursors
=========================  ====================  =============================================

``pending`` exists only while an event waits, so "what is pending, in order" is a query on one
field (``order_by("pending")``), served by Firestore's automatic single-field index; the
customer listing needs the composite indexes in :data:`INDEXES` (deploy/gcp declares them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from orders_core.application import IdempotencyRecord
from orders_core.domain import UNOWNED, DomainEvent, Order

POSITION_DIGITS: Final = 19
"""Outbox positions are int64 (Firestore's integer); 19 digits sort as the numbers do."""

INDEXES: Final = (
    ("orders", (("customerId", "ASCENDING"), ("createdUs", "ASCENDING"), ("orderId", "ASCENDING"))),
    (
        "orders",
        (
            ("customerId", "ASCENDING"),
            ("owner", "ASCENDING"),
            ("createdUs", "ASCENDING"),
            ("orderId", "ASCENDING"),
        ),
    ),
)
"""Composite indexes the listing queries need: (collection, ((field, order), ...))."""


@dataclass(frozen=True)
class Collections:
    """The collection names of one store; ``prefix`` lets stores share a database."""

    prefix: str = ""

    @property
    def orders(self) -> str:
        return f"{self.prefix}orders"

    @property
    def outbox(self) -> str:
        return f"{self.prefix}outbox"

    @property
    def idempotency(self) -> str:
        return f"{self.prefix}idempotency"

    @property
    def meta(self) -> str:
        return f"{self.prefix}meta"


def us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def position_id(position: int) -> str:
    return f"{position:0{POSITION_DIGITS}d}"


def order_fields(order: Order, body: bytes, position: int, token: str) -> dict[str, Any]:
    """Every field of a new order's document."""
    return {
        "body": body.decode(),
        "version": order.version,
        "owner": order.owner,
        "customerId": order.customer_id,
        "createdUs": us(order.created_at),
        "orderId": order.order_id,
        "lastPosition": position,
        "commit": token,
    }


def transition_fields(order: Order, body: bytes, position: int, token: str) -> dict[str, Any]:
    """The fields a transition rewrites: never the owner, the customer or the creation time."""
    return {
        "body": body.decode(),
        "version": order.version,
        "lastPosition": position,
        "commit": token,
    }


def order_from(fields: Mapping[str, Any]) -> Order:
    order = Order.model_validate_json(fields["body"])
    return order.owned_by(str(fields.get("owner") or UNOWNED))


def record_fields(record: IdempotencyRecord) -> dict[str, Any]:
    return {
        "fingerprint": record.fingerprint,
        "status": record.status,
        "body": record.body,
        "orderId": record.order_id,
        "version": record.version,
        "expiresAt": record.expires_at,
        "generation": record.generation,
    }


def record_from(key: str, fields: Mapping[str, Any]) -> IdempotencyRecord:
    expires: datetime = fields["expiresAt"]
    return IdempotencyRecord(
        key=key,
        fingerprint=str(fields["fingerprint"]),
        status=int(fields["status"]),
        body=bytes(fields["body"]),
        order_id=str(fields["orderId"]),
        version=int(fields["version"]),
        # Firestore answers with its own datetime subclass (nanoseconds); the core compares
        # records by value, so hand back a plain aware datetime.
        expires_at=datetime(*expires.timetuple()[:6], expires.microsecond, tzinfo=UTC),
        generation=int(fields.get("generation", 0)),
    )


def outbox_fields(event: DomainEvent, position: int, server_time: object) -> dict[str, Any]:
    return {
        "position": position,
        "pending": position,
        "eventId": event.id,
        "orderId": event.order_id,
        "record": event.to_record_json(),
        "attempts": 0,
        "committedAt": server_time,
    }
