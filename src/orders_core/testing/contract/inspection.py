"""The console's ports (:class:`~orders_core.application.OrderBrowser`,
:class:`~orders_core.application.OutboxInspector`) as a contract suite.

Subclass :class:`InspectionContract` and implement ``make_store`` (a store that is also an
:class:`~orders_core.application.Outbox` and declares both ports) and ``close_store``.
Commands go through :class:`~orders_core.application.OrderService`, as in a runtime, so the
suite also checks that a store records each command with the change it made.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from orders_core.application import (
    CANCEL,
    CONFIRM,
    CREATE,
    Command,
    OrderBrowser,
    OrderService,
    OutboxInspector,
    Principal,
    event_key,
    http_key,
    new_id,
)
from orders_core.errors import MalformedRequest, NotFound, NotRedeliverable
from orders_core.testing.clock import FakeClock

ALICE = Principal.jwt("https://issuer.test/", "alice")
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class InspectionContract(ABC):
    """Cases every store that declares the console's ports passes."""

    @abstractmethod
    def make_store(self, tmp_path: Path) -> Any:
        """A fresh, empty store implementing OrderStore, Outbox and both console ports."""

    def close_store(self, store: Any) -> None:  # noqa: B027 - optional hook
        """Release what :meth:`make_store` opened."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Any]:
        store = self.make_store(tmp_path)
        assert isinstance(store, OrderBrowser)
        assert isinstance(store, OutboxInspector)
        try:
            yield store
        finally:
            self.close_store(store)

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def service(self, store: Any, clock: FakeClock) -> OrderService:
        return OrderService(store, clock=clock)

    @staticmethod
    def _create(service: OrderService, customer: str = "c-1") -> str:
        data = {"items": [{"sku": "sku-1", "quantity": 1}], "customerId": customer}
        return service.handle(Command(CREATE, "urn:test", new_id(), data)).order_id

    @staticmethod
    def _act(service: OrderService, kind: str, order_id: str) -> None:
        service.handle(Command(kind, "urn:test", f"{kind}-{order_id}", {"orderId": order_id}))

    # -- OrderBrowser ------------------------------------------------------------------

    def test_orders_come_newest_first_and_every_one_is_reachable_by_cursor(
        self, store: Any, service: OrderService, clock: FakeClock
    ) -> None:
        made = []
        for _ in range(7):
            made.append(self._create(service))
            clock.advance(timedelta(seconds=1))
        seen, cursor = [], None
        for _ in range(10):
            page = store.browse(limit=3, cursor=cursor)
            seen += [o.order_id for o in page.orders]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == made[::-1]

    def test_orders_filter_by_status_and_customer(self, store: Any, service: OrderService) -> None:
        a = self._create(service, "c-a")
        b = self._create(service, "c-b")
        c = self._create(service, "c-a")
        self._act(service, CONFIRM, a)
        self._act(service, CANCEL, b)
        assert [o.order_id for o in store.browse(status="CONFIRMED").orders] == [a]
        assert [o.order_id for o in store.browse(customer_id="c-a").orders] == [c, a]
        both = store.browse(customer_id="c-a", status="PENDING").orders
        assert [o.order_id for o in both] == [c]
        assert store.browse(status="FULFILLED").orders == []

    def test_a_forged_cursor_is_refused(self, store: Any, service: OrderService) -> None:
        self._create(service)
        with pytest.raises(MalformedRequest):
            store.browse(cursor="eyJyIjoxfQ.AAAAAAAAAAAAAAAAAAAAAA")

    def test_counts_name_every_status(self, store: Any, service: OrderService) -> None:
        assert store.status_counts() == {
            "PENDING": 0,
            "CONFIRMED": 0,
            "FULFILLED": 0,
            "CANCELLED": 0,
        }
        a = self._create(service, "c-a")
        self._create(service, "c-b")
        self._act(service, CONFIRM, a)
        assert store.status_counts() == {
            "PENDING": 1,
            "CONFIRMED": 1,
            "FULFILLED": 0,
            "CANCELLED": 0,
        }
        assert store.status_counts(customer_id="c-b")["PENDING"] == 1
        assert store.status_counts(customer_id="c-b")["CONFIRMED"] == 0

    # -- the timeline ------------------------------------------------------------------

    def test_the_timeline_records_each_command_with_its_version_and_event(
        self, store: Any, service: OrderService
    ) -> None:
        created = service.handle(
            Command(
                CREATE,
                "urn:orders-core:http",
                "a-very-long-client-key-123",
                {"items": [{"sku": "s", "quantity": 1}]},
                traceparent=TRACEPARENT,
            ),
            principal=ALICE,
            idempotency_key=http_key("a-very-long-client-key-123"),
        )
        service.handle(
            Command(CONFIRM, "urn:shop", "evt-9", {"orderId": created.order_id}),
            principal=ALICE,
            idempotency_key=event_key("urn:shop", "evt-9"),
        )
        first, second = store.timeline(created.order_id)
        assert (first.version, first.status, second.version, second.status) == (
            1,
            "PENDING",
            2,
            "CONFIRMED",
        )
        assert first.command is not None
        assert second.command is not None
        assert first.command.type == CREATE
        assert second.command.type == CONFIRM
        assert first.command.principal_kind == "jwt"
        # The caller's key is kept shortened, never whole, also where it was the command id.
        assert first.command.key_hint == "a-very-l…"
        assert first.command.command_id == "a-very-l…"
        assert first.command.key_namespace == "http"
        assert (second.command.command_id, second.command.key_hint) == ("evt-9", "evt-9")
        assert second.command.key_namespace == "cloudevent"
        assert first.delivery.event_id == f"{created.order_id}.v1"
        assert first.delivery.trace_id == TRACEPARENT.split("-")[1]
        assert [e.delivery.state for e in (first, second)] == ["pending", "pending"]
        assert store.timeline("no-such-order") == []

    def test_delivery_states_follow_the_relay_marks(
        self, store: Any, service: OrderService
    ) -> None:
        order_id = self._create(service)
        self._act(service, CONFIRM, order_id)
        first, second = (p.position for p in store.pending())
        store.mark_failed([first], "SinkDown: refused")
        failed = store.timeline(order_id)[0].delivery
        assert (failed.state, failed.attempts, failed.last_error) == (
            "failed",
            1,
            "SinkDown: refused",
        )
        assert failed.last_attempt_at is not None
        assert [d.event_id for d in store.undelivered(failed_only=True)] == [failed.event_id]
        assert len(store.undelivered()) == 2
        assert [d.position for d in store.undelivered(after=first)] == [second]
        summary = store.summary()
        assert (summary.undelivered, summary.failed, summary.last_delivered_at) == (2, 1, None)
        assert summary.oldest_undelivered_at is not None
        store.mark_delivered([first, second])
        states = [e.delivery.state for e in store.timeline(order_id)]
        assert states == ["delivered", "delivered"]
        summary = store.summary()
        assert (summary.undelivered, summary.failed) == (0, 0)
        assert summary.last_delivered_at is not None
        assert summary.last_delivery_lag is not None
        assert store.undelivered() == []

    # -- redelivery --------------------------------------------------------------------

    def test_a_redelivery_is_recorded_once_per_failed_attempt(
        self, store: Any, service: OrderService, clock: FakeClock
    ) -> None:
        order_id = self._create(service)
        (entry,) = store.pending()
        event_id = f"{order_id}.v1"
        with pytest.raises(NotRedeliverable):  # pending, not failed: it waits its turn
            store.request_redelivery(event_id, requested_by="anonymous", now=clock())
        store.mark_failed([entry.position], "refused")
        asked = store.request_redelivery(event_id, requested_by="jwt", now=clock())
        assert (asked.created, asked.event_id, asked.requested_by) == (True, event_id, "jwt")
        again = store.request_redelivery(event_id, requested_by="jwt", now=clock())
        assert (again.created, again.request_id) == (False, asked.request_id)
        delivery = store.timeline(order_id)[0].delivery
        assert delivery.redelivery_requested_at == asked.requested_at
        store.mark_failed([entry.position], "refused again")  # the retry failed too
        later = store.request_redelivery(event_id, requested_by="jwt", now=clock())
        assert later.created
        assert later.request_id != asked.request_id
        store.mark_delivered([entry.position])
        with pytest.raises(NotRedeliverable):
            store.request_redelivery(event_id, requested_by="jwt", now=clock())

    @pytest.mark.parametrize("event_id", ["nope", "nope.v1", "x.vv", ".v1", "a.v999"])
    def test_redelivering_an_unknown_event_is_not_found(
        self, store: Any, service: OrderService, clock: FakeClock, event_id: str
    ) -> None:
        self._create(service)
        with pytest.raises(NotFound):
            store.request_redelivery(event_id, requested_by="anonymous", now=clock())
