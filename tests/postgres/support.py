"""Helpers for the PostgreSQL tests: the session's server, fresh schemas, stores on them."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


@contextmanager
def pgbouncer(postgres: Postgres) -> Iterator[str]:
    """A PgBouncer in transaction pooling mode in front of the server, with 2 server
    connections; its URL. Skips where no ``pgbouncer`` binary exists (Debian's package)."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    binary = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
    if binary is None:
        pytest.skip("no pgbouncer binary here (Debian: apt-get install pgbouncer)")
    parts = conninfo_to_dict(postgres.url)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    root = Path(tempfile.mkdtemp(prefix="orders-pgbouncer-"))
    root.chmod(0o755)  # readable by "nobody", whom pgbouncer becomes when run as root
    (root / "users.txt").write_text(f'"{parts["user"]}" "{parts["password"]}"\n')
    (root / "pgbouncer.ini").write_text(
        f"[databases]\n{parts['dbname']} = host={parts.get('host', '127.0.0.1')}"
        f" port={parts['port']} dbname={parts['dbname']}\n"
        f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = plain\nauth_file = {root / 'users.txt'}\npool_mode = transaction\n"
        "default_pool_size = 2\nmax_client_conn = 100\n"
        "ignore_startup_parameters = extra_float_digits,options\n"
    )
    for child in root.iterdir():
        child.chmod(0o644)
    as_user = ["-u", "nobody"] if os.geteuid() == 0 else []  # it refuses to run as root
    process = subprocess.Popen(
        [binary, "-q", *as_user, str(root / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"postgresql://{parts['user']}:{parts['password']}@127.0.0.1:{port}/{parts['dbname']}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                psycopg.connect(url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                assert process.poll() is None, "pgbouncer exited"
                assert time.monotonic() < deadline, "pgbouncer did not start"
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(root, ignore_errors=True)
