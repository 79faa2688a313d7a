"""The contract of the service's unit of work, for every store (its ``groups_commits``
declares which half applies). Subclass :class:`UnitOfWorkContract` and implement
:meth:`make_store`, as for :class:`~orders_core.testing.contract.StoreContract`."""

from __future__ import annotations

import json

import pytest

from orders_core.application import (
    CONFIRM,
    CREATE,
    FULFILL,
    Command,
    OrderService,
    OrderStore,
    http_key,
)
from orders_core.errors import InvalidTransition
from orders_core.testing.contract._base import ContractBase

DATA = {"items": [{"sku": "sku-1", "quantity": 1}], "customerId": "cust-u"}


class UnitOfWorkContract(ContractBase):
    """Its hooks and fixtures are the store contract's (``make_store``, ``close_store``)."""

    @staticmethod
    def _create_command(n: int) -> Command:
        return Command(CREATE, "urn:test", f"u-{n}", DATA)

    def test_a_unit_reports_what_it_committed_and_no_replay(
        self, service: OrderService, store: OrderStore
    ) -> None:
        key = http_key("k-1")
        with service.unit_of_work() as unit:
            first = service.handle(self._create_command(1), idempotency_key=key, unit=unit)
            again = service.handle(self._create_command(1), idempotency_key=key, unit=unit)
            other = service.handle(self._create_command(2), unit=unit)
        assert again.replayed
        assert [r.order_id for r in unit.committed] == [first.order_id, other.order_id]
        assert len(store.list_by_customer("cust-u").orders) == 2

    def test_reads_inside_a_unit_see_its_own_changes(self, service: OrderService) -> None:
        with service.unit_of_work() as unit:
            created = service.handle(self._create_command(1), unit=unit)
            confirm = Command(CONFIRM, "urn:test", "c-1", {"orderId": created.order_id})
            confirmed = service.handle(confirm, unit=unit)
        assert json.loads(confirmed.body)["status"] == "CONFIRMED"
        assert len(unit.committed) == 2

    def test_a_refused_command_leaves_the_rest_of_its_unit(
        self, service: OrderService, store: OrderStore
    ) -> None:
        with service.unit_of_work() as unit:
            created = service.handle(self._create_command(1), unit=unit)
            fulfill = Command(FULFILL, "urn:test", "f-1", {"orderId": created.order_id})
            with pytest.raises(InvalidTransition):
                service.handle(fulfill, unit=unit)
            service.handle(self._create_command(2), unit=unit)
        assert len(unit.committed) == 2
        assert len(store.list_by_customer("cust-u").orders) == 2

    def test_a_unit_that_raises_keeps_only_what_its_store_made_durable(
        self, service: OrderService, store: OrderStore
    ) -> None:
        def turn() -> None:
            with service.unit_of_work() as unit:
                service.handle(self._create_command(1), unit=unit)
                raise RuntimeError("turn failed")

        with pytest.raises(RuntimeError, match="turn failed"):
            turn()
        kept = store.list_by_customer("cust-u").orders
        # A store that groups commits rolls the whole unit back; any other had committed
        # each change when it was made, as its declaration says.
        assert len(kept) == (0 if store.groups_commits else 1)

    def test_a_unit_begun_without_waiting_commits_like_any_other(
        self, service: OrderService, store: OrderStore
    ) -> None:
        if not store.begins_without_waiting:
            pytest.skip("the store does not declare begins_without_waiting")
        with service.unit_of_work(wait=False) as unit:
            created = service.handle(self._create_command(1), unit=unit)
        assert [r.order_id for r in unit.committed] == [created.order_id]
        assert store.get(created.order_id) is not None
