"""The store, outbox, unit-of-work and console (inspection) contract suites against a real
PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from orders_core.application import OrderStore, Outbox
from orders_core.domain import DomainEvent
from orders_core.testing.contract import InspectionContract, OutboxContract, StoreContract
from orders_core.testing.unit_of_work import UnitOfWorkContract
from tests.postgres.support import Postgres


class _OnPostgres:
    pg: Postgres

    @pytest.fixture(autouse=True)
    def _server(self, postgres: Postgres) -> None:
        self.pg = postgres

    def make_store(self, tmp_path: Path) -> OrderStore:
        return self.pg.store()

    def close_store(self, store: OrderStore) -> None:
        from orders_postgres.store import PostgresStore

        assert isinstance(store, PostgresStore)
        store.close()
        self.pg.drop(store.schema)


class TestPostgresStore(_OnPostgres, StoreContract):
    def committed_events(self, store: OrderStore, order_id: str) -> list[DomainEvent]:
        from orders_postgres.store import PostgresStore

        assert isinstance(store, PostgresStore)
        return store.events_for(order_id)


class TestPostgresUnitOfWork(_OnPostgres, UnitOfWorkContract):
    """Each change is durable when committed (groups_commits is False)."""


class TestPostgresOutbox(_OnPostgres, OutboxContract):
    def make_outbox(self, tmp_path: Path) -> tuple[OrderStore, Outbox]:
        store = self.make_store(tmp_path)
        return store, store  # type: ignore[return-value]

    def close_outbox(self, store: OrderStore, outbox: Outbox) -> None:
        self.close_store(store)


class TestElectedOutbox(_OnPostgres, OutboxContract):
    """The outbox as the elected relay sees it keeps the same contract."""

    def make_outbox(self, tmp_path: Path) -> tuple[OrderStore, Outbox]:
        from orders_postgres.relay import ElectedOutbox
        from orders_postgres.store import PostgresStore

        store = self.make_store(tmp_path)
        assert isinstance(store, PostgresStore)
        return store, ElectedOutbox(store)

    def close_outbox(self, store: OrderStore, outbox: Outbox) -> None:
        from orders_postgres.relay import ElectedOutbox

        assert isinstance(outbox, ElectedOutbox)
        outbox.close()
        self.close_store(store)


class TestPostgresInspection(_OnPostgres, InspectionContract):
    """The console's ports: OrderBrowser and OutboxInspector on the store itself."""
