"""The contract suite against DynamoDB: moto in-process, moto as a server on 127.0.0.1, and
AWS's DynamoDB Local (a JVM, no Docker; skipped without Java)."""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from orders_aws.clients import make_client
from orders_aws.dynamodb import DynamoDBStore
from orders_core.application import (
    ANONYMOUS,
    CONFIRM,
    CREATE,
    Change,
    Command,
    IdempotencyRecord,
    OrderService,
    OrderStore,
    derived_order_id,
    event_for,
    http_key,
    scoped_key,
)
from orders_core.domain import DomainEvent, OrderStatus
from orders_core.errors import DuplicateRequest, IdempotencyKeyReused
from orders_core.testing.clock import FakeClock
from orders_core.testing.contract import StoreContract
from orders_core.testing.contract._base import CREATE_BODY
from orders_core.testing.unit_of_work import UnitOfWorkContract
from tests.aws.support import new_table, set_fake_env, stream_events

_names = itertools.count()
SKEWS = [timedelta(seconds=2), timedelta(minutes=19)]
SKEW_IDS = ["2s-apart", "19min-apart"]
"""Clocks apart: DynamoDB accepts a signature from 5 minutes late to 15 early."""


@contextlib.contextmanager
def counted_calls(store: DynamoDBStore) -> Iterator[list[str]]:
    """The names of the client calls the store makes inside the block."""
    calls: list[str] = []
    client = store.client

    class Counting:
        def __getattr__(self, name: str) -> Any:
            calls.append(name)
            return getattr(client, name)

    store.client = Counting()  # type: ignore[assignment]
    try:
        yield calls
    finally:
        store.client = client


