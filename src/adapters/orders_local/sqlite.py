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

Schema changes are forward migrations keyed by ``PRAGMA user_version``; a file written by a
newer orders-core is refused rather than misread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from orders_core import cursor as cursors
from orders_core.domain import Order
from orders_core.errors import (
    ConcurrencyConflict,
    DuplicateRequest,
    MalformedRequest,
    StoreUnavailable,
)
from orders_core.events import DomainEvent
from orders_core.idempotency import IdempotencyRecord
from orders_core.ports import Backend, Change, OrderStore, Outbox, Page, PendingEvent

log = logging.getLogger("orders_local.sqlite")

BUSY_TIMEOUT_MS: Final = 5_000
CHECKPOINT_INTERVAL_S: Final = 0.25
BACKSTOP_CHECKPOINT_PAGES: Final = 20_000
"""With background checkpoints, SQLite's own autocheckpoint fires only past ~80 MB of WAL."""

# Statements more than one migration runs (the tables they index are rebuilt in 3).
_ORDERS_BY_CUSTOMER: Final = """
        CREATE INDEX orders_by_customer ON orders (customer_id, created_us, order_id)
            WHERE customer_id IS NOT NULL
        """
_OUTBOX_PENDING: Final = (
    "CREATE INDEX outbox_pending ON outbox (position) WHERE delivered_us IS NULL"
)
_APPLY_CHANGE_TRIGGER: Final = """
        CREATE TRIGGER apply_change_insert INSTEAD OF INSERT ON apply_change BEGIN
            -- A live record under this key means a duplicate request already committed.
            SELECT RAISE(ABORT, 'orders-core:duplicate-request')
             WHERE NEW.idem_key IS NOT NULL AND EXISTS (
                   SELECT 1 FROM idempotency
                    WHERE key = NEW.idem_key AND expires_us > NEW.now_us);
            -- Optimistic concurrency: the stored version (0 if none) must be the one read.
            SELECT RAISE(ABORT, 'orders-core:version-conflict')
             WHERE COALESCE((SELECT version FROM orders WHERE order_id = NEW.order_id), 0)
                   != NEW.expected_version;
            INSERT INTO orders (order_id, customer_id, created_us, version, body)
            VALUES (NEW.order_id, NEW.customer_id, NEW.created_us, NEW.version, NEW.body)
            ON CONFLICT (order_id) DO UPDATE SET version = excluded.version, body = excluded.body;
            INSERT OR REPLACE INTO idempotency
                   (key, fingerprint, status, body, order_id, version, expires_us, generation)
            SELECT NEW.idem_key, NEW.idem_fingerprint, NEW.idem_status, NEW.idem_body,
                   NEW.order_id, NEW.idem_version, NEW.idem_expires_us, NEW.idem_generation
             WHERE NEW.idem_key IS NOT NULL;
            INSERT INTO outbox (event_id, order_id, record, committed_us)
            SELECT json_extract(value, '$.id'), NEW.order_id, value, NEW.now_us
              FROM json_each(NEW.events);
        END
        """

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 1: the initial schema.
    (
        """
        CREATE TABLE orders (
            order_id    TEXT PRIMARY KEY,
            customer_id TEXT,
            created_us  INTEGER NOT NULL,
            version     INTEGER NOT NULL,
            body        TEXT NOT NULL
        ) WITHOUT ROWID
        """,
        _ORDERS_BY_CUSTOMER,
        """
        CREATE TABLE outbox (
            position     INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id     TEXT NOT NULL,
            order_id     TEXT NOT NULL,
            record       TEXT NOT NULL,
            committed_us INTEGER NOT NULL,
            delivered_us INTEGER,
            attempts     INTEGER NOT NULL DEFAULT 0,
            last_error   TEXT
        )
        """,
        _OUTBOX_PENDING,
        """
        CREATE TABLE idempotency (
            key         TEXT PRIMARY KEY,
            fingerprint TEXT NOT NULL,
            status      INTEGER NOT NULL,
            body        BLOB NOT NULL,
            order_id    TEXT NOT NULL,
            version     INTEGER NOT NULL,
            expires_us  INTEGER NOT NULL,
            generation  INTEGER NOT NULL DEFAULT 0
        )
        """,
        """
        CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL)
        """,
    ),
    # 2: apply_change, the whole conditional commit of one change as ONE statement.
    #
    # An INSERT into the view runs the trigger inside SQLite. RAISE(ABORT) backs out that
    # statement alone, so the checks and the writes are atomic without BEGIN/COMMIT or
    # savepoints, and one change costs one round trip from Python (it was four: measured,
    # see docs/decisions/0003-local-http-server.md).
    (
        """
        CREATE VIEW apply_change AS SELECT
            NULL AS order_id, NULL AS customer_id, NULL AS created_us, NULL AS version,
            NULL AS body, NULL AS expected_version, NULL AS now_us, NULL AS events,
            NULL AS idem_key, NULL AS idem_fingerprint, NULL AS idem_status, NULL AS idem_body,
            NULL AS idem_version, NULL AS idem_expires_us, NULL AS idem_generation
        """,
        _APPLY_CHANGE_TRIGGER,
    ),
    # 3: orders as a rowid table, outbox positions without AUTOINCREMENT.
    #
    # WITHOUT ROWID stored each ~500-byte order row in the primary key's B-tree, where
    # random ids spread inserts over many pages; AUTOINCREMENT wrote sqlite_sequence on
    # every commit. One create's statement went from 116 us to 76 us (measured, see
    # docs/decisions/0006-local-server-event-loop.md). Positions still only grow: outbox
    # rows are never deleted, so max(position) + 1 never reuses one.
    (
        "DROP TRIGGER apply_change_insert",
        """
        CREATE TABLE orders_v3 (
            order_id    TEXT PRIMARY KEY,
            customer_id TEXT,
            created_us  INTEGER NOT NULL,
            version     INTEGER NOT NULL,
            body        TEXT NOT NULL
        )
        """,
        """
        INSERT INTO orders_v3 (order_id, customer_id, created_us, version, body)
        SELECT order_id, customer_id, created_us, version, body FROM orders
         ORDER BY created_us
        """,
        "DROP TABLE orders",
        "ALTER TABLE orders_v3 RENAME TO orders",
        _ORDERS_BY_CUSTOMER,
        """
        CREATE TABLE outbox_v3 (
            position     INTEGER PRIMARY KEY,
            event_id     TEXT NOT NULL,
            order_id     TEXT NOT NULL,
            record       TEXT NOT NULL,
            committed_us INTEGER NOT NULL,
            delivered_us INTEGER,
            attempts     INTEGER NOT NULL DEFAULT 0,
            last_error   TEXT
        )
        """,
        """
        INSERT INTO outbox_v3 (position, event_id, order_id, record, committed_us,
                               delivered_us, attempts, last_error)
        SELECT position, event_id, order_id, record, committed_us, delivered_us, attempts,
               last_error FROM outbox
        """,
        "DROP TABLE outbox",
        "ALTER TABLE outbox_v3 RENAME TO outbox",
        _OUTBOX_PENDING,
        _APPLY_CHANGE_TRIGGER,
    ),
    # 4: no apply_change view. Every change now runs inside a transaction (a unit of work or
    # a group commit) and checks before it writes, so plain statements keep it atomic; the
    # trigger, and json_each over the events it was handed, cost more than the round trips
    # it saved: 31 -> 17 us per create alone (docs/decisions/0004-sqlite-store.md).
    ("DROP TRIGGER apply_change_insert", "DROP VIEW apply_change"),
    # 5: each order's owner (the principal that created it). Rows from before were created
    # when every caller was anonymous: they belong to the anonymous principal. Listings
    # filter by owner, so the customer index leads with it after the customer.
    (
        "ALTER TABLE orders ADD COLUMN owner TEXT NOT NULL DEFAULT 'anonymous:'",
        "DROP INDEX orders_by_customer",
        """
        CREATE INDEX orders_by_customer_owner ON orders (customer_id, owner, created_us, order_id)
            WHERE customer_id IS NOT NULL
        """,
    ),
)
SCHEMA_VERSION: Final = len(MIGRATIONS)


