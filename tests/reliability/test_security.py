"""Error answers never carry stack traces, SQL, file paths or table names."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from orders_core.application import OrderService
from orders_core.edges.http import HttpApi, HttpRequest
from orders_local.sqlite import SQLiteStore

LEAKS = re.compile(
    r"Traceback|SELECT|INSERT|UPDATE |sqlite|\.db\b|/tmp/|apply_change|"
    r"outbox|idempotency table|File \"",
    re.IGNORECASE,
)
SEED = b'{"items":[{"id":"sku-1","qty":2}]}'


def answers(api: HttpApi) -> list[tuple[int, str]]:
    requests = [
        HttpRequest("POST", "/orders", {"content-type": "application/json"}, body=SEED),
        HttpRequest("GET", "/orders/x"),
        HttpRequest("GET", "/orders", query={"customerId": "c", "cursor": "AAAA.BBBB"}),
        HttpRequest("POST", "/orders/x/confirm", {"if-match": '"1"'}),
    ]
    return [(r.status, r.body.decode()) for r in map(api.handle, requests)]


def test_a_closed_database_answers_503_without_internals(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "secret-name.db")
    store.close()
    for status, body in answers(HttpApi(OrderService(store))):
        assert status in (400, 404, 503), body
        assert not LEAKS.search(body), body
        assert "secret-name" not in body


def test_a_corrupt_database_answers_without_internals(tmp_path: Path) -> None:
    path = tmp_path / "secret-name.db"
    store = SQLiteStore(path)
    store.close()
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(sqlite3.DatabaseError):
        SQLiteStore(path)


def test_dynamodb_errors_do_not_name_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto import mock_aws

    from orders_aws.clients import make_client
    from orders_aws.dynamodb import DynamoDBStore
    from tests.aws.support import set_fake_env

    set_fake_env(monkeypatch)
    with mock_aws():
        store = DynamoDBStore("table-that-is-not-there", make_client())
        for status, body in answers(HttpApi(OrderService(store))):
            assert status in (400, 503), body
            assert "table-that-is-not-there" not in body
            assert not LEAKS.search(body), body
            if status == 503:
                assert json.loads(body)["type"].endswith("store-unavailable")
