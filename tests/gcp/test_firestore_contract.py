"""The store, outbox and unit-of-work contract suites against the Firestore emulator."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from orders_core.application import OrderStore, Outbox
from orders_core.domain import DomainEvent
from orders_core.testing.contract import OutboxContract, StoreContract
from orders_core.testing.unit_of_work import UnitOfWorkContract
from orders_gcp.firestore import FirestoreStore
from tests.gcp.conftest import RUN

_prefixes = itertools.count()


class _OnEmulator:
    """Each store gets collections of its own in the one emulator (a fresh prefix)."""

    client: Any = None

    @pytest.fixture(autouse=True)
    def _client(self, firestore_client: Any) -> None:
        self.client = firestore_client

    def _store(self) -> FirestoreStore:
        return FirestoreStore(self.client, prefix=f"t{RUN}-{next(_prefixes)}-")


class TestFirestoreStore(_OnEmulator, StoreContract):
    def make_store(self, tmp_path: Path) -> OrderStore:
        return self._store()

    def committed_events(self, store: OrderStore, order_id: str) -> list[DomainEvent]:
        assert isinstance(store, FirestoreStore)
        return store.events_for(order_id)


class TestFirestoreOutbox(_OnEmulator, OutboxContract):
    def make_outbox(self, tmp_path: Path) -> tuple[OrderStore, Outbox]:
        store = self._store()
        return store, store


class TestFirestoreUnitOfWork(_OnEmulator, UnitOfWorkContract):
    """Firestore commits each change at once (groups_commits is False)."""

    def make_store(self, tmp_path: Path) -> OrderStore:
        return self._store()
