"""The store port itself: commits, conflicts, idempotency records, listing and cursors."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orders_core.application import Change, OrderStore, event_for
from orders_core.domain import LineItem, Order, OrderStatus, event_id
from orders_core.errors import (
    ConcurrencyConflict,
    DuplicateRequest,
    MalformedRequest,
)
from orders_core.testing.clock import FakeClock
from orders_core.testing.contract._base import (
    ALICE,
    ContractBase,
)


class StorePortCases(ContractBase):
    """Cases that drive the store directly, through :class:`~orders_core.application.OrderStore`."""

    def test_commit_then_get_returns_the_same_order(
        self, store: OrderStore, clock: FakeClock
    ) -> None:
        order = self._order(clock)
        store.commit(self._create(order), now=clock())
        assert store.get("o-1") == order

    def test_get_of_an_unknown_order_is_none(self, store: OrderStore) -> None:
        assert store.get("nope") is None

    def test_events_commit_with_the_order(self, store: OrderStore, clock: FakeClock) -> None:
        order = self._order(clock)
        store.commit(self._create(order), now=clock())
        confirmed = order.transition(OrderStatus.CONFIRMED, clock())
        store.commit(Change(confirmed, 1, (event_for(confirmed),)), now=clock())
        events = self.committed_events(store, "o-1")
        assert [e.id for e in events] == [event_id("o-1", 1), event_id("o-1", 2)]
        assert events[1].data["status"] == "CONFIRMED"

    def test_a_stale_expected_version_is_a_conflict_and_writes_nothing(
        self, store: OrderStore, clock: FakeClock
    ) -> None:
        order = self._order(clock)
        store.commit(self._create(order), now=clock())
        confirmed = order.transition(OrderStatus.CONFIRMED, clock())
        store.commit(Change(confirmed, 1, (event_for(confirmed),)), now=clock())
        cancelled = order.transition(OrderStatus.CANCELLED, clock())  # based on version 1
        with pytest.raises(ConcurrencyConflict):
            store.commit(Change(cancelled, 1, (event_for(cancelled),)), now=clock())
        assert store.get("o-1") == confirmed
        assert len(self.committed_events(store, "o-1")) == 2

    def test_creating_an_existing_order_is_a_conflict(
        self, store: OrderStore, clock: FakeClock
    ) -> None:
        store.commit(self._create(self._order(clock)), now=clock())
        with pytest.raises(ConcurrencyConflict):
            store.commit(self._create(self._order(clock)), now=clock())
        assert len(self.committed_events(store, "o-1")) == 1

    def test_a_live_idempotency_record_blocks_the_whole_change(
        self, store: OrderStore, clock: FakeClock
    ) -> None:
        store.commit(self._create(self._order(clock), self._record(clock)), now=clock())
        with pytest.raises(DuplicateRequest):
            store.commit(
                self._create(self._order(clock, "o-2"), self._record(clock, order_id="o-2")),
                now=clock(),
            )
        assert store.get("o-2") is None
        assert self.committed_events(store, "o-2") == []
        record = store.get_idempotency("k")
        assert record is not None
        assert record.order_id == "o-1"

    def test_an_expired_idempotency_record_may_be_replaced(
        self, store: OrderStore, clock: FakeClock
    ) -> None:
        store.commit(self._create(self._order(clock), self._record(clock)), now=clock())
        clock.advance(timedelta(hours=25))
        store.commit(
            self._create(self._order(clock, "o-2"), self._record(clock, order_id="o-2")),
            now=clock(),
        )
        record = store.get_idempotency("k")
        assert record is not None
        assert (record.order_id, record.body) == ("o-2", b'{"orderId":"o-2"}')

    def test_idempotency_records_round_trip(self, store: OrderStore, clock: FakeClock) -> None:
        record = self._record(clock)
        store.commit(self._create(self._order(clock), record), now=clock())
        assert store.get_idempotency("k") == record
        assert store.get_idempotency("other") is None

    def test_listing_pages_through_one_customers_orders(
        self, store: OrderStore, clock: FakeClock
    ) -> None:
        for i in range(5):
            store.commit(self._create(self._order(clock, f"a-{i}")), now=clock())
            clock.advance(timedelta(seconds=1))
        store.commit(self._create(self._order(clock, "b-0", customer_id="cust-2")), now=clock())
        seen: list[str] = []
        cursor = None
        for _ in range(5):
            page = store.list_by_customer("cust-1", limit=2, cursor=cursor)
            seen += [o.order_id for o in page.orders]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == [f"a-{i}" for i in range(5)]

    def test_a_tampered_cursor_is_refused(self, store: OrderStore, clock: FakeClock) -> None:
        for i in range(3):
            store.commit(self._create(self._order(clock, f"a-{i}")), now=clock())
        cursor = store.list_by_customer("cust-1", limit=1).next_cursor
        assert cursor is not None
        forged = ("x" if cursor[0] != "x" else "y") + cursor[1:]
        with pytest.raises(MalformedRequest):
            store.list_by_customer("cust-1", limit=1, cursor=forged)
        with pytest.raises(MalformedRequest):
            store.list_by_customer("cust-1", limit=1, cursor="not-a-cursor")

    def test_every_order_is_reachable_by_paging_whatever_its_size(
        self, store: OrderStore, clock: FakeClock
    ) -> None:
        # 100 orders of ~11 KB: more than one DynamoDB query page (1 MB) at limit=100.
        items = [
            LineItem(sku=f"{i:02d}-" + "s" * 60, quantity=9999, unit_price=10**11, currency="EUR")
            for i in range(100)
        ]
        for i in range(100):
            order = Order.place(f"big-{i:03d}", items, "cust-big", clock(), ALICE.id)
            store.commit(Change(order, 0, ()), now=clock())
            clock.advance(timedelta(milliseconds=1))
        for owner in (None, ALICE.id):
            seen: list[str] = []
            cursor = None
            for _ in range(100):
                page = store.list_by_customer("cust-big", limit=100, cursor=cursor, owner=owner)
                seen += [o.order_id for o in page.orders]
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert seen == [f"big-{i:03d}" for i in range(100)], owner
