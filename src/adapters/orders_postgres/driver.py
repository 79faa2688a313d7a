"""Where psycopg meets the core: connections, and every driver error translated, here only.

:meth:`Database.run` runs one operation on a pooled connection and is the one place a
psycopg error becomes a core error (eventsourcing's ``SQLiteTransaction.__exit__`` does the
same for its recorders):

* ``apply_change``'s own SQLSTATEs become :class:`~orders_core.errors.DuplicateRequest` and
  :class:`~orders_core.errors.ConcurrencyConflict`: nothing was written.
* A serialization failure or a deadlock means PostgreSQL rolled the whole statement back:
  it is run again (a few times, after a short jittered pause), reads and writes alike.
* A lost connection is run again on another connection only for a read. For a write the
  outcome is unknown (the commit may have happened before the connection went), so it is
  :class:`~orders_core.errors.StoreUnavailable` (503 with Retry-After) and the caller
  decides; an ``Idempotency-Key`` makes its retry safe.
* No connection free in time, a server shutting down or starting, a statement or lock
  timeout, a read-only server (a failed-over primary) are ``StoreUnavailable`` too.

Anything else is a bug and propagates as it is.
"""

from __future__ import annotations

import logging
import random
import select
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import psycopg
import psycopg_pool
from psycopg import errors as pg_errors
from psycopg.conninfo import make_conninfo

from orders_core.errors import ConcurrencyConflict, DuplicateRequest, StoreUnavailable
from orders_postgres.schema import DUPLICATE_REQUEST, VERSION_CONFLICT

log = logging.getLogger("orders_postgres")

T = TypeVar("T")
Connection = psycopg.Connection[tuple[Any, ...]]

ATTEMPTS: Final = 3
"""Tries of one operation that PostgreSQL rolled back (or, for a read, lost a connection)."""
STATEMENT_TIMEOUT_MS: Final = 10_000
"""No statement runs longer: a stuck one frees its connection and answers 503."""
LOCK_TIMEOUT_MS: Final = 5_000
"""No statement waits longer for a lock another session holds."""
CONNECT_TIMEOUT: Final = 5
"""Seconds a connect may take: a server whose address drops packets fails in that time,
not the kernel's (minutes)."""
RECONNECT_TIMEOUT: Final = 2.0
"""Seconds the pool keeps retrying one failed connect before it gives that slot up."""
KEEPALIVES: Final[Mapping[str, int]] = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}
"""TCP keepalives, so a connection to a vanished server (a failover, a dropped route) is
noticed in about a minute rather than when the kernel gives up (hours)."""
PREPARE_THRESHOLD: Final = 5
"""Runs of a statement on one connection after which psycopg prepares it on the server
(psycopg's default), when :class:`Database` is told it may prepare."""

_ROLLED_BACK: Final = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected
_UNAVAILABLE: Final = (
    psycopg.OperationalError,  # connection lost, admin shutdown, cannot connect now,
    # statement or lock timeout (57014, 55P03), disk full, too many connections
    psycopg.InterfaceError,  # a connection closed under us
    pg_errors.ReadOnlySqlTransaction,  # connected to a standby: the primary moved
)


def _lost_connection(exc: BaseException, conn: Connection | None) -> bool:
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError) and (
        conn is None or conn.closed or conn.broken
    )


def probe(conn: Connection) -> None:
    """The pool's check on every checkout, without a round trip: an idle connection that
    has something to read has been told it is terminated (a server restart, an
    administrator), as pool connections LISTEN to nothing. It is closed, then refused: the
    pool discards a closed connection and opens another (one merely refused, it keeps)."""
    if not (conn.closed or conn.broken):
        readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
        if not readable:
            return
    conn.close()
    raise psycopg.OperationalError("the server closed this idle connection")


def _configure(conn: Connection) -> None:
    conn.execute(
        f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}; SET lock_timeout = {LOCK_TIMEOUT_MS}"
    )


def storable(text: str) -> bool:
    """Whether PostgreSQL ``text`` can hold ``text``: no NUL, valid UTF-8. A value that
    cannot be stored cannot match a stored one either (an order id in a URL's path)."""
    if text.isascii():
        return "\x00" not in text
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return "\x00" not in text


