"""The ``postgres`` backend factory: what it declares, what it refuses, what it prints, and
that nothing imports psycopg until it is chosen."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.postgres.support import Postgres

pytest.importorskip("psycopg")

from orders_postgres.backend import backend, describe_url
from orders_postgres.relay import ElectedOutbox
from orders_postgres.store import PostgresStore


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:hunter2@db.internal:6432/orders?sslmode=require", "db.internal:6432/orders"),  # noqa: E501
        ("postgresql://app:hunter2@db.internal/orders", "db.internal:5432/orders"),
        ("host=10.0.0.5 port=5433 dbname=shop user=app password=hunter2", "10.0.0.5:5433/shop"),
        ("postgresql:///orders?host=/var/run/postgresql", "/var/run/postgresql:5432/orders"),
    ],
)  # fmt: skip
def test_the_description_names_host_and_database_never_user_or_password(
    url: str, shown: str
) -> None:
    assert describe_url(url) == shown
    assert "hunter2" not in describe_url(url)


def test_the_backend_declares_its_outbox_relay_and_wake_ups(postgres: Postgres) -> None:
    schema = postgres.new_schema()
    built = backend(
        {"database_url": postgres.url, "database_schema": schema, "pool_min": "1", "pool_max": "3"}
    )
    try:
        assert built.name == "postgres"
        assert isinstance(built.store, PostgresStore)
        assert isinstance(built.outbox, ElectedOutbox)
        assert built.watch_commits is not None
        assert built.file is None  # no relay process opens a file: the relay is elected
        assert built.describe.endswith(f"schema {schema}, pool 1-3")
        assert postgres.url.split("@")[0].split(":")[-1] not in built.describe  # no password
    finally:
        built.close()
        postgres.drop(schema)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "needs --database-url"),
        ({"pool_min": "0"}, "pool min must be a positive integer"),
        ({"pool_max": "x"}, "pool max must be a positive integer"),
        ({"pool_min": "5", "pool_max": "2"}, "larger than pool max"),
        ({"database_schema": "Bad-Name"}, "database schema"),
        ({"database_prepare": "no"}, "database prepare must be on or off"),
    ],
)
def test_bad_settings_are_refused_before_connecting(
    postgres: Postgres, settings: dict[str, str], message: str
) -> None:
    full = {"database_url": postgres.url, **settings} if settings else {}
    with pytest.raises(ValueError, match=message):
        backend(full)


def test_nothing_imports_psycopg_until_the_postgres_store_is_chosen(tmp_path: object) -> None:
    code = (
        "import sys, json; import orders_postgres; from orders_local.cli import build_parser; "
        "from orders_local.backends import BACKENDS; build_parser().parse_args(['serve']); "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('psycopg', 'psycopg_pool', 'orders_postgres'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == ["orders_postgres"]  # the package's docstring, nothing else


def test_the_asgi_factory_builds_a_postgres_runtime_from_the_environment(
    postgres: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = postgres.new_schema()
    monkeypatch.setenv("ORDERS_LOCAL_STORE", "postgres")
    monkeypatch.setenv("ORDERS_DATABASE_URL", postgres.url)
    monkeypatch.setenv("ORDERS_DATABASE_SCHEMA", schema)
    monkeypatch.setenv("ORDERS_LOCAL_POOL_MAX", "3")
    monkeypatch.setenv("ORDERS_LOCAL_SINK", "none")
    from orders_local import asgi_app

    app = asgi_app.factory()
    try:
        store = app.api.service.store
        assert isinstance(store, PostgresStore)
        assert (store.schema, store.database.max_size) == (schema, 3)
    finally:
        store.close()
        postgres.drop(schema)


@pytest.mark.parametrize(("prepare", "prepared"), [("on", True), ("off", False)])
def test_database_prepare_says_whether_statements_are_prepared_on_the_server(
    postgres: Postgres, prepare: str, prepared: bool
) -> None:
    from orders_postgres.backend import open_store

    schema = postgres.new_schema()
    settings = {"database_url": postgres.url, "database_schema": schema, "pool_max": "1"}
    store = open_store({**settings, "pool_min": "1", "database_prepare": prepare})
    try:
        for _ in range(7):  # past psycopg's threshold
            store.get("o-1")
        query = "SELECT count(*) FROM pg_prepared_statements"
        (count,) = store.database.run(lambda conn: conn.execute(query).fetchone(), read=True)
        assert (count > 0) is prepared
    finally:
        store.close()
        postgres.drop(schema)
