"""The JSON the console reads (version 1), as pydantic models: they render each answer and
give the OpenAPI document its schemas, so the two cannot drift apart.

Field names are camelCase, as in the orders API; times are RFC 3339 with an offset.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from orders_core.application import Delivery, OutboxSummary, TimelineEntry
from orders_core.domain import Order

API_VERSION: Final = "v1"


class _View(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class Capabilities(_View):
    """What this runtime's store lets the console show."""

    orders: bool = Field(description="Every order newest first, and counts by status.")
    timeline: bool = Field(description="Each order's commands, versions and events.")
    outbox: bool = Field(description="Undelivered and failed events; redelivery.")
    events: str | None = Field(
        default=None, description="Where events go when there is no outbox to show."
    )


class OutboxState(_View):
    undelivered: int
    failed: int = Field(description="Undelivered events whose last attempt failed.")
    oldest_undelivered_at: datetime | None = None
    lag_seconds: float | None = Field(
        default=None, description="How long the oldest undelivered event has waited."
    )
    last_delivered_at: datetime | None = None
    last_delivery_lag_seconds: float | None = Field(
        default=None, description="Commit to delivery of the most recently delivered event."
    )

    @classmethod
    def of(cls, summary: OutboxSummary, now: datetime) -> OutboxState:
        oldest = summary.oldest_undelivered_at
        return cls(
            undelivered=summary.undelivered,
            failed=summary.failed,
            oldest_undelivered_at=oldest,
            lag_seconds=round((now - oldest).total_seconds(), 3) if oldest else None,
            last_delivered_at=summary.last_delivered_at,
            last_delivery_lag_seconds=summary.last_delivery_lag,
        )


class Overview(_View):
    """The console's front page: counts by status and the outbox at a glance."""

    api_version: Literal["v1"] = API_VERSION
    store: str = Field(description="Which backend (sqlite, memory, dynamodb...).")
    capabilities: Capabilities
    counts: dict[str, int] | None = Field(description="Orders by status; null if unknown.")
    outbox: OutboxState | None = None
    traces_linked: bool = Field(description="Whether trace ids link to a tracing UI.")


class OrderRow(_View):
    order_id: str
    customer_id: str | None
    status: str
    version: int
    created_at: datetime
    updated_at: datetime
    item_count: int
    total: dict[str, Any] | None = Field(default=None, description="amount and currency")

    @classmethod
    def of(cls, order: Order) -> OrderRow:
        return cls(
            order_id=order.order_id,
            customer_id=order.customer_id,
            status=order.status.value,
            version=order.version,
            created_at=order.created_at,
            updated_at=order.updated_at,
            item_count=len(order.items),
            total=order.total.model_dump() if order.total else None,
        )


class OrderList(_View):
    orders: list[OrderRow]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next (older) page."
    )


class EventDelivery(_View):
    event_id: str = Field(description="The CloudEvent id consumers deduplicate on.")
    event_type: str
    order_id: str
    version: int
    state: Literal["pending", "failed", "delivered"]
    attempts: int
    last_error: str | None = None
    last_attempt_at: datetime | None = None
    committed_at: datetime
    delivered_at: datetime | None = None
    trace_id: str | None = None
    trace_url: str | None = Field(default=None, description="The trace in a tracing UI.")
    redelivery_requested_at: datetime | None = None
    position: int = Field(description="Commit order in the outbox.")

    @classmethod
    def of(cls, delivery: Delivery, trace_url: str | None) -> EventDelivery:
        trace_id = delivery.trace_id
        return cls(
            event_id=delivery.event_id,
            event_type=delivery.event_type,
            order_id=delivery.order_id,
            version=delivery.version,
            state=delivery.state,
            attempts=delivery.attempts,
            last_error=delivery.last_error,
            last_attempt_at=delivery.last_attempt_at,
            committed_at=delivery.committed_at,
            delivered_at=delivery.delivered_at,
            trace_id=trace_id,
            trace_url=trace_url.replace("{traceId}", trace_id) if trace_url and trace_id else None,
            redelivery_requested_at=delivery.redelivery_requested_at,
            position=delivery.position,
        )


class CommandView(_View):
    type: str
    command_id: str
    source: str
    principal_kind: str = Field(description="anonymous, jwt, iam, authorizer or service.")
    idempotency_key: str | None = Field(
        default=None, description="The caller's key, shortened (never stored whole)."
    )
    key_namespace: str | None = None


class TimelineItem(_View):
    version: int
    status: str = Field(description="The order's status after this version.")
    at: datetime
    command: CommandView | None = Field(
        description="The command that made this version; null if not recorded."
    )
    event: EventDelivery

    @classmethod
    def of(cls, entry: TimelineEntry, trace_url: str | None) -> TimelineItem:
        note = entry.command
        command = None
        if note is not None:
            command = CommandView(
                type=note.type,
                command_id=note.command_id,
                source=note.source,
                principal_kind=note.principal_kind,
                idempotency_key=note.key_hint,
                key_namespace=note.key_namespace,
            )
        return cls(
            version=entry.version,
            status=entry.status,
            at=entry.at,
            command=command,
            event=EventDelivery.of(entry.delivery, trace_url),
        )


class OrderDetail(_View):
    order: Order
    timeline: list[TimelineItem] | None = Field(
        description="Oldest first; null when the store keeps no history."
    )


class OutboxList(_View):
    outbox: OutboxState
    events: list[EventDelivery]
    next_after: int | None = Field(
        default=None, description="Pass as `after` for the next page (a position)."
    )


class Redelivery(_View):
    request_id: int
    event_id: str
    requested_at: datetime
    requested_by: str = Field(description="The kind of principal who asked.")
    created: bool = Field(description="False: an open request already existed (no change).")


SCHEMAS: tuple[type[BaseModel], ...] = (Overview, OrderList, OrderDetail, OutboxList, Redelivery)
"""What the console's operations refer to in the OpenAPI document."""


def render(view: BaseModel) -> bytes:
    return view.model_dump_json(by_alias=True).encode()
