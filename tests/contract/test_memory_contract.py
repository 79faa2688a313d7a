"""The contract suites against the in-memory adapter: the reference every other store matches."""

from pathlib import Path

from orders_core.application import OrderStore, Outbox
from orders_core.testing import InMemoryStore
from orders_core.testing.contract import InspectionContract, OutboxContract, StoreContract
from orders_core.testing.unit_of_work import UnitOfWorkContract


class TestInMemoryStore(StoreContract):
    def make_store(self, tmp_path: Path) -> OrderStore:
        return InMemoryStore()


class TestInMemoryOutbox(OutboxContract):
    def make_outbox(self, tmp_path: Path) -> tuple[OrderStore, Outbox]:
        store = InMemoryStore()
        return store, store


class TestInMemoryUnitOfWork(UnitOfWorkContract):
    def make_store(self, tmp_path: Path) -> OrderStore:
        return InMemoryStore()


class TestInMemoryInspection(InspectionContract):
    def make_store(self, tmp_path: Path) -> InMemoryStore:
        return InMemoryStore()