class _DynamoContract(StoreContract):
    endpoint: str | None = None
    single_writes_return_refused_items = True
    """The engine answers a refused PutItem or UpdateItem with the item in its way when
    asked (ReturnValuesOnConditionCheckFailure, added to them in 2023): DynamoDB and moto
    do, the DynamoDB Local build the matrix runs does not, and the store then reads what it
    needs. A cancelled transaction's reasons carry it on every engine here."""

    def make_store(self, tmp_path: Path) -> OrderStore:
        client = make_client(endpoint_url=self.endpoint)
        table = new_table(client, f"orders-{next(_names)}")
        return DynamoDBStore(table, client)

    def committed_events(self, store: OrderStore, order_id: str) -> list[DomainEvent]:
        assert isinstance(store, DynamoDBStore)
        streams = boto3.client("dynamodbstreams", endpoint_url=self.endpoint)
        return stream_events(store.client, streams, store.table, order_id)

    # -- the key's slots (orders_aws.dynamodb), beyond the shared contract ---------------

    def test_a_keyed_confirms_record_item_is_no_order_anywhere(
        self, service: OrderService, store: OrderStore
    ) -> None:
        """The record of a keyed confirm sits at the key's slot, an order key: reading
        that id finds no order, and the customer's listing and the stream show none."""
        assert isinstance(store, DynamoDBStore)
        created = service.handle(Command(CREATE, "t", "c", json.loads(CREATE_BODY)))
        service.handle(
            Command(CONFIRM, "t", "y", {"orderId": created.order_id}),
            idempotency_key=http_key("k"),
        )
        key = scoped_key(ANONYMOUS, http_key("k"))
        slot = derived_order_id(key, 0)
        raw = store.client.get_item(TableName=store.table, Key=store.items.order_key(slot))
        assert raw["Item"]["idemOrderId"]["S"] == created.order_id  # the record is there
        assert raw["Item"]["ttl"]["N"].isdigit()  # TTL deletes it once expired
        assert store.get(slot) is None
        assert [o.order_id for o in store.list_by_customer("cust-1").orders] == [created.order_id]
        assert self.committed_events(store, slot) == []

    def test_a_record_item_deleted_by_ttl_leaves_no_hole(
        self, service: OrderService, store: OrderStore, clock: FakeClock
    ) -> None:
        """A key's generations: an order (slot 0), then a confirm's record item (slot 1),
        which TTL deletes some time after it expired. The key, reused by a create, takes
        slot 1 again, and a duplicate of that create replays it instead of making a third
        order."""
        assert isinstance(store, DynamoDBStore)
        key = http_key("ttl")
        create = Command(CREATE, "t", "x", json.loads(CREATE_BODY))
        made = service.handle(create, idempotency_key=key)
        clock.advance(timedelta(hours=25))
        confirm = Command(CONFIRM, "t", "y", {"orderId": made.order_id})
        assert service.handle(confirm, idempotency_key=key).status == 200
        slot = store.items.order_key(derived_order_id(scoped_key(ANONYMOUS, key), 1))
        assert "ttl" in store.client.get_item(TableName=store.table, Key=slot)["Item"]
        clock.advance(timedelta(hours=25))
        store.client.delete_item(TableName=store.table, Key=slot)  # what TTL does, later
        fresh = service.handle(create, idempotency_key=key)
        again = service.handle(create, idempotency_key=key)
        assert (fresh.status, again.replayed, again.body) == (201, True, fresh.body)
        assert len(store.list_by_customer("cust-1").orders) == 2

    def test_a_key_reused_many_times_is_found_in_a_few_round_trips(
        self, service: OrderService, store: OrderStore, clock: FakeClock
    ) -> None:
        """A client that sends one Idempotency-Key every day leaves an order per day at the
        key's slots; reading the key must not walk them all (it did: one GetItem each)."""
        assert isinstance(store, DynamoDBStore)
        key = http_key("every-day")
        create = Command(CREATE, "t", "x", json.loads(CREATE_BODY))
        made = []
        for _ in range(20):
            made.append(service.handle(create, idempotency_key=key))
            clock.advance(timedelta(hours=25))
        assert len({m.order_id for m in made}) == 20
        with counted_calls(store) as calls:
            record = store.get_idempotency(scoped_key(ANONYMOUS, key))
        assert record is not None
        assert (record.order_id, record.generation) == (made[-1].order_id, 19)
        assert len(calls) <= 10, calls  # 1 + 2 x log2(20) at most; it was 19

    def test_a_duplicate_keyed_create_is_answered_from_its_refusal(
        self, service: OrderService, store: OrderStore
    ) -> None:
        """At-least-once delivery sends copies. A copy's write is refused by the order its
        first delivery made, and the refusal carries that order's record: replayed in one
        call, where it took three (the write, "did an earlier attempt of ours land", the
        key's read)."""
        assert isinstance(store, DynamoDBStore)
        key = http_key("copy")
        create = Command(CREATE, "t", "x", json.loads(CREATE_BODY))
        first = service.handle(create, idempotency_key=key)
        with counted_calls(store) as calls:
            again = service.handle(create, idempotency_key=key)
        assert (again.replayed, again.order_id, again.body) == (True, first.order_id, first.body)
        if self.single_writes_return_refused_items:
            assert calls == ["put_item"]
        else:  # the same answer, read
            assert calls[0] == "put_item", calls
            assert "batch_get_item" in calls, calls
        assert len(store.list_by_customer("cust-1").orders) == 1

    @staticmethod
    def _instances(
        store: OrderStore, skew: timedelta
    ) -> tuple[OrderService, FakeClock, OrderService, FakeClock]:
        """Two service instances on one table, one clock ``skew`` ahead of the other's."""
        start = datetime(2026, 6, 1, tzinfo=UTC)
        behind, ahead = FakeClock(start), FakeClock(start + skew)
        return OrderService(store, clock=behind), behind, OrderService(store, clock=ahead), ahead

    @pytest.mark.parametrize("skew", SKEWS, ids=SKEW_IDS)
    def test_a_retry_on_a_lagging_instance_replays_the_keys_latest_generation(
        self, store: OrderStore, skew: timedelta
    ) -> None:
        """A record that expires on one instance's clock a moment before another's: the
        first moves the key on a generation, and a retry on the second must replay that new
        order, not the old one its refusal found at the key's first slot (found by
        helper-33's review with 2 s, and by helper-34's with 12 minutes, which DynamoDB's
        signature window allows: the refusal's record was trusted with minutes to live)."""
        behind, behind_clock, ahead, ahead_clock = self._instances(store, skew)
        key = http_key("daily")
        create = Command(CREATE, "t", "x", json.loads(CREATE_BODY))
        first = behind.handle(create, idempotency_key=key)
        for clock in (behind_clock, ahead_clock):
            clock.advance(timedelta(hours=24) - skew * 0.6)  # 0.6 x skew left, behind
        second = ahead.handle(create, idempotency_key=key)  # expired on this clock
        assert (second.status, second.replayed) == (201, False)
        assert second.order_id != first.order_id
        retry = behind.handle(create, idempotency_key=key)  # its answer was lost
        assert (retry.replayed, retry.order_id, retry.body) == (True, second.order_id, second.body)

    @pytest.mark.parametrize("skew", SKEWS, ids=SKEW_IDS)
    def test_a_retry_of_a_successful_reuse_on_a_lagging_instance_is_no_422(
        self, store: OrderStore, skew: timedelta
    ) -> None:
        """The same with another body under the reused key: the retry replays it, where
        trusting the old record from the refusal answered 422 to a request that worked."""
        behind, behind_clock, ahead, ahead_clock = self._instances(store, skew)
        key = http_key("reused-daily")
        body = json.loads(CREATE_BODY)
        behind.handle(Command(CREATE, "t", "x", body), idempotency_key=key)
        for clock in (behind_clock, ahead_clock):
            clock.advance(timedelta(hours=24) - skew * 0.6)  # 0.6 x skew left, behind
        other = Command(CREATE, "t", "y", {**body, "items": [{"sku": "sku-9", "quantity": 9}]})
        made = ahead.handle(other, idempotency_key=key)
        retry = behind.handle(other, idempotency_key=key)
        assert (retry.replayed, retry.order_id, retry.body) == (True, made.order_id, made.body)

    def test_a_keys_reuse_for_another_create_is_refused_from_its_refusal(
        self, service: OrderService, store: OrderStore
    ) -> None:
        """The same key with another body: 422 from the record the refusal carried, and
        the first order is untouched."""
        assert isinstance(store, DynamoDBStore)
        key = http_key("reused")
        body = json.loads(CREATE_BODY)
        first = service.handle(Command(CREATE, "t", "x", body), idempotency_key=key)
        other = {**body, "items": [{"sku": "sku-9", "quantity": 9}]}
        with counted_calls(store) as calls, pytest.raises(IdempotencyKeyReused):
            service.handle(Command(CREATE, "t", "y", other), idempotency_key=key)
        if self.single_writes_return_refused_items:
            assert calls == ["put_item"]
        assert store.get(first.order_id) is not None
        assert len(store.list_by_customer("cust-1").orders) == 1

    def test_a_keyed_changes_refused_record_carries_the_record_in_its_way(
        self, store: OrderStore, clock: FakeClock
    ) -> None:
        """A keyed change whose key's slot holds a live record (another change got there
        first) is refused in its transaction; the refusal names that record, so a service
        can replay it without reading, and writes nothing."""
        assert isinstance(store, DynamoDBStore)
        orders = [self._order(clock, f"o-{n}") for n in (1, 2)]
        for order in orders:
            store.commit(self._create(order), now=clock())
        confirmed = [o.transition(OrderStatus.CONFIRMED, clock()) for o in orders]
        changes = [
            Change(
                order,
                1,
                (event_for(order),),
                IdempotencyRecord(
                    key="k-change",
                    fingerprint=letter * 64,
                    status=200,
                    body=order.to_json(),
                    order_id=order.order_id,
                    version=2,
                    expires_at=clock() + timedelta(hours=24),
                ),
            )
            for order, letter in zip(confirmed, "ab", strict=True)
        ]
        store.commit(changes[0], now=clock())
        with pytest.raises(DuplicateRequest) as refused:
            store.commit(changes[1], now=clock())
        assert refused.value.record == changes[0].idempotency
        unchanged = store.get("o-2")
        assert unchanged is not None
        assert unchanged.version == 1


