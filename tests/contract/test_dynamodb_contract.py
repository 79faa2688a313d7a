"""The contract suite against DynamoDB: moto in-process, moto as a server on 127.0.0.1, and
AWS's DynamoDB Local (a JVM, no Docker; skipped without Java)."""

from __future__ import annotations

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
    Command,
    OrderService,
    OrderStore,
    derived_order_id,
    http_key,
    scoped_key,
)
from orders_core.domain import DomainEvent
from orders_core.errors import IdempotencyKeyReused
from orders_core.testing.contract import StoreContract
from orders_core.testing.contract._base import CREATE_BODY
from orders_core.testing.unit_of_work import UnitOfWorkContract
from tests.aws.support import new_table, set_fake_env, stream_events

_names = itertools.count()


class _DynamoContract(StoreContract):
    endpoint: str | None = None

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
        that id finds no order, the customer's listing and the stream show none, and no
        item outside the slot was written for the key."""
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
        assert "ttl" not in raw["Item"]  # and stays: the walk over generations needs it
        assert store.get(slot) is None
        assert [o.order_id for o in store.list_by_customer("cust-1").orders] == [created.order_id]
        assert self.committed_events(store, slot) == []
        legacy = store.items.key(f"IDEMPOTENCY#{key}", "IDEMPOTENCY")
        assert "Item" not in store.client.get_item(TableName=store.table, Key=legacy)

    def test_a_live_record_kept_the_old_way_is_honoured_then_ignored(
        self, service: OrderService, store: OrderStore
    ) -> None:
        """Tables written before slots hold ``IDEMPOTENCY#`` items for up to one TTL: while
        live they answer a read (a keyed confirm under the key is refused); once expired
        they are as good as absent."""
        assert isinstance(store, DynamoDBStore)
        created = service.handle(Command(CREATE, "t", "c", json.loads(CREATE_BODY)))
        key = scoped_key(ANONYMOUS, http_key("old"))

        def put_legacy(expires: datetime) -> None:
            store.client.put_item(
                TableName=store.table,
                Item={
                    **store.items.key(f"IDEMPOTENCY#{key}", "IDEMPOTENCY"),
                    "fingerprint": {"S": "0" * 64},
                    "status": {"N": "200"},
                    "response": {"B": b"{}"},
                    "orderId": {"S": created.order_id},
                    "orderVersion": {"N": "2"},
                    "expiresUs": {"N": str(int(expires.timestamp() * 1_000_000))},
                    "generation": {"N": "0"},
                    "ttl": {"N": str(int(expires.timestamp()))},
                },
            )

        put_legacy(datetime.now(UTC) + timedelta(hours=1))
        record = store.get_idempotency(key)
        assert record is not None
        assert (record.order_id, record.fingerprint) == (created.order_id, "0" * 64)
        confirm = Command(CONFIRM, "t", "y", {"orderId": created.order_id})
        with pytest.raises(IdempotencyKeyReused):
            service.handle(confirm, idempotency_key=http_key("old"))
        put_legacy(datetime.now(UTC) - timedelta(seconds=1))
        assert store.get_idempotency(key) is None
        assert service.handle(confirm, idempotency_key=http_key("old")).status == 200


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

    @pytest.fixture(autouse=True)
    def _engine(self, dynamodb_local: str, monkeypatch: pytest.MonkeyPatch) -> None:
        set_fake_env(monkeypatch)
        self.endpoint = dynamodb_local
