"""Principals, ownership and idempotency-key namespaces (docs/decisions/0011)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from orders_core.application import (
    ANONYMOUS,
    CREATE,
    FULFILL,
    Change,
    Command,
    OrderService,
    OrderStore,
    Principal,
    event_for,
    event_key,
)
from orders_core.domain import LineItem, Order, OrderStatus
from orders_core.edges.http import HttpApi
from orders_core.testing.clock import FakeClock
from orders_core.testing.contract._base import (
    ADMIN,
    ALICE,
    BOB,
    CREATE_BODY,
    QUEUE,
    ContractBase,
)


class OwnershipCases(ContractBase):
    """Who may see and change an order, and whose keys collide with whose."""

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
        store.commit(Change(confirmed, 1, (event_for(confirmed),)), now=clock())
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
        command = Command(FULFILL, "urn:erp", "evt-9", {"orderId": oid})
        result = service.handle(
            command, principal=QUEUE, idempotency_key=event_key("urn:erp", "evt-9")
        )
        assert json.loads(result.body)["status"] == "FULFILLED"
        # The order is still Alice's: acting on it does not take it over.
        assert self._get(api, f"/orders/{oid}", ALICE).json()["status"] == "FULFILLED"

    def test_one_cloudevent_through_two_services_is_one_command(
        self, service: OrderService, store: OrderStore
    ) -> None:
        bus = Principal.service("arn:aws:events:us-east-1:111122223333:event-bus/orders")
        command = Command(CREATE, "urn:erp", "evt-7", json.loads(CREATE_BODY))
        key = event_key("urn:erp", "evt-7")
        first = service.handle(command, principal=QUEUE, idempotency_key=key)
        again = service.handle(command, principal=bus, idempotency_key=key)
        assert (first.replayed, again.replayed) == (False, True)
        assert again.body == first.body
        assert len(store.list_by_customer("cust-1").orders) == 1

    def test_with_authentication_off_the_anonymous_caller_sees_every_order(
        self, api: HttpApi, service: OrderService
    ) -> None:
        command = Command(CREATE, "urn:erp", "evt-8", json.loads(CREATE_BODY))
        made = service.handle(
            command, principal=QUEUE, idempotency_key=event_key("urn:erp", "evt-8")
        )
        alices = self._post(api, "/orders", CREATE_BODY, principal=ALICE).json()["orderId"]
        assert self._get(api, f"/orders/{made.order_id}", ANONYMOUS).status == 200
        listing = self._get(api, "/orders", ANONYMOUS, {"customerId": "cust-1"}).json()["orders"]
        assert {o["orderId"] for o in listing} == {made.order_id, alices}
        assert self._get(api, f"/orders/{made.order_id}", ALICE).status == 404

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
        command = Command(CREATE, "urn:erp:orders", "evt-42", json.loads(CREATE_BODY))
        real = service.handle(
            command, principal=principal, idempotency_key=event_key("urn:erp:orders", "evt-42")
        )
        assert (real.status, real.replayed) == (201, False)
        assert real.order_id != forged.json()["orderId"]
