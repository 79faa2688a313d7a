"""The contract suite against the in-memory adapter: the reference every other store matches."""

from pathlib import Path

from orders_core.ports import OrderStore
from orders_core.testing import InMemoryStore
from orders_core.testing.contract import StoreContract


class TestInMemoryStore(StoreContract):
    def make_store(self, tmp_path: Path) -> OrderStore:
        return InMemoryStore()
