"""The store, outbox and unit-of-work contract suites against a real SQLite file."""

from pathlib import Path

from orders_core.application import OrderStore, Outbox
from orders_core.domain import DomainEvent
from orders_core.testing.contract import InspectionContract, OutboxContract, StoreContract
from orders_core.testing.unit_of_work import UnitOfWorkContract
from orders_local.sqlite import SQLiteStore


class TestSQLiteStore(StoreContract):
    def make_store(self, tmp_path: Path) -> OrderStore:
        return SQLiteStore(tmp_path / "orders.db")

    def close_store(self, store: OrderStore) -> None:
        assert isinstance(store, SQLiteStore)
        store.close()

    def committed_events(self, store: OrderStore, order_id: str) -> list[DomainEvent]:
        assert isinstance(store, SQLiteStore)
        return store.events_for(order_id)


class TestSQLiteOutbox(OutboxContract):
    def make_outbox(self, tmp_path: Path) -> tuple[OrderStore, Outbox]:
        store = SQLiteStore(tmp_path / "orders.db")
        return store, store

    def close_outbox(self, store: OrderStore, outbox: Outbox) -> None:
        assert isinstance(store, SQLiteStore)
        store.close()


class TestSQLiteUnitOfWork(UnitOfWorkContract):
    def make_store(self, tmp_path: Path) -> OrderStore:
        return SQLiteStore(tmp_path / "orders.db")

    def close_store(self, store: OrderStore) -> None:
        assert isinstance(store, SQLiteStore)
        store.close()


class TestSQLiteInspection(InspectionContract):
    def make_store(self, tmp_path: Path) -> SQLiteStore:
        return SQLiteStore(tmp_path / "orders.db")

    def close_store(self, store: SQLiteStore) -> None:
        store.close()