class Database:
    """A psycopg pool, and the one place its errors are translated (:meth:`run`)."""

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 2,
        max_size: int = 16,
        timeout: float = 5.0,
        name: str = "orders-core",
        prepare: bool = True,
    ) -> None:
        """``prepare``: let psycopg prepare a statement on the server after its fifth run
        on a connection (measured: a single-row read about a quarter faster). Never
        behind a transaction pooler (PgBouncer's transaction mode, RDS Proxy, Azure's
        built-in PgBouncer): the next run lands on a server session that lacks the
        statement, or has another client's under the same name. False: none is prepared."""
        if not 0 < min_size <= max_size:
            raise ValueError(f"pool sizes must be 0 < min <= max, not {min_size}..{max_size}")
        self.url = url
        self.min_size = min_size
        self.max_size = max_size
        self.prepare_threshold = PREPARE_THRESHOLD if prepare else None
        self.pool: psycopg_pool.ConnectionPool[Connection] = psycopg_pool.ConnectionPool(
            url,
            kwargs={
                "autocommit": True,
                "connect_timeout": CONNECT_TIMEOUT,
                "prepare_threshold": self.prepare_threshold,
                **KEEPALIVES,
            },
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            # psycopg_pool retries a failed connect with a backoff that doubles without a
            # cap: after a minute's outage its next try could be a minute away. Giving a
            # slot up after a couple of seconds instead lets the next request's demand
            # start a fresh attempt at once, so recovery follows the database's return.
            reconnect_timeout=RECONNECT_TIMEOUT,
            configure=_configure,
            check=probe,
            name=name,
            open=False,
        )

    def open(self, timeout: float = 10.0) -> None:
        """Open the pool and wait for its first connections; StoreUnavailable if none come."""
        try:
            self.pool.open(wait=True, timeout=timeout)
        except psycopg_pool.PoolTimeout as exc:
            self.pool.close()
            raise StoreUnavailable(f"no connection to the database within {timeout:g} s") from exc

    def connect(self) -> Connection:
        """A connection of its own, outside the pool (the relay's lock, LISTEN)."""
        try:
            conninfo = make_conninfo(self.url, connect_timeout=CONNECT_TIMEOUT, **KEEPALIVES)
            conn: Connection = psycopg.connect(
                conninfo, autocommit=True, prepare_threshold=self.prepare_threshold
            )
        except psycopg.Error as exc:
            raise translate(exc) from exc
        _configure(conn)
        return conn

    def close(self) -> None:
        self.pool.close()

    def run(self, operation: Callable[[Connection], T], *, read: bool) -> T:
        """``operation`` on a pooled connection, its errors translated (module docstring).

        ``read``: the operation has no effect, so it may run again after a lost connection.
        """
        for attempt in range(1, ATTEMPTS + 1):
            conn: Connection | None = None
            try:
                with self.pool.connection() as conn:
                    try:
                        return operation(conn)
                    except pg_errors.ReadOnlySqlTransaction:
                        conn.close()  # before it is returned: the pool drops a closed one
                        raise
            except psycopg_pool.PoolTimeout as exc:
                raise StoreUnavailable("no database connection became free in time") from exc
            except psycopg.Error as exc:
                retry = exc.sqlstate in _ROLLED_BACK or (read and _lost_connection(exc, conn))
                if retry and attempt < ATTEMPTS:
                    log.info("retrying a database operation after %s", type(exc).__name__)
                    time.sleep(random.uniform(0.001, 0.01) * attempt)
                    continue
                raise translate(exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover


def translate(exc: psycopg.Error) -> Exception:
    """The core error for a psycopg error (module docstring), or ``exc`` itself."""
    if exc.sqlstate == DUPLICATE_REQUEST:
        return DuplicateRequest("idempotency key already used")
    if exc.sqlstate == VERSION_CONFLICT:
        return ConcurrencyConflict(exc.diag.message_primary or "concurrent modification")
    if exc.sqlstate in _ROLLED_BACK or isinstance(exc, _UNAVAILABLE):
        log.warning("database unavailable: %s", type(exc).__name__)
        return StoreUnavailable("the database is unavailable")
    return exc
