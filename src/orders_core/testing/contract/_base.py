"""What the store contract's parts share: the adapter's hooks, fixtures and helpers."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pytest

from orders_core.application import (
    ANONYMOUS,
    Change,
    IdempotencyRecord,
    OrderService,
    OrderStore,
    Outbox,
    Principal,
    event_for,
)
from orders_core.domain import DomainEvent, LineItem, Order
from orders_core.edges.http import HttpApi, HttpRequest, HttpResponse
from orders_core.testing.clock import FakeClock

T = TypeVar("T")

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
CREATE_BODY = b'{"items":[{"id":"sku-1","qty":2}],"customerId":"cust-1"}'
RACERS = 16
ALICE = Principal.jwt("https://issuer.test/", "alice")
BOB = Principal.jwt("https://issuer.test/", "bob")
ADMIN = Principal.jwt("https://issuer.test/", "root", admin=True)
QUEUE = Principal.service("arn:aws:sqs:us-east-1:111122223333:orders-commands")


def run_concurrently(n: int, fn: Callable[[int], T]) -> list[T | BaseException]:
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


class ContractBase(ABC):
    """The hooks, fixtures and helpers every part of the store contract shares."""

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
        return Change(order, 0, (event_for(order),), record)

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