class AtomicCalls:
    """Makes each client call atomic, as every DynamoDB API call is.

    moto's in-process backend evaluates a ConditionExpression and applies the write without
    a lock, so two threads racing the same conditional put can both "win" (seen here: two
    200s out of 16 concurrent confirms with one ETag). Real DynamoDB applies each call
    atomically; this wrapper restores that, and nothing more: calls from different threads
    still interleave between calls, which is where our races live. (tests/aws/motoserver.py
    does the same for moto's server.)
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attr(*args, **kwargs)

        return call


class _InMoto:
    """Every test of the class inside moto's in-process AWS."""

    @pytest.fixture(autouse=True)
    def _moto(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
        from moto import mock_aws

        set_fake_env(monkeypatch)
        with mock_aws():
            yield


class TestDynamoDBMoto(_InMoto, _DynamoContract):
    def make_store(self, tmp_path: Path) -> OrderStore:
        client = make_client()
        table = new_table(client, f"orders-{next(_names)}")
        return DynamoDBStore(table, AtomicCalls(client))  # type: ignore[arg-type]


class TestDynamoDBMotoClockAhead(TestDynamoDBMoto):
    """The whole contract with the service's clock a month ahead of this machine's: the
    store must judge nothing by its own clock (a walk that did stopped at a record the
    service saw as expired, and a duplicate create made a second order)."""

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock(datetime.now(UTC) + timedelta(days=30))


class TestDynamoDBMotoUnitOfWork(_InMoto, UnitOfWorkContract):
    """DynamoDB commits each change at once (groups_commits is False)."""

    def make_store(self, tmp_path: Path) -> OrderStore:
        client = make_client()
        return DynamoDBStore(new_table(client, f"orders-{next(_names)}"), client)


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    from tests.aws.motoserver import MotoServer

    server = MotoServer().start()
    try:
        yield server.endpoint
    finally:
        server.stop()


class TestDynamoDBMotoServer(_DynamoContract):
    @pytest.fixture(autouse=True)
    def _server(self, moto_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
        set_fake_env(monkeypatch)
        self.endpoint = moto_server


class TestDynamoDBLocal(_DynamoContract):
    """AWS's own engine: conditions and transactions applied atomically, no AtomicCalls."""

    single_writes_return_refused_items = False  # 1.11.478: accepted, nothing returned

    @pytest.fixture(autouse=True)
    def _engine(self, dynamodb_local: str, monkeypatch: pytest.MonkeyPatch) -> None:
        set_fake_env(monkeypatch)
        self.endpoint = dynamodb_local
