"""A real PostgreSQL for the whole test session, and fresh schemas in it.

The server is started here: the system's binaries where they exist, else the ``pgserver``
wheel's (``ORDERS_TEST_POSTGRES=pgserver`` forces those). ``ORDERS_TEST_DATABASE_URL``
points the tests at a server of your own instead (the cases that restart the server are
then skipped). Without either the tests skip, saying why.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.postgres.support import Postgres


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    pytest.importorskip("psycopg", reason="needs the postgres extra (psycopg, psycopg_pool)")
    from orders_postgres.testing import TestServer, Unavailable, binaries

    external = os.environ.get("ORDERS_TEST_DATABASE_URL")
    if external:
        yield Postgres(external, None)
        return
    try:
        server = TestServer(bin=binaries(os.environ.get("ORDERS_TEST_POSTGRES", ""))).start()
    except (Unavailable, OSError) as exc:
        pytest.skip(f"no PostgreSQL could be started here: {exc}")
    try:
        yield Postgres(server.url, server)
    finally:
        server.destroy()