MAX_GROUP: Final = 64
"""Most changes one group commit carries."""


_LIVE_KEY: Final = "SELECT 1 FROM idempotency WHERE key = ? AND expires_us > ?"
_INSERT_ORDER: Final = (
    "INSERT INTO orders (order_id, customer_id, created_us, version, owner, body)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_UPDATE_ORDER: Final = "UPDATE orders SET version = ?, body = ? WHERE order_id = ? AND version = ?"
_PUT_KEY: Final = (
    "INSERT OR REPLACE INTO idempotency"
    " (key, fingerprint, status, body, order_id, version, expires_us, generation)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_EVENT: Final = (
    "INSERT INTO outbox (event_id, order_id, record, committed_us) VALUES (?, ?, ?, ?)"
)


class _Unit:
    """One thread's unit of work: its open transaction (:meth:`SQLiteStore._transaction`,
    entered on the first change), the connection it runs on, and what spent it, if anything."""

    __slots__ = ("conn", "failure", "transaction")

    def __init__(self) -> None:
        self.transaction = contextlib.ExitStack()
        self.conn: sqlite3.Connection | None = None
        self.failure: BaseException | None = None


@dataclass(slots=True)
class _Queued:
    """A change and its rows, serialized before any lock is taken."""

    change: Change
    now_us: int
    body: str
    events: list[tuple[str, str, str, int]]
    key: tuple[object, ...] | None
    done: bool = False
    error: BaseException | None = None

    @classmethod
    def of(cls, change: Change, now: datetime) -> _Queued:
        order, record, now_us = change.order, change.idempotency, _us(now)
        events = [(e.id, order.order_id, e.to_record_json(), now_us) for e in change.events]
        key = None
        if record is not None:
            key = (
                record.key,
                record.fingerprint,
                record.status,
                record.body,
                order.order_id,
                record.version,
                _us(record.expires_at),
                record.generation,
            )
        return cls(change, now_us, change.order_json.decode(), events, key)


def _us(moment: datetime) -> int:
    """Microseconds since the epoch: sortable, unlike ISO strings with optional fractions."""
    return int(moment.timestamp() * 1_000_000)


def _from_us(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1_000_000, UTC)


def _conflict(change: Change) -> ConcurrencyConflict:
    return ConcurrencyConflict(
        f"order {change.order.order_id} is not at version {change.expected_version} any more"
    )


class SchemaTooNew(RuntimeError):
    """The database was written by a newer orders-core."""


SYNCHRONOUS_MODES: Final = ("FULL", "NORMAL")
"""SQLite ``synchronous`` levels offered: NORMAL (default) can lose the last commits to a
power loss, FULL cannot. OFF risks corruption; SQLite silently reads unknown words as
NORMAL, so anything else is refused here."""


def synchronous_mode(value: str) -> str:
    """``value`` as one of :data:`SYNCHRONOUS_MODES` (any case); ValueError otherwise."""
    mode = value.strip().upper()
    if mode not in SYNCHRONOUS_MODES:
        raise ValueError(f"synchronous must be FULL or NORMAL, not {value!r}")
    return mode


class SQLiteStore(OrderStore, Outbox):
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
        self._queue: list[_Queued] = []
        self._units = threading.local()
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

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,  # we issue BEGIN ourselves
            check_same_thread=False,  # pooled: one thread at a time, never shared at once
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")  # one of SYNCHRONOUS_MODES
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA wal_autocheckpoint={self._autocheckpoint}")
        with self._lock:
            self._all.append(conn)
        return conn

    def _current_unit(self) -> _Unit | None:
        unit: _Unit | None = getattr(self._units, "current", None)
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
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE under the in-process write lock; COMMIT, or ROLLBACK on error."""
        with self._write_lock, self._connection() as conn:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StoreUnavailable("the database is busy") from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

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
        (current,) = conn.execute("PRAGMA user_version").fetchone()
        if current > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"{self.path} has schema version {current}; this orders-core knows up to "
                f"{SCHEMA_VERSION}. Upgrade orders-core."
            )
        if current == SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-read under the lock: another process may have migrated meanwhile.
            (current,) = conn.execute("PRAGMA user_version").fetchone()
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version - 1]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={version}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

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
            position = cursors.decode(cursor, self._cursor_key)
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
            next_cursor = cursors.encode({"t": last_us, "id": last_id}, self._cursor_key)
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
            key, fp, status, bytes(body), order_id, version, _from_us(expires_us), generation
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
        item = _Queued.of(change, now)
        with self._queue_lock:
            self._queue.append(item)
        with self._write_lock:
            while not item.done:
                with self._queue_lock:
                    batch = self._queue[:MAX_GROUP]
                    del self._queue[:MAX_GROUP]
                self._commit_group(batch)
        if item.error is not None:
            raise item.error

    groups_commits = True

    @contextlib.contextmanager
    def unit_of_work(self) -> Iterator[None]:
        """Group commit for a single thread: every change this thread commits inside the block
        joins one transaction, committed when the block ends.

        ``commit`` still checks each change at once (a refused change backs out only its own
        statement and raises as usual), and reads inside the block see the block's changes.
        But nothing is durable until the block exits without an exception: the caller must
        hold every answer until then. If the final COMMIT fails, or a change failed for a
        reason other than a refusal, the block raises StoreUnavailable and none of it is
        committed. The local server runs each turn of its loop in one (docs/decisions/0006).
        """
        if self._current_unit() is not None:
            raise RuntimeError("units of work do not nest")
        unit = _Unit()
        self._units.current = unit
        try:
            yield
        except BaseException:
            self._units.current = None
            self._end_unit(unit, commit=False)
            raise
        self._units.current = None
        self._end_unit(unit, commit=True)

    def _unit_connection(self, unit: _Unit) -> sqlite3.Connection:
        """The unit's connection, its transaction opened by the unit's first write."""
        if unit.failure is not None:
            raise StoreUnavailable("the database is unavailable") from unit.failure
        if unit.conn is None:
            unit.conn = unit.transaction.enter_context(self._transaction())
        return unit.conn

    def _commit_in_unit(self, unit: _Unit, change: Change, now: datetime) -> None:
        item = _Queued.of(change, now)
        conn = self._unit_connection(unit)
        try:
            self._apply(conn, item)
            if not conn.in_transaction:  # SQLite rolled it all back (I/O error, full)
                raise sqlite3.OperationalError("the transaction was rolled back")
        except sqlite3.Error as exc:
            unit.failure = exc
            raise StoreUnavailable("the database is unavailable") from exc
        if item.error is not None:
            raise item.error

    def _end_unit(self, unit: _Unit, *, commit: bool) -> None:
        if commit and unit.failure is None:
            try:
                unit.transaction.close()  # COMMIT (nothing, if nothing was written)
            except sqlite3.Error as exc:  # rolled back by _transaction
                raise StoreUnavailable(
                    "the database is unavailable; nothing of this unit was committed"
                ) from exc
            return
        rollback = unit.failure or StoreUnavailable("the unit of work was abandoned")
        with contextlib.suppress(sqlite3.Error):
            unit.transaction.__exit__(type(rollback), rollback, rollback.__traceback__)
        if commit:
            raise StoreUnavailable(
                "the database is unavailable; nothing of this unit was committed"
            ) from unit.failure

    def _commit_group(self, batch: list[_Queued]) -> None:
        try:
            with self._connection() as conn:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for item in batch:
                        self._apply(conn, item)  # a refused change writes nothing
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:  # nothing of the batch was committed
            for item in batch:
                item.error = StoreUnavailable("the database is unavailable")
                item.error.__cause__ = exc
        except BaseException as exc:
            for item in batch:
                item.error = exc
        finally:
            for item in batch:
                item.done = True

    @staticmethod
    def _apply(conn: sqlite3.Connection, item: _Queued) -> None:
        """One change inside the caller's transaction: its checks, then its writes.

        A refusal lands on the item before anything is written. Any other error is raised
        after a write may have happened: the caller must roll the transaction back.
        """
        change = item.change
        order = change.order
        if item.key is not None and conn.execute(_LIVE_KEY, (item.key[0], item.now_us)).fetchone():
            item.error = DuplicateRequest("idempotency key already used")
            return
        if change.expected_version == 0:
            row = (
                order.order_id,
                order.customer_id,
                _us(order.created_at),
                order.version,
                order.owner,
            )
            try:
                conn.execute(_INSERT_ORDER, (*row, item.body))
            except sqlite3.IntegrityError as exc:  # the order exists already
                item.error = _conflict(change)
                item.error.__cause__ = exc
                return
        elif (
            conn.execute(
                _UPDATE_ORDER,
                (order.version, item.body, order.order_id, change.expected_version),
            ).rowcount
            != 1
        ):
            item.error = _conflict(change)
            return
        if item.key is not None:
            conn.execute(_PUT_KEY, item.key)
        for event in item.events:
            conn.execute(_INSERT_EVENT, event)

    # -- Outbox ------------------------------------------------------------------------

    def pending(self, limit: int = 100, *, after: int = 0) -> list[PendingEvent]:
        """Undelivered events in commit order; ``after`` skips positions up to it (a relay
        process's own record of what it published and the server has yet to mark)."""
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT position, record, attempts FROM outbox"
                " WHERE delivered_us IS NULL AND position > ? ORDER BY position LIMIT ?",
                (after, limit),
            ).fetchall()
        return [
            PendingEvent(pos, DomainEvent.from_record(json.loads(rec)), n) for pos, rec, n in rows
        ]

    def undelivered_count(self) -> int:
        """Committed events not yet published (the ``orders.outbox.undelivered`` gauge)."""
        with self._connection() as conn:
            (count,) = conn.execute(
                "SELECT count(*) FROM outbox WHERE delivered_us IS NULL"
            ).fetchone()
        return int(count)

    def mark_delivered(self, positions: Sequence[int]) -> None:
        now = _us(datetime.now(UTC))
        with self._bookkeeping() as conn:
            conn.executemany(
                "UPDATE outbox SET delivered_us = ? WHERE position = ? AND delivered_us IS NULL",
                [(now, p) for p in positions],
            )

    def mark_failed(self, positions: Sequence[int], error: str) -> None:
        with self._bookkeeping() as conn:
            conn.executemany(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE position = ?",
                [(error[:500], p) for p in positions],
            )

    def outbox_entries(
        self, *, pending_only: bool = False, limit: int = 100
    ) -> list[dict[str, object]]:
        """Outbox rows with their delivery state, for ``orders-local events``."""
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT position, event_id, order_id, record, committed_us, delivered_us,"
                " attempts, last_error FROM outbox WHERE delivered_us IS NULL OR NOT ?"
                " ORDER BY position LIMIT ?",
                (pending_only, limit),
            ).fetchall()
        return [
            {
                "position": pos,
                "id": event_id,
                "type": json.loads(rec)["type"],
                "orderId": order_id,
                "committedAt": _from_us(committed).isoformat(),
                "deliveredAt": _from_us(delivered).isoformat() if delivered else None,
                "attempts": attempts,
                "lastError": last_error,
            }
            for pos, event_id, order_id, rec, committed, delivered, attempts, last_error in rows
        ]

    def events_for(self, order_id: str) -> list[DomainEvent]:
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT record FROM outbox WHERE order_id = ? ORDER BY position", (order_id,)
            ).fetchall()
        return [DomainEvent.from_record(json.loads(rec)) for (rec,) in rows]


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
    )
