"""The contract every :class:`~orders_core.ports.OrderStore` keeps, as a pytest suite.

Subclass :class:`StoreContract` in a ``Test*`` class and implement :meth:`make_store` (and
:meth:`committed_events` if your store keeps events somewhere other than an
:class:`~orders_core.ports.Outbox`). The suite drives the store both directly and through
:class:`~orders_core.service.OrderService` and :class:`~orders_core.http.HttpApi`, so an
adapter that passes it answers exactly as every other adapter does.
"""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from orders_core import commands
from orders_core.commands import Command
from orders_core.deadline import Deadline
from orders_core.domain import LineItem, Order, OrderStatus
from orders_core.errors import (
    ConcurrencyConflict,
    DeadlineExceeded,
    DuplicateRequest,
    IdempotencyKeyReused,
    InvalidTransition,
    MalformedRequest,
    PreconditionFailed,
    ValidationFailed,
)
from orders_core.events import DomainEvent, event_id
from orders_core.http import HttpApi, HttpRequest, HttpResponse
from orders_core.idempotency import IdempotencyRecord, event_key, http_key
from orders_core.ports import Change, OrderStore, Outbox
from orders_core.security import ANONYMOUS, Principal
from orders_core.service import OrderService
from orders_core.testing.clock import FakeClock

T = TypeVar("T")

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
CREATE_BODY = b'{"items":[{"id":"sku-1","qty":2}],"customerId":"cust-1"}'
RACERS = 16
ALICE = Principal.jwt("https://issuer.test/", "alice")
BOB = Principal.jwt("https://issuer.test/", "bob")
ADMIN = Principal.jwt("https://issuer.test/", "root", admin=True)
QUEUE = Principal.service("arn:aws:sqs:us-east-1:111122223333:orders-commands")


def _run_concurrently(n: int, fn: Callable[[int], T]) -> list[T | BaseException]:
    """Run ``fn(i)`` for i < n on n threads released together; collect results or errors."""
    barrier = threading.Barrier(n)

    def call(i: int) -> T | BaseException:
        barrier.wait(timeout=10)
        try:
            return fn(i)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(call, range(n), timeout=60))


