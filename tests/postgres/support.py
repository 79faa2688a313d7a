"""Helpers for the PostgreSQL tests: the session's server, fresh schemas, stores on them."""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from orders_postgres.store import PostgresStore
    from orders_postgres.testing import TestServer

from tests.local.support import ServerProcess

_names = itertools.count()


@dataclass
class Postgres:
    url: str
    server: TestServer | None
    """None for a server of the caller's (ORDERS_TEST_DATABASE_URL): it cannot be restarted."""

    def restartable(self) -> TestServer:
        if self.server is None:
            pytest.skip("ORDERS_TEST_DATABASE_URL names a server these tests cannot restart")
        return self.server

    @staticmethod
    def new_schema() -> str:
        return f"t{os.getpid()}_{next(_names)}"

    def store(self, schema: str | None = None, **pool: Any) -> PostgresStore:
        from orders_postgres.driver import Database
        from orders_postgres.store import PostgresStore

        database = Database(self.url, **pool)
        database.open()
        return PostgresStore(database, schema=schema or self.new_schema())

    def drop(self, schema: str) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    def sql(self, query: str, *params: object) -> list[tuple[object, ...]]:
        """One statement on a connection of its own (autocommit); its rows, if any."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.execute(query, params or None)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []


def serve(postgres: Postgres, schema: str, *args: str) -> ServerProcess:
    """``orders-local serve --store postgres`` on ``schema``, the URL in its environment."""
    env = {"ORDERS_DATABASE_URL": postgres.url, "ORDERS_DATABASE_SCHEMA": schema}
    return ServerProcess("--store", "postgres", *args, env=env)


def password(postgres: Postgres) -> str:
    """The test server's password: no output may contain it."""
    from psycopg.conninfo import conninfo_to_dict

    return str(conninfo_to_dict(postgres.url)["password"])


def stop(server: ServerProcess, postgres: Postgres) -> str:
    """SIGTERM: it must exit 0, and its stderr must not hold the password."""
    code, err = server.stop()
    assert code == 0, err
    assert password(postgres) not in err
    return err


def events_in(path: Path) -> list[str]:
    """The event ids a file sink holds."""
    if not path.exists():
        return []
    return [json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()]


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def child_env(postgres: Postgres, schema: str) -> dict[str, str]:
    """This process's environment with the server's URL and ``schema``, for a child."""
    return {**os.environ, "ORDERS_DATABASE_URL": postgres.url, "ORDERS_DATABASE_SCHEMA": schema}
