"""The console's ports on the in-memory store: the reference the SQLite ones match.

A mixin of :class:`orders_core.testing.memory.InMemoryStore`, which owns the state it reads;
the contract both pass is ``orders_core.testing.contract.InspectionContract``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from orders_core.application import (
    CommandNote,
    Delivery,
    OrderBrowser,
    OutboxInspector,
    OutboxSummary,
    Page,
    PendingEvent,
    RedeliveryRequest,
    TimelineEntry,
    decode_cursor,
    encode_cursor,
)
from orders_core.domain import Order, OrderStatus
from orders_core.errors import MalformedRequest, NotFound, NotRedeliverable


@dataclass(slots=True)
class Entry:
    """What the outbox knows of one event beyond its position and attempts."""

    committed_at: datetime
    command: CommandNote | None = None
    delivered_at: datetime | None = None
    last_error: str | None = None
    last_attempt_at: datetime | None = None


class MemoryInspection(OrderBrowser, OutboxInspector):
    _lock: threading.Lock
    _orders: dict[str, bytes]
    _owners: dict[str, str]
    _outbox: list[PendingEvent]
    _entries: dict[int, Entry]
    _redeliveries: list[tuple[int, datetime, str, int]]
    _cursor_key: bytes

    def browse(
        self,
        *,
        status: str | None = None,
        customer_id: str | None = None,
        owner: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> Page:
        before: int | None = None
        if cursor is not None:
            found = decode_cursor(cursor, self._cursor_key).get("i")
            if not isinstance(found, int) or isinstance(found, bool) or found < 0:
                raise MalformedRequest("invalid pagination cursor")
            before = found
        with self._lock:
            rows = [(body, self._owners[oid]) for oid, body in self._orders.items()]
        matching: list[tuple[int, Order]] = []
        for index in range(len(rows) - 1 if before is None else before - 1, -1, -1):
            body, who = rows[index]
            order = Order.model_validate_json(body).owned_by(who)
            if (
                (status is None or order.status.value == status)
                and (customer_id is None or order.customer_id == customer_id)
                and (owner is None or who == owner)
            ):
                matching.append((index, order))
                if len(matching) > limit:
                    break
        next_cursor = None
        if len(matching) > limit:
            next_cursor = encode_cursor({"i": matching[limit - 1][0]}, self._cursor_key)
        return Page([order for _, order in matching[:limit]], next_cursor)

    def status_counts(self, *, customer_id: str | None = None) -> dict[str, int]:
        counts = dict.fromkeys((s.value for s in OrderStatus), 0)
        with self._lock:
            bodies = list(self._orders.values())
        for body in bodies:
            order = Order.model_validate_json(body)
            if customer_id is None or order.customer_id == customer_id:
                counts[order.status.value] += 1
        return counts

    def _delivery(self, pending: PendingEvent) -> Delivery:
        entry = self._entries[pending.position]
        event = pending.event
        asked = [at for position, at, _, _ in self._redeliveries if position == pending.position]
        return Delivery(
            position=pending.position,
            event_id=event.id,
            event_type=event.type,
            order_id=event.order_id,
            version=event.version,
            committed_at=entry.committed_at,
            delivered_at=entry.delivered_at,
            attempts=pending.attempts,
            last_error=entry.last_error,
            last_attempt_at=entry.last_attempt_at,
            traceparent=event.traceparent,
            redelivery_requested_at=asked[-1] if asked else None,
        )

    def timeline(self, order_id: str) -> list[TimelineEntry]:
        with self._lock:
            return [
                TimelineEntry(
                    version=p.event.version,
                    status=str(p.event.data["status"]),
                    at=p.event.time,
                    delivery=self._delivery(p),
                    command=self._entries[p.position].command,
                )
                for p in self._outbox
                if p.event.order_id == order_id
            ]

    def undelivered(
        self, *, failed_only: bool = False, after: int = 0, limit: int = 50
    ) -> list[Delivery]:
        with self._lock:
            found = [
                self._delivery(p)
                for p in self._outbox
                if p.position > after
                and self._entries[p.position].delivered_at is None
                and (p.attempts > 0 or not failed_only)
            ]
        return found[:limit]

    def summary(self) -> OutboxSummary:
        with self._lock:
            every = [self._delivery(p) for p in self._outbox]
        waiting = [d for d in every if d.delivered_at is None]
        done = [d for d in every if d.delivered_at is not None]
        last = done[-1] if done else None
        return OutboxSummary(
            undelivered=len(waiting),
            failed=sum(d.attempts > 0 for d in waiting),
            oldest_undelivered_at=min((d.committed_at for d in waiting), default=None),
            last_delivered_at=last.delivered_at if last else None,
            last_delivery_lag=(
                (last.delivered_at - last.committed_at).total_seconds()
                if last is not None and last.delivered_at is not None
                else None
            ),
        )

    def request_redelivery(
        self, event_id: str, *, requested_by: str, now: datetime
    ) -> RedeliveryRequest:
        with self._lock:
            pending = next((p for p in self._outbox if p.event.id == event_id), None)
            if pending is None:
                raise NotFound(f"no event {event_id!r}")
            if self._entries[pending.position].delivered_at is not None:
                raise NotRedeliverable(f"event {event_id} was delivered already")
            if pending.attempts == 0:
                raise NotRedeliverable(f"event {event_id} has not failed: it waits its turn")
            for number, (position, at, by, before) in enumerate(self._redeliveries, start=1):
                if position == pending.position and before == pending.attempts:
                    return RedeliveryRequest(number, event_id, at, by, created=False)
            self._redeliveries.append((pending.position, now, requested_by, pending.attempts))
            return RedeliveryRequest(len(self._redeliveries), event_id, now, requested_by)
