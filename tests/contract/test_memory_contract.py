"""The contract suite against the in-memory adapter: the reference every other store matches."""

from pathlib import Path

from orders_core.ports import OrderStore
from orders_core.testing import InMemoryStore
from orders_core.testing.contract import StoreContract
from orders_core.testing.unit_of_work import UnitOfWorkContract


class TestInMemoryStore(StoreContract):
    def make_store(self, tmp_path: Path) -> OrderStore:
        return InMemoryStore()


class TestInMemoryUnitOfWork(UnitOfWorkContract):
    def make_store(self, tmp_path: Path) -> OrderStore:
        return InMemoryStore()
