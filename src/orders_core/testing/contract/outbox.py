"""The contract every :class:`~orders_core.application.Outbox` keeps, as a pytest suite.

A base of its own rather than cases inside the store's suite: not every store has an outbox
(DynamoDB's stream plays that part), and a backend declares its outbox apart from its store
(:class:`~orders_core.application.Backend`), so the hook hands back both. Events reach the outbox
only through :meth:`~orders_core.application.OrderStore.commit`; the relay relies on what is
checked here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from orders_core.application import Change, IdempotencyRecord, OrderStore, Outbox, event_for
from orders_core.domain import LineItem, Order, OrderStatus, event_id
from orders_core.errors import ConcurrencyConflict, DuplicateRequest
from orders_core.testing.clock import FakeClock


class OutboxContract(ABC):
    """Base class of the outbox suite; not collected by itself (its name lacks ``Test``)."""

    @abstractmethod
    def make_outbox(self, tmp_path: Path) -> tuple[OrderStore, Outbox]:
        """A fresh, empty store and the outbox its commits fill (often one object)."""

    def close_outbox(self, store: OrderStore, outbox: Outbox) -> None:  # noqa: B027 - optional
        """Release what :meth:`make_outbox` opened."""

    # -- fixtures ----------------------------------------------------------------------

    @pytest.fixture
    def outbox_parts(self, tmp_path: Path) -> Iterator[tuple[OrderStore, Outbox]]:
        store, outbox = self.make_outbox(tmp_path)
        try:
            yield store, outbox
        finally:
            self.close_outbox(store, outbox)

    @pytest.fixture
    def store(self, outbox_parts: tuple[OrderStore, Outbox]) -> OrderStore:
        return outbox_parts[0]

    @pytest.fixture
    def outbox(self, outbox_parts: tuple[OrderStore, Outbox]) -> Outbox:
        return outbox_parts[1]

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    # -- helpers -----------------------------------------------------------------------

    @staticmethod
    def _place(
        store: OrderStore, clock: FakeClock, order_id: str, record: IdempotencyRecord | None = None
    ) -> Order:
        order = Order.place(order_id, [LineItem(sku="sku-1", quantity=1)], "cust-1", clock())
        store.commit(Change(order, 0, (event_for(order),), record), now=clock())
        return order

    @staticmethod
    def _confirm(store: OrderStore, clock: FakeClock, order: Order) -> Order:
        confirmed = order.transition(OrderStatus.CONFIRMED, clock())
        change = Change(confirmed, order.version, (event_for(confirmed),))
        store.commit(change, now=clock())
        return confirmed

    @staticmethod
    def _ids(outbox: Outbox, limit: int = 100) -> list[str]:
        return [p.event.id for p in outbox.pending(limit=limit)]

    # -- cases -------------------------------------------------------------------------

    def test_an_empty_outbox_has_nothing_pending(self, outbox: Outbox) -> None:
        assert outbox.pending() == []

    def test_pending_lists_events_in_commit_order(
        self, store: OrderStore, outbox: Outbox, clock: FakeClock
    ) -> None:
        first = self._place(store, clock, "o-1")
        self._place(store, clock, "o-2")
        self._confirm(store, clock, first)
        pending = outbox.pending()
        assert [p.event.id for p in pending] == [
            event_id("o-1", 1),
            event_id("o-2", 1),
            event_id("o-1", 2),
        ]
        positions = [p.position for p in pending]
        assert positions == sorted(set(positions))  # strictly increasing
        assert [p.attempts for p in pending] == [0, 0, 0]
        assert pending[2].event.data["status"] == "CONFIRMED"

    def test_pending_stops_at_its_limit_keeping_the_order(
        self, store: OrderStore, outbox: Outbox, clock: FakeClock
    ) -> None:
        for i in range(5):
            self._place(store, clock, f"o-{i}")
        assert self._ids(outbox, limit=2) == [event_id("o-0", 1), event_id("o-1", 1)]
        assert self._ids(outbox, limit=2) == self._ids(outbox)[:2]

    def test_delivered_events_are_no_longer_pending(
        self, store: OrderStore, outbox: Outbox, clock: FakeClock
    ) -> None:
        first = self._place(store, clock, "o-1")
        self._place(store, clock, "o-2")
        self._confirm(store, clock, first)
        one, two, three = outbox.pending()
        outbox.mark_delivered([one.position, three.position])
        assert self._ids(outbox) == [event_id("o-2", 1)]
        self._place(store, clock, "o-3")  # a later commit brings nothing delivered back
        assert self._ids(outbox) == [event_id("o-2", 1), event_id("o-3", 1)]
        outbox.mark_delivered([two.position])
        assert self._ids(outbox) == [event_id("o-3", 1)]

    def test_a_failed_attempt_is_counted_and_the_event_stays_pending(
        self, store: OrderStore, outbox: Outbox, clock: FakeClock
    ) -> None:
        self._place(store, clock, "o-1")
        self._place(store, clock, "o-2")
        failing, other = outbox.pending()
        outbox.mark_failed([failing.position], "bus unavailable")
        outbox.mark_failed([failing.position], "bus unavailable")
        pending = outbox.pending()
        assert [(p.position, p.event.id) for p in pending] == [
            (failing.position, failing.event.id),
            (other.position, other.event.id),
        ]
        assert [p.attempts for p in pending] == [2, 0]
        outbox.mark_delivered([failing.position])
        assert self._ids(outbox) == [other.event.id]

    def test_events_of_a_refused_change_never_appear(
        self, store: OrderStore, outbox: Outbox, clock: FakeClock
    ) -> None:
        record = IdempotencyRecord(
            key="k",
            fingerprint="f" * 64,
            status=201,
            body=b"{}",
            order_id="o-1",
            version=1,
            expires_at=clock() + timedelta(hours=24),
        )
        first = self._place(store, clock, "o-1", record)
        with pytest.raises(ConcurrencyConflict):  # o-1 exists: a create is stale
            self._place(store, clock, "o-1")
        confirmed = first.transition(OrderStatus.CONFIRMED, clock())
        stale = Change(confirmed, 7, (event_for(confirmed),))
        with pytest.raises(ConcurrencyConflict):  # based on a version it is no longer at
            store.commit(stale, now=clock())
        with pytest.raises(DuplicateRequest):  # the key is taken: the whole change goes
            self._place(store, clock, "o-2", record)
        assert self._ids(outbox) == [event_id("o-1", 1)]
        self._confirm(store, clock, first)
        assert self._ids(outbox) == [event_id("o-1", 1), event_id("o-1", 2)]
