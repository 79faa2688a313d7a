"""In-memory store and publisher: the reference adapter, and a fast one for tests.

It passes the same contract suite as the real stores, so its behaviour is the contract in its
simplest form: one lock around a dict, checks before writes. Like the real stores it keeps
each order as its JSON (``Change.order_json``) and parses on read: a read never hands out
the object a writer holds, and a long-lived process (a warm benchmark, a soak test) does not
keep a dozen garbage-collected objects per order alive: in bench/warm.py their full
collections cost ~20 us per create, ~3 us with JSON kept instead (docs/decisions/0007).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime

from orders_core.application import (
    Backend,
    Change,
    EventPublisher,
    IdempotencyRecord,
    OrderStore,
    Outbox,
    Page,
    PendingEvent,
    PublishFailed,
    Unaccepted,
    decode_cursor,
    encode_cursor,
    utc_now,
)
from orders_core.domain import UNOWNED, DomainEvent, Order
from orders_core.errors import ConcurrencyConflict, DuplicateRequest
from orders_core.testing._memory_inspect import Entry, MemoryInspection


class InMemoryStore(OrderStore, Outbox, MemoryInspection):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._orders: dict[str, bytes] = {}  # order id -> the order's JSON, in commit order
        self._versions: dict[str, int] = {}
        self._owners: dict[str, str] = {}
        self._records: dict[str, IdempotencyRecord] = {}
        self._outbox: list[PendingEvent] = []
        self._delivered: set[int] = set()
        self._entries: dict[int, Entry] = {}
        self._redeliveries: list[tuple[int, datetime, str, int]] = []
        """(position, requested at, by, attempts before), in request order."""
        self._cursor_key = os.urandom(32)

    # -- OrderStore --------------------------------------------------------------------

    def get(self, order_id: str) -> Order | None:
        with self._lock:
            data = self._orders.get(order_id)
            owner = self._owners.get(order_id, UNOWNED)
        return None if data is None else Order.model_validate_json(data).owned_by(owner)

    def list_by_customer(
        self,
        customer_id: str,
        *,
        limit: int = 20,
        cursor: str | None = None,
        owner: str | None = None,
    ) -> Page:
        after: tuple[str, str] | None = None
        if cursor is not None:
            position = decode_cursor(cursor, self._cursor_key)
            after = (str(position.get("t")), str(position.get("id")))
        with self._lock:
            every = [
                Order.model_validate_json(data).owned_by(self._owners[order_id])
                for order_id, data in self._orders.items()
                if owner is None or self._owners[order_id] == owner
            ]
        mine = sorted(
            (o for o in every if o.customer_id == customer_id),
            key=lambda o: (o.created_at.isoformat(), o.order_id),
        )
        if after is not None:
            mine = [o for o in mine if (o.created_at.isoformat(), o.order_id) > after]
        page = mine[:limit]
        next_cursor = None
        if len(mine) > limit:
            last = page[-1]
            next_cursor = encode_cursor(
                {"t": last.created_at.isoformat(), "id": last.order_id}, self._cursor_key
            )
        return Page(page, next_cursor)

    def get_idempotency(self, key: str) -> IdempotencyRecord | None:
        with self._lock:
            return self._records.get(key)

    def commit(self, change: Change, *, now: datetime) -> None:
        order = change.order
        with self._lock:
            record = change.idempotency
            if record is not None:
                existing = self._records.get(record.key)
                if existing is not None and not existing.expired(now):
                    raise DuplicateRequest(f"idempotency key {record.key} already used")
            current_version = self._versions.get(order.order_id, 0)
            if current_version != change.expected_version:
                raise ConcurrencyConflict(
                    f"order {order.order_id} is at version {current_version}, "
                    f"expected {change.expected_version}"
                )
            self._orders[order.order_id] = change.order_json
            self._owners.setdefault(order.order_id, order.owner)  # set once, at creation
            self._versions[order.order_id] = order.version
            if record is not None:
                self._records[record.key] = record
            for i, event in enumerate(change.events):
                position = len(self._outbox) + 1
                self._outbox.append(PendingEvent(position, event))
                self._entries[position] = Entry(now, change.command if i == 0 else None)

    # -- Outbox ------------------------------------------------------------------------

    def pending(self, limit: int = 100) -> list[PendingEvent]:
        with self._lock:
            return [p for p in self._outbox if p.position not in self._delivered][:limit]

    def mark_delivered(self, positions: Sequence[int]) -> None:
        now = utc_now()
        with self._lock:
            for position in set(positions) - self._delivered:
                if position in self._entries:
                    self._entries[position].delivered_at = now
            self._delivered.update(positions)

    def mark_failed(self, positions: Sequence[int], error: str) -> None:
        now = utc_now()
        with self._lock:
            for i, entry in enumerate(self._outbox):
                if entry.position in positions:
                    self._outbox[i] = PendingEvent(entry.position, entry.event, entry.attempts + 1)
                    self._entries[entry.position].last_error = error[:500]
                    self._entries[entry.position].last_attempt_at = now

    def undelivered_count(self) -> int:
        with self._lock:
            return sum(p.position not in self._delivered for p in self._outbox)

    def events_for(self, order_id: str) -> list[DomainEvent]:
        """Every event committed for ``order_id``, delivered or not (for tests)."""
        with self._lock:
            return [p.event for p in self._outbox if p.event.order_id == order_id]


def backend(settings: Mapping[str, str]) -> Backend:
    """An in-memory backend (nothing survives the process): for demos and tests."""
    del settings  # it takes none
    store = InMemoryStore()
    return Backend(
        name="memory",
        store=store,
        describe="in memory",
        outbox=store,
        browser=store,
        inspector=store,
    )


class InMemoryPublisher(EventPublisher):
    """Collects what it is asked to publish, in order (for tests and examples). While
    ``down`` is set it accepts nothing, as a sink in an outage."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.published: list[DomainEvent] = []
        self.down = False

    def publish(self, events: Sequence[DomainEvent]) -> None:
        with self._lock:
            if self.down and events:
                raise PublishFailed([Unaccepted(e, "SinkDown") for e in events])
            self.published.extend(events)
