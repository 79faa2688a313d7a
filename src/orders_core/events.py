"""Domain events and their CloudEvent rendering.

An event's ``id`` is derived from the order id and the version the change produced
(``<orderId>.v<version>``), so a relay that publishes the same stored event twice publishes
the same CloudEvent identity and consumers can deduplicate on ``(source, id)``.
``subject`` and ``partitionkey`` are the order id (per-order ordering on partitioned
transports); ``traceparent``/``tracestate`` come from the command that caused the change.

======================================  =========================
CloudEvent ``type``                     emitted when
======================================  =========================
``io.orderscore.order.created.v1``      an order is placed
``io.orderscore.order.confirmed.v1``    PENDING -> CONFIRMED
``io.orderscore.order.cancelled.v1``    PENDING/CONFIRMED -> CANCELLED
``io.orderscore.order.fulfilled.v1``    CONFIRMED -> FULFILLED
======================================  =========================
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from orders_core.domain import Order, OrderStatus

if TYPE_CHECKING:
    from cloudevents.core.v1.event import CloudEvent

CREATED: Final = "io.orderscore.order.created.v1"
CONFIRMED: Final = "io.orderscore.order.confirmed.v1"
CANCELLED: Final = "io.orderscore.order.cancelled.v1"
FULFILLED: Final = "io.orderscore.order.fulfilled.v1"

TYPE_FOR_STATUS: Final[dict[OrderStatus, str]] = {
    OrderStatus.PENDING: CREATED,
    OrderStatus.CONFIRMED: CONFIRMED,
    OrderStatus.CANCELLED: CANCELLED,
    OrderStatus.FULFILLED: FULFILLED,
}

DEFAULT_SOURCE: Final = "urn:orders-core:orders"


def event_id(order_id: str, version: int) -> str:
    """Stable identity of the event that brought ``order_id`` to ``version``."""
    return f"{order_id}.v{version}"


@dataclass(frozen=True, slots=True)
class DomainEvent:
    """A fact the service committed. Adapters store :meth:`to_record` and publish CloudEvents."""

    id: str
    type: str
    source: str
    subject: str
    time: datetime
    version: int
    data: dict[str, Any]
    traceparent: str | None = None
    tracestate: str | None = None

    @classmethod
    def for_order(
        cls,
        order: Order,
        *,
        source: str = DEFAULT_SOURCE,
        traceparent: str | None = None,
        tracestate: str | None = None,
    ) -> DomainEvent:
        """The event for ``order``'s latest transition (its status says which)."""
        return cls(
            id=event_id(order.order_id, order.version),
            type=TYPE_FOR_STATUS[order.status],
            source=source,
            subject=order.order_id,
            time=order.updated_at,
            version=order.version,
            data=json.loads(order.to_json()),
            traceparent=traceparent,
            tracestate=tracestate,
        )

    @property
    def order_id(self) -> str:
        return self.subject

    def attributes(self) -> dict[str, Any]:
        """CloudEvent context attributes, extensions included (None ones left out)."""
        attrs: dict[str, Any] = {
            "specversion": "1.0",
            "id": self.id,
            "type": self.type,
            "source": self.source,
            "subject": self.subject,
            "time": self.time,
            "datacontenttype": "application/json",
            "partitionkey": self.subject,
        }
        if self.traceparent:
            attrs["traceparent"] = self.traceparent
        if self.tracestate:
            attrs["tracestate"] = self.tracestate
        return attrs

    def to_cloudevent(self) -> CloudEvent:
        from cloudevents.core.v1.event import CloudEvent

        # The constructor mutates and keeps the dict it is given: hand it a fresh one.
        return CloudEvent(self.attributes(), dict(self.data))

    def to_structured_json(self) -> bytes:
        """``application/cloudevents+json`` bytes (structured mode)."""
        from cloudevents.core.formats.json import JSONFormat

        return JSONFormat().write(self.to_cloudevent())

    def to_record(self) -> dict[str, Any]:
        """A JSON-safe dict for stores; :meth:`from_record` inverts it."""
        return {
            "id": self.id,
            "type": self.type,
            "source": self.source,
            "subject": self.subject,
            "time": self.time.isoformat(),
            "version": self.version,
            "data": self.data,
            "traceparent": self.traceparent,
            "tracestate": self.tracestate,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> DomainEvent:
        return cls(
            id=record["id"],
            type=record["type"],
            source=record["source"],
            subject=record["subject"],
            time=datetime.fromisoformat(record["time"]),
            version=int(record["version"]),
            data=record["data"],
            traceparent=record.get("traceparent"),
            tracestate=record.get("tracestate"),
        )
