"""The contract suite against DynamoDB: moto in-process, moto as a server on 127.0.0.1, and
AWS's DynamoDB Local (a JVM, no Docker; skipped without Java)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from orders_aws.clients import make_client
from orders_aws.dynamodb import DynamoDBStore
from orders_core.application import OrderStore
from orders_core.domain import DomainEvent
from orders_core.testing.contract import StoreContract
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
