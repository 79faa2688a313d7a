"""Helpers for the PostgreSQL tests: the session's server, fresh schemas, stores on them."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from orders_postgres.store import PostgresStore
    from orders_postgres.testing import TestServer

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

    def store(self, schema: str | None = None, **pool: int) -> PostgresStore:
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
