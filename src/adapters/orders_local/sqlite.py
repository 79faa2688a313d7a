"""The core's store on a SQLite file: orders, outbox and idempotency records in one database.

Why it is safe with many threads and several processes on one file:

* WAL mode: readers never block the writer and vice versa.
* Every commit runs in ``BEGIN IMMEDIATE``: it takes the write lock *before* it reads the
  version and the idempotency record it checks, so check-then-write cannot interleave with
  another writer, in this process or another. ``busy_timeout`` makes a second writer wait
  for the lock rather than fail.
* ``synchronous=NORMAL`` by default: in WAL mode a commit survives a process crash (SIGKILL);
  only an OS crash or power loss can lose the last transactions, answered 201 or not. That
  is the local runtime's default trade-off; ``synchronous="FULL"`` fsyncs the WAL on every
  commit (group commit shares one fsync between a turn's requests) and loses none.
* Checkpoints (copying the WAL back into the database file, with its fsync) run on a
  background thread, not inside whichever commit crosses SQLite's 1,000-page mark: that
  stall set p99 at 4 connections (7.0 ms with, 4.3 ms without, bench/local_http.py). A high
  ``wal_autocheckpoint`` stays as the backstop should that thread fall behind.

Schema changes are forward migrations keyed by ``PRAGMA user_version``
(:mod:`orders_local.sqlite_schema`); a file written by a newer orders-core is refused rather
than misread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Final

from orders_core.application import (
    Backend,
    Change,
    IdempotencyRecord,
    OrderStore,
    Page,
    decode_cursor,
    encode_cursor,
)
from orders_core.domain import Order
from orders_core.errors import MalformedRequest, StoreBusy, StoreUnavailable
from orders_local.sqlite_inspect import SQLiteInspection
from orders_local.sqlite_outbox import SQLiteOutbox
from orders_local.sqlite_schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    SYNCHRONOUS_MODES,
    SchemaTooNew,
    migrate,
    synchronous_mode,
)
from orders_local.sqlite_writes import Queued, Unit, apply_change, commit_group, from_us

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SYNCHRONOUS_MODES",
    "SQLiteStore",
    "SchemaTooNew",
    "backend",
    "synchronous_mode",
]

log = logging.getLogger("orders_local.sqlite")

BUSY_TIMEOUT_MS: Final = 5_000
CHECKPOINT_INTERVAL_S: Final = 0.25
BACKSTOP_CHECKPOINT_PAGES: Final = 20_000
"""With background checkpoints, SQLite's own autocheckpoint fires only past ~80 MB of WAL."""


MAX_GROUP: Final = 64
"""Most changes one group commit carries."""