class StoreContract(ABC):
    """Base class of the contract suite; not collected by itself (its name lacks ``Test``)."""

    @abstractmethod
    def make_store(self, tmp_path: Path) -> OrderStore:
        """A fresh, empty store. ``tmp_path`` is a per-test directory for files."""

    def close_store(self, store: OrderStore) -> None:  # noqa: B027 - optional hook
        """Release what :meth:`make_store` opened (connections, servers)."""

    def committed_events(self, store: OrderStore, order_id: str) -> list[DomainEvent]:
        """Every event committed for ``order_id``, in commit order, delivered or not."""
        if not isinstance(store, Outbox):
            raise NotImplementedError("override committed_events for stores without an Outbox")
        return [p.event for p in store.pending(limit=10_000) if p.event.order_id == order_id]

    # -- fixtures ----------------------------------------------------------------------

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[OrderStore]:
        store = self.make_store(tmp_path)
        try:
            yield store
        finally:
            self.close_store(store)

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def service(self, store: OrderStore, clock: FakeClock) -> OrderService:
        return OrderService(store, clock=clock)

    @pytest.fixture
    def api(self, service: OrderService) -> HttpApi:
        return HttpApi(service)

    # -- helpers -----------------------------------------------------------------------

    @staticmethod
    def _order(clock: FakeClock, order_id: str = "o-1", customer_id: str = "cust-1") -> Order:
        return Order.place(order_id, [LineItem(sku="sku-1", quantity=2)], customer_id, clock())

    @staticmethod
    def _create(order: Order, record: IdempotencyRecord | None = None) -> Change:
        return Change(order, 0, (DomainEvent.for_order(order),), record)

    @staticmethod
    def _record(clock: FakeClock, key: str = "k", order_id: str = "o-1") -> IdempotencyRecord:
        return IdempotencyRecord(
            key=key,
            fingerprint="f" * 64,
            status=201,
            body=b'{"orderId":"%s"}' % order_id.encode(),
            order_id=order_id,
            version=1,
            expires_at=clock() + timedelta(hours=24),
        )

    @staticmethod
    def _post(
        api: HttpApi,
        path: str,
        body: bytes = b"",
        principal: Principal = ANONYMOUS,
        **headers: str,
    ) -> HttpResponse:
        hdrs = {k.replace("_", "-"): v for k, v in headers.items()}
        if body:
            hdrs.setdefault("content-type", "application/json")
        return api.handle(HttpRequest("POST", path, hdrs, body=body, principal=principal))

    @staticmethod
    def _get(
        api: HttpApi, path: str, principal: Principal, query: dict[str, str] | None = None
    ) -> HttpResponse:
        return api.handle(HttpRequest("GET", path, query=query or {}, principal=principal))

    # -- the store port ----------------------------------------------------------------

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
        store.commit(Change(confirmed, 1, (DomainEvent.for_order(confirmed),)), now=clock())
        events = self.committed_events(store, "o-1")
        assert [e.id for e in events] == [event_id("o-1", 1), event_id("o-1", 2)]
        assert events[1].data["status"] == "CONFIRMED"

    def test_a_stale_expected_version_is_a_conflict_and_writes_nothing(
        self, store: OrderStore, clock: FakeClock
    ) -> None:
        order = self._order(clock)
        store.commit(self._create(order), now=clock())
        confirmed = order.transition(OrderStatus.CONFIRMED, clock())
        store.commit(Change(confirmed, 1, (DomainEvent.for_order(confirmed),)), now=clock())
        cancelled = order.transition(OrderStatus.CANCELLED, clock())  # based on version 1
        with pytest.raises(ConcurrencyConflict):
            store.commit(Change(cancelled, 1, (DomainEvent.for_order(cancelled),)), now=clock())
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

    # -- idempotency through the service -----------------------------------------------

    def test_a_repeat_replays_the_first_answer_byte_for_byte(
        self, api: HttpApi, store: OrderStore, clock: FakeClock
    ) -> None:
        first = self._post(api, "/orders", CREATE_BODY, idempotency_key="key-1")
        clock.advance(timedelta(minutes=5))
        again = self._post(api, "/orders", CREATE_BODY, idempotency_key="key-1")
        assert first.status == again.status == 201
        assert again.body == first.body
        assert again.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in first.headers
        assert len(store.list_by_customer("cust-1").orders) == 1
        assert len(self.committed_events(store, first.json()["orderId"])) == 1

    def test_the_same_key_with_another_payload_is_422_and_changes_nothing(
        self, api: HttpApi, store: OrderStore
    ) -> None:
        self._post(api, "/orders", CREATE_BODY, idempotency_key="key-1")
        other = CREATE_BODY.replace(b'"qty":2', b'"qty":3')
        response = self._post(api, "/orders", other, idempotency_key="key-1")
        assert response.status == 422
        assert response.json()["type"].endswith("idempotency-key-reused")
        assert len(store.list_by_customer("cust-1").orders) == 1

    def test_keys_are_scoped_per_principal(self, api: HttpApi, store: OrderStore) -> None:
        def post(principal: Principal) -> HttpResponse:
            headers = {"content-type": "application/json", "idempotency-key": "shared"}
            request = HttpRequest("POST", "/orders", headers, body=CREATE_BODY, principal=principal)
            return api.handle(request)

        alice, bob = post(ALICE), post(BOB)
        assert alice.status == bob.status == 201
        assert alice.json()["orderId"] != bob.json()["orderId"]
        assert "idempotent-replayed" not in bob.headers
        assert len(store.list_by_customer("cust-1").orders) == 2

    def test_a_record_expires_after_its_ttl(
        self, api: HttpApi, store: OrderStore, clock: FakeClock
    ) -> None:
        first = self._post(api, "/orders", CREATE_BODY, idempotency_key="key-1")
        clock.advance(timedelta(hours=24, seconds=1))
        later = self._post(api, "/orders", CREATE_BODY, idempotency_key="key-1")
        assert later.status == 201
        assert later.json()["orderId"] != first.json()["orderId"]

    def test_concurrent_duplicates_make_one_order_and_equal_answers(
        self, api: HttpApi, store: OrderStore
    ) -> None:
        results = _run_concurrently(
            RACERS, lambda _: self._post(api, "/orders", CREATE_BODY, idempotency_key="race")
        )
        responses = [r for r in results if isinstance(r, HttpResponse)]
        assert len(responses) == RACERS, results
        assert {r.status for r in responses} == {201}
        assert len({r.body for r in responses}) == 1
        assert sum("idempotent-replayed" not in r.headers for r in responses) == 1
        orders = store.list_by_customer("cust-1").orders
        assert len(orders) == 1
        assert len(self.committed_events(store, orders[0].order_id)) == 1

    def test_a_redelivered_cloudevent_has_no_second_effect(
        self, service: OrderService, store: OrderStore
    ) -> None:
        command = Command(
            type=commands.CREATE,
            source="urn:test:queue",
            id="evt-1",
            data=json.loads(CREATE_BODY),
        )
        key = event_key(command.source, command.id)
        results = [service.handle(command, idempotency_key=key) for _ in range(3)]
        assert [r.replayed for r in results] == [False, True, True]
        assert len({r.body for r in results}) == 1
        assert len(store.list_by_customer("cust-1").orders) == 1

    # -- optimistic concurrency --------------------------------------------------------

    def test_concurrent_confirms_with_one_etag_let_exactly_one_win(
        self, api: HttpApi, store: OrderStore
    ) -> None:
        created = self._post(api, "/orders", CREATE_BODY)
        order_id = created.json()["orderId"]
        results = _run_concurrently(
            RACERS,
            lambda _: self._post(
                api, f"/orders/{order_id}/confirm", if_match=created.headers["etag"]
            ),
        )
        statuses = sorted(r.status for r in results if isinstance(r, HttpResponse))
        assert statuses == [200] + [412] * (RACERS - 1), results
        order = store.get(order_id)
        assert order is not None
        assert (order.status, order.version) == (OrderStatus.CONFIRMED, 2)
        assert len(self.committed_events(store, order_id)) == 2

    def test_concurrent_transitions_without_etag_never_double_apply(
        self, service: OrderService, store: OrderStore
    ) -> None:
        created = service.handle(Command(commands.CREATE, "t", "c", json.loads(CREATE_BODY)))
        results = _run_concurrently(
            RACERS,
            lambda i: service.handle(
                Command(commands.CONFIRM, "t", f"confirm-{i}", {"orderId": created.order_id})
            ),
        )
        wins = [r for r in results if not isinstance(r, BaseException)]
        losses = [r for r in results if isinstance(r, BaseException)]
        assert len(wins) == 1
        assert all(isinstance(e, InvalidTransition | ConcurrencyConflict) for e in losses), losses
        order = store.get(created.order_id)
        assert order is not None
        assert order.version == 2

    # -- lifecycle and bad input -------------------------------------------------------

    def test_the_full_lifecycle_emits_one_event_per_transition(
        self, service: OrderService, store: OrderStore
    ) -> None:
        created = service.handle(Command(commands.CREATE, "t", "1", json.loads(CREATE_BODY)))
        oid = created.order_id
        service.handle(Command(commands.CONFIRM, "t", "2", {"orderId": oid}))
        done = service.handle(Command(commands.FULFILL, "t", "3", {"orderId": oid}))
        assert json.loads(done.body)["status"] == "FULFILLED"
        with pytest.raises(InvalidTransition):
            service.handle(Command(commands.CANCEL, "t", "4", {"orderId": oid}))
        types = [e.type for e in self.committed_events(store, oid)]
        assert types == [
            "io.orderscore.order.created.v1",
            "io.orderscore.order.confirmed.v1",
            "io.orderscore.order.fulfilled.v1",
        ]

    def test_a_stale_if_match_is_412_and_changes_nothing(
        self, api: HttpApi, store: OrderStore
    ) -> None:
        oid = self._post(api, "/orders", CREATE_BODY).json()["orderId"]
        assert self._post(api, f"/orders/{oid}/confirm", if_match='"1"').status == 200
        response = self._post(api, f"/orders/{oid}/cancel", if_match='"1"')
        assert response.status == 412
        order = store.get(oid)
        assert order is not None
        assert order.status is OrderStatus.CONFIRMED

    @pytest.mark.parametrize(
        "data",
        [
            {"items": []},
            {"items": [{"id": "sku-1", "qty": 0}]},
            {"items": [{"id": "bad sku!", "qty": 1}]},
            {"items": [{"id": "sku-1", "qty": 1}], "surprise": True},
        ],
    )
    def test_invalid_commands_change_nothing(
        self, service: OrderService, store: OrderStore, data: dict[str, Any]
    ) -> None:
        with pytest.raises(ValidationFailed):
            service.handle(Command(commands.CREATE, "t", "bad", {**data, "customerId": "cust-1"}))
        assert store.list_by_customer("cust-1").orders == []

    def test_an_expired_deadline_starts_nothing(
        self, service: OrderService, store: OrderStore
    ) -> None:
        command = Command(commands.CREATE, "t", "late", json.loads(CREATE_BODY))
        with pytest.raises(DeadlineExceeded):
            service.handle(command, deadline=Deadline.after(-1))
        assert store.list_by_customer("cust-1").orders == []

    def test_events_carry_the_commands_trace_context(
        self, service: OrderService, store: OrderStore
    ) -> None:
        command = Command(
            commands.CREATE, "t", "traced", json.loads(CREATE_BODY), traceparent=TRACEPARENT
        )
        result = service.handle(command)
        (event,) = self.committed_events(store, result.order_id)
        assert event.traceparent is not None
        assert event.traceparent.split("-")[1] == TRACEPARENT.split("-")[1]
        assert event.subject == result.order_id
        assert event.id == event_id(result.order_id, 1)

    def test_an_idempotency_key_cannot_be_reused_across_command_types(
        self, service: OrderService
    ) -> None:
        created = service.handle(
            Command(commands.CREATE, "t", "x", json.loads(CREATE_BODY)),
            idempotency_key=http_key("k"),
        )
        with pytest.raises(IdempotencyKeyReused):
            service.handle(
                Command(commands.CONFIRM, "t", "y", {"orderId": created.order_id}),
                idempotency_key=http_key("k"),
            )

    def test_a_precondition_on_a_missing_order_is_404(self, api: HttpApi) -> None:
        assert self._post(api, "/orders/missing/confirm", if_match='"1"').status == 404

    def test_preconditions_hold_under_the_service_too(self, service: OrderService) -> None:
        created = service.handle(Command(commands.CREATE, "t", "1", json.loads(CREATE_BODY)))
        with pytest.raises(PreconditionFailed):
            service.handle(
                Command(
                    commands.CONFIRM, "t", "2", {"orderId": created.order_id, "expectedVersion": 7}
                )
            )

    # -- ownership and key namespaces (docs/decisions/0011) ------------------------------

    def test_the_owner_is_stored_kept_by_transitions_and_never_in_the_json(
        self, store: OrderStore, clock: FakeClock
    ) -> None:
        order = Order.place("o-1", [LineItem(sku="sku-1", quantity=2)], "cust-1", clock(), ALICE.id)
        store.commit(self._create(order), now=clock())
        read = store.get("o-1")
        assert read is not None
        assert read.owner == ALICE.id
        confirmed = read.transition(OrderStatus.CONFIRMED, clock())
        store.commit(Change(confirmed, 1, (DomainEvent.for_order(confirmed),)), now=clock())
        again = store.get("o-1")
        assert again is not None
        assert (again.owner, again.status) == (ALICE.id, OrderStatus.CONFIRMED)
        assert b"alice" not in again.to_json()
        assert all(
            b"alice" not in e.to_record_json().encode() for e in self.committed_events(store, "o-1")
        )

    def test_listing_by_owner_pages_through_only_that_owners_orders(
        self, store: OrderStore, clock: FakeClock
    ) -> None:
        for i in range(9):  # interleaved: a page's worth of the other owner between each
            owner = ALICE if i % 3 == 0 else BOB
            order = Order.place(
                f"o-{i}", [LineItem(sku="sku-1", quantity=1)], "cust-1", clock(), owner.id
            )
            store.commit(self._create(order), now=clock())
            clock.advance(timedelta(seconds=1))
        seen: list[str] = []
        cursor = None
        for _ in range(10):
            page = store.list_by_customer("cust-1", limit=1, cursor=cursor, owner=ALICE.id)
            seen += [o.order_id for o in page.orders]
            assert all(o.owner == ALICE.id for o in page.orders)
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == ["o-0", "o-3", "o-6"]
        assert len(store.list_by_customer("cust-1", limit=100).orders) == 9

    def test_another_principal_cannot_read_list_or_change_an_order(
        self, api: HttpApi, store: OrderStore
    ) -> None:
        created = self._post(api, "/orders", CREATE_BODY, principal=ALICE)
        oid = created.json()["orderId"]
        assert self._get(api, f"/orders/{oid}", BOB).status == 404
        listing = self._get(api, "/orders", BOB, {"customerId": "cust-1"})
        assert (listing.status, listing.json()["orders"]) == (200, [])
        for action in ("confirm", "cancel", "fulfill"):
            refused = self._post(api, f"/orders/{oid}/{action}", principal=BOB)
            assert refused.status == 404, action
            # The same answer as for an order that does not exist: nothing to probe.
            assert refused.json()["type"].endswith("not-found")
        order = store.get(oid)
        assert order is not None
        assert (order.status, order.version) == (OrderStatus.PENDING, 1)
        assert len(self.committed_events(store, oid)) == 1
        mine = self._get(api, "/orders", ALICE, {"customerId": "cust-1"}).json()["orders"]
        assert [o["orderId"] for o in mine] == [oid]
        assert self._get(api, f"/orders/{oid}", ALICE).status == 200

    def test_an_admin_and_a_service_may_act_on_any_order(
        self, api: HttpApi, service: OrderService
    ) -> None:
        oid = self._post(api, "/orders", CREATE_BODY, principal=ALICE).json()["orderId"]
        self._post(api, "/orders", CREATE_BODY, principal=BOB)
        assert self._get(api, f"/orders/{oid}", ADMIN).status == 200
        listing = self._get(api, "/orders", ADMIN, {"customerId": "cust-1"}).json()["orders"]
        assert len(listing) == 2
        assert self._post(api, f"/orders/{oid}/confirm", principal=ADMIN).status == 200
        command = Command(commands.FULFILL, "urn:erp", "evt-9", {"orderId": oid})
        result = service.handle(
            command, principal=QUEUE, idempotency_key=event_key("urn:erp", "evt-9")
        )
        assert json.loads(result.body)["status"] == "FULFILLED"
        # The order is still Alice's: acting on it does not take it over.
        assert self._get(api, f"/orders/{oid}", ALICE).json()["status"] == "FULFILLED"

    def test_the_same_key_and_body_from_two_principals_make_two_orders(
        self, api: HttpApi, store: OrderStore
    ) -> None:
        user_a = Principal.iam("arn:aws:iam::111122223333:user/a")
        user_b = Principal.iam("arn:aws:iam::111122223333:user/b")
        a = self._post(api, "/orders", CREATE_BODY, principal=user_a, idempotency_key="k-1")
        b = self._post(api, "/orders", CREATE_BODY, principal=user_b, idempotency_key="k-1")
        assert (a.status, b.status) == (201, 201)
        assert "idempotent-replayed" not in b.headers
        assert a.json()["orderId"] != b.json()["orderId"]
        assert self._get(api, f"/orders/{a.json()['orderId']}", user_b).status == 404

    @pytest.mark.parametrize("principal", [ANONYMOUS, QUEUE], ids=["same-principal", "service"])
    def test_an_http_key_shaped_like_a_cloudevent_identity_does_not_preclaim_it(
        self, api: HttpApi, service: OrderService, principal: Principal
    ) -> None:
        forged = self._post(
            api, "/orders", CREATE_BODY, idempotency_key="ce:14:urn:erp:orders:evt-42"
        )
        assert forged.status == 201
        command = Command(commands.CREATE, "urn:erp:orders", "evt-42", json.loads(CREATE_BODY))
        real = service.handle(
            command, principal=principal, idempotency_key=event_key("urn:erp:orders", "evt-42")
        )
        assert (real.status, real.replayed) == (201, False)
        assert real.order_id != forged.json()["orderId"]

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