class SQLiteStore(OrderStore, SQLiteOutbox, SQLiteInspection):
    """Thread-safe; connections are pooled, one per concurrently active thread."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        background_checkpoints: bool = True,
        synchronous: str = "NORMAL",
    ) -> None:
        self.synchronous = synchronous_mode(synchronous)
        self.path = Path(path)
        self._autocheckpoint = BACKSTOP_CHECKPOINT_PAGES if background_checkpoints else 1000
        self._pool: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        # Writers in this process queue on a Python lock rather than on SQLite's busy
        # handler, which sleeps in steps of up to 100 ms and turned p99 at 16 connections
        # from ~5 ms into ~230 ms. Other processes still wait through busy_timeout.
        self._write_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[Queued] = []
        self._units = threading.local()
        self._nowait_conn: sqlite3.Connection | None = None
        self._closed = False
        with self._connection() as conn:
            self._migrate(conn)
            self._cursor_key = self._load_cursor_key(conn)
        self._stop_checkpoints = threading.Event()
        self._checkpointer: threading.Thread | None = None
        if background_checkpoints:
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="sqlite-checkpoint", daemon=True
            )
            self._checkpointer.start()

    # -- connections -------------------------------------------------------------------

    def _connect(self, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            timeout=busy_timeout_ms / 1000,
            isolation_level=None,  # we issue BEGIN ourselves
            check_same_thread=False,  # pooled: one thread at a time, never shared at once
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")  # one of SYNCHRONOUS_MODES
        conn.execute(f"PRAGMA busy_timeout={busy_timeout_ms:d}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA wal_autocheckpoint={self._autocheckpoint}")
        with self._lock:
            self._all.append(conn)
        return conn

    def _current_unit(self) -> Unit | None:
        unit: Unit | None = getattr(self._units, "current", None)
        return unit

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        unit = self._current_unit()
        if unit is not None and unit.conn is not None:
            yield unit.conn  # reads inside a unit of work see its uncommitted changes
            return
        if self._closed:
            raise StoreUnavailable("the store is closed")
        try:
            conn = self._pool.get_nowait()
        except queue.Empty:
            conn = self._connect()
        try:
            yield conn
        finally:
            self._pool.put(conn)

    @contextlib.contextmanager
    def _bookkeeping(self) -> Iterator[sqlite3.Connection]:
        """Where outbox bookkeeping writes: the thread's unit of work if one is open (the
        server marks what its relay process delivered in its turn's transaction), else a
        write transaction of its own."""
        unit = self._current_unit()
        if unit is None:
            with self._transaction() as conn:
                yield conn
            return
        conn = self._unit_connection(unit)
        try:
            yield conn
        except sqlite3.Error as exc:
            unit.failure = exc
            raise StoreUnavailable("the database is unavailable") from exc

    @contextlib.contextmanager
    def _transaction(self, *, wait: bool = True) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE under the in-process write lock; COMMIT, or ROLLBACK on error.

        ``wait=False``: StoreBusy at once if another thread holds the lock, or another
        process SQLite's (a connection with no busy timeout, used only under the lock).
        """
        if not self._write_lock.acquire(blocking=wait):
            raise StoreBusy("another thread of this process is writing")
        try:
            with self._connection() if wait else self._nowait() as conn:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as exc:
                    error = StoreUnavailable if wait else StoreBusy
                    raise error("the database is busy") from exc
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
        finally:
            self._write_lock.release()

    @contextlib.contextmanager
    def _nowait(self) -> Iterator[sqlite3.Connection]:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        if self._nowait_conn is None:
            self._nowait_conn = self._connect(busy_timeout_ms=0)
        yield self._nowait_conn

    def checkpoint(self) -> tuple[int, int]:
        """A PASSIVE checkpoint: copies what it can without waiting for readers or writers.

        Returns (frames in the WAL, frames checkpointed); (-1, -1) outside WAL mode.
        """
        with self._connection() as conn:
            _, frames, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(frames), int(done)

    def _checkpoint_loop(self) -> None:
        while not self._stop_checkpoints.wait(CHECKPOINT_INTERVAL_S):
            try:
                self.checkpoint()
            except (sqlite3.Error, StoreUnavailable) as exc:  # busy or closing: next turn
                log.debug("checkpoint skipped: %s", exc)

    def close(self) -> None:
        self._stop_checkpoints.set()
        if self._checkpointer is not None:
            self._checkpointer.join(5)
        self._closed = True
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()

    # -- schema ------------------------------------------------------------------------

    def _migrate(self, conn: sqlite3.Connection) -> None:
        migrate(conn, self.path)

    def _load_cursor_key(self, conn: sqlite3.Connection) -> bytes:
        """A per-database secret, so cursors survive restarts and are valid in every process.

        Read first: opening a file that has one (a relay process, ``orders-local events``)
        then takes no write lock.
        """
        select = "SELECT value FROM meta WHERE name = 'cursor_key'"
        row = conn.execute(select).fetchone()
        if row is None:
            conn.execute(
                "INSERT OR IGNORE INTO meta (name, value) VALUES ('cursor_key', ?)",
                (os.urandom(32),),
            )
            row = conn.execute(select).fetchone()
        return bytes(row[0])

    def schema_version(self) -> int:
        with self._connection() as conn:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])

    # -- OrderStore --------------------------------------------------------------------

    def get(self, order_id: str) -> Order | None:
        with self._connection() as conn:
            row = conn.execute(
                "SELECT body, owner FROM orders WHERE order_id = ?", (order_id,)
            ).fetchone()
        return None if row is None else Order.model_validate_json(row[0]).owned_by(row[1])

    def list_by_customer(
        self,
        customer_id: str,
        *,
        limit: int = 20,
        cursor: str | None = None,
        owner: str | None = None,
    ) -> Page:
        after_us, after_id = -1, ""
        if cursor is not None:
            position = decode_cursor(cursor, self._cursor_key)
            try:
                after_us, after_id = int(position["t"]), str(position["id"])
            except (KeyError, TypeError, ValueError):
                raise MalformedRequest("invalid pagination cursor") from None
        where = "customer_id = ? AND (created_us, order_id) > (?, ?)"
        params: tuple[object, ...] = (customer_id, after_us, after_id)
        if owner is not None:
            where, params = f"{where} AND owner = ?", (*params, owner)
        with self._connection() as conn:
            rows = conn.execute(
                f"SELECT body, owner, created_us, order_id FROM orders WHERE {where}"  # noqa: S608 - fixed text
                " ORDER BY created_us, order_id LIMIT ?",
                (*params, limit + 1),
            ).fetchall()
        orders = [Order.model_validate_json(body).owned_by(who) for body, who, _, _ in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            _, _, last_us, last_id = rows[limit - 1]
            next_cursor = encode_cursor({"t": last_us, "id": last_id}, self._cursor_key)
        return Page(orders, next_cursor)

    def get_idempotency(self, key: str) -> IdempotencyRecord | None:
        with self._connection() as conn:
            row = conn.execute(
                "SELECT key, fingerprint, status, body, order_id, version, expires_us, generation"
                " FROM idempotency WHERE key = ?",
                (key,),
            ).fetchone()
        if row is None:
            return None
        key, fp, status, body, order_id, version, expires_us, generation = row
        return IdempotencyRecord(
            key, fp, status, bytes(body), order_id, version, from_us(expires_us), generation
        )

    def commit(self, change: Change, *, now: datetime) -> None:
        """Group commit: whoever holds the write lock commits every change queued so far.

        Concurrent requests share one transaction (a refused change backs out only its own
        statement), which divides the cost of BEGIN/COMMIT and of the WAL pages written
        between them. Nobody is answered before the COMMIT that carries their change has
        returned.
        """
        unit = self._current_unit()
        if unit is not None:
            self._commit_in_unit(unit, change, now)
            return
        item = Queued.of(change, now)
        with self._queue_lock:
            self._queue.append(item)
        with self._write_lock:
            while not item.done:
                with self._queue_lock:
                    batch = self._queue[:MAX_GROUP]
                    del self._queue[:MAX_GROUP]
                commit_group(self._connection(), batch)
        if item.error is not None:
            raise item.error

    groups_commits = True
    begins_without_waiting = True

    @contextlib.contextmanager
    def unit_of_work(self, *, wait: bool = True) -> Iterator[None]:
        """Group commit for a single thread: every change this thread commits inside the block
        joins one transaction, committed when the block ends.

        ``commit`` still checks each change at once (a refused change backs out only its own
        statement and raises as usual), and reads inside the block see the block's changes.
        But nothing is durable until the block exits without an exception: the caller must
        hold every answer until then. If the final COMMIT fails, or a change failed for a
        reason other than a refusal, the block raises StoreUnavailable and none of it is
        committed. The local server runs each turn of its loop in one (docs/decisions/0006).

        ``wait=False`` begins the transaction before the block runs, or raises StoreBusy if
        another writer (thread or process) holds the file: an event loop may then run the
        unit itself and never block on a lock (orders_core.edges.lanes).
        """
        if self._current_unit() is not None:
            raise RuntimeError("units of work do not nest")
        unit = Unit()
        if not wait:
            self._unit_connection(unit, wait=False)
        self._units.current = unit
        try:
            yield
        except BaseException:
            self._units.current = None
            self._end_unit(unit, commit=False)
            raise
        self._units.current = None
        self._end_unit(unit, commit=True)

    def _unit_connection(self, unit: Unit, *, wait: bool = True) -> sqlite3.Connection:
        """The unit's connection, its transaction opened by the unit's first write (or by
        ``unit_of_work(wait=False)``, before the block)."""
        if unit.failure is not None:
            raise StoreUnavailable("the database is unavailable") from unit.failure
        if unit.conn is None:
            try:
                unit.conn = self._begin(wait=wait)
            except StoreUnavailable as exc:  # the lock stayed taken for the busy timeout:
                unit.failure = exc  # the unit's other writes fail now, not each after another
                raise
            unit.pooled = wait
        return unit.conn

    def _begin(self, *, wait: bool) -> sqlite3.Connection:
        """What :meth:`_transaction` does on entering, as a call (a unit runs once per
        group of writes: a generator, an exit stack and their frames were ~6 us of it).
        The caller must :meth:`_finish` the connection it gets."""
        if not self._write_lock.acquire(blocking=wait):
            raise StoreBusy("another thread of this process is writing")
        try:
            if self._closed:
                raise StoreUnavailable("the store is closed")
            if not wait:
                if self._nowait_conn is None:
                    self._nowait_conn = self._connect(busy_timeout_ms=0)
                conn = self._nowait_conn
            else:
                try:
                    conn = self._pool.get_nowait()
                except queue.Empty:
                    conn = self._connect()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except BaseException as exc:
                if wait:
                    self._pool.put(conn)
                if isinstance(exc, sqlite3.OperationalError):
                    error = StoreUnavailable if wait else StoreBusy
                    raise error("the database is busy") from exc
                raise
        except BaseException:
            self._write_lock.release()
            raise
        return conn

    def _finish(self, unit: Unit, *, commit: bool) -> None:
        """COMMIT (or ROLLBACK) what :meth:`_begin` began; then the connection goes back
        and the write lock is released, whatever happened. A failed COMMIT is rolled back
        and raised."""
        conn = unit.conn
        if conn is None:
            return
        unit.conn = None
        try:
            if commit:
                try:
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            elif conn.in_transaction:
                conn.execute("ROLLBACK")
        finally:
            if unit.pooled:
                self._pool.put(conn)
            self._write_lock.release()

    def _commit_in_unit(self, unit: Unit, change: Change, now: datetime) -> None:
        item = Queued.of(change, now)
        conn = self._unit_connection(unit)
        try:
            apply_change(conn, item)
            if not conn.in_transaction:  # SQLite rolled it all back (I/O error, full)
                raise sqlite3.OperationalError("the transaction was rolled back")
        except sqlite3.Error as exc:
            unit.failure = exc
            raise StoreUnavailable("the database is unavailable") from exc
        if item.error is not None:
            raise item.error

    def _end_unit(self, unit: Unit, *, commit: bool) -> None:
        if commit and unit.failure is None:
            try:
                self._finish(unit, commit=True)  # COMMIT (nothing, if nothing was written)
            except sqlite3.Error as exc:  # rolled back by _finish
                raise StoreUnavailable(
                    "the database is unavailable; nothing of this unit was committed"
                ) from exc
            return
        with contextlib.suppress(sqlite3.Error):  # ROLLBACK; the lock is released anyway
            self._finish(unit, commit=False)
        if commit:
            raise StoreUnavailable(
                "the database is unavailable; nothing of this unit was committed"
            ) from unit.failure


def backend(settings: Mapping[str, str]) -> Backend:
    """The SQLite backend: settings ``db`` (the file, ``orders.db`` by default) and
    ``synchronous`` (``NORMAL`` or ``FULL``). Its outbox is the file's outbox table, and the
    file is one a relay process may open beside the server."""
    store = SQLiteStore(
        settings.get("db") or "orders.db", synchronous=settings.get("synchronous") or "NORMAL"
    )
    path = os.path.abspath(store.path)
    return Backend(
        name="sqlite",
        store=store,
        describe=f"{path}, synchronous {store.synchronous}",
        outbox=store,
        file=path,
        close=store.close,
        browser=store,
        inspector=store,
    )
