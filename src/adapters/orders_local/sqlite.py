"""The core's store on a SQLite file: orders, outbox and idempotency records in one database.

Why it is safe with many threads and several processes on one file:

* WAL mode: readers never block the writer and vice versa.
* Every commit runs in ``BEGIN IMMEDIATE``: it takes the write lock *before* it reads the
  version and the idempotency record it checks, so check-then-write cannot interleave with
  another writer, in this process or another. ``busy_timeout`` makes a second writer wait
  for the lock rather than fail.
* ``synchronous=NORMAL``: in WAL mode a commit survives a process crash (SIGKILL); only an OS
  crash or power loss can lose the last transactions. That is the local runtime's trade-off.

Schema changes are forward migrations keyed by ``PRAGMA user_version``; a file written by a
newer orders-core is refused rather than misread.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import sqlite3
import threading
from collections.abc import Iterator, Sequence
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
from orders_core.ports import Change, OrderStore, Outbox, Page, PendingEvent

BUSY_TIMEOUT_MS: Final = 5_000

MIGRATIONS: Final[tuple[str, ...]] = (
    # 1: the initial schema.
    """
    CREATE TABLE orders (
        order_id    TEXT PRIMARY KEY,
        customer_id TEXT,
        created_us  INTEGER NOT NULL,
        version     INTEGER NOT NULL,
        body        TEXT NOT NULL
    );
    CREATE INDEX orders_by_customer ON orders (customer_id, created_us, order_id)
        WHERE customer_id IS NOT NULL;
    CREATE TABLE outbox (
        position     INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id     TEXT NOT NULL UNIQUE,
        order_id     TEXT NOT NULL,
        record       TEXT NOT NULL,
        committed_us INTEGER NOT NULL,
        delivered_us INTEGER,
        attempts     INTEGER NOT NULL DEFAULT 0,
        last_error   TEXT
    );
    CREATE INDEX outbox_pending ON outbox (position) WHERE delivered_us IS NULL;
    CREATE TABLE idempotency (
        key         TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        status      INTEGER NOT NULL,
        body        BLOB NOT NULL,
        order_id    TEXT NOT NULL,
        version     INTEGER NOT NULL,
        expires_us  INTEGER NOT NULL
    );
    CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
    """,
)
SCHEMA_VERSION: Final = len(MIGRATIONS)


def _us(moment: datetime) -> int:
    """Microseconds since the epoch: sortable, unlike ISO strings with optional fractions."""
    return int(moment.timestamp() * 1_000_000)


def _from_us(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1_000_000, UTC)


class SchemaTooNew(RuntimeError):
    """The database was written by a newer orders-core."""


class SQLiteStore(OrderStore, Outbox):
    """Thread-safe; connections are pooled, one per concurrently active thread."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._pool: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        with self._connection() as conn:
            self._migrate(conn)
            self._cursor_key = self._load_cursor_key(conn)

    # -- connections -------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,  # we issue BEGIN ourselves
            check_same_thread=False,  # pooled: one thread at a time, never shared at once
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys=ON")
        with self._lock:
            self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
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
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding SQLite's write lock from its first statement."""
        with self._connection() as conn:
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

    def close(self) -> None:
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
                for statement in MIGRATIONS[version - 1].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={version}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _load_cursor_key(self, conn: sqlite3.Connection) -> bytes:
        """A per-database secret, so cursors survive restarts and are valid in every process."""
        conn.execute(
            "INSERT OR IGNORE INTO meta (name, value) VALUES ('cursor_key', ?)", (os.urandom(32),)
        )
        (key,) = conn.execute("SELECT value FROM meta WHERE name = 'cursor_key'").fetchone()
        return bytes(key)

    def schema_version(self) -> int:
        with self._connection() as conn:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])

    # -- OrderStore --------------------------------------------------------------------

    def get(self, order_id: str) -> Order | None:
        with self._connection() as conn:
            row = conn.execute("SELECT body FROM orders WHERE order_id = ?", (order_id,)).fetchone()
        return None if row is None else Order.model_validate_json(row[0])

    def list_by_customer(
        self, customer_id: str, *, limit: int = 20, cursor: str | None = None
    ) -> Page:
        after_us, after_id = -1, ""
        if cursor is not None:
            position = cursors.decode(cursor, self._cursor_key)
            try:
                after_us, after_id = int(position["t"]), str(position["id"])
            except (KeyError, TypeError, ValueError):
                raise MalformedRequest("invalid pagination cursor") from None
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT body, created_us, order_id FROM orders"
                " WHERE customer_id = ? AND (created_us, order_id) > (?, ?)"
                " ORDER BY created_us, order_id LIMIT ?",
                (customer_id, after_us, after_id, limit + 1),
            ).fetchall()
        orders = [Order.model_validate_json(body) for body, _, _ in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            _, last_us, last_id = rows[limit - 1]
            next_cursor = cursors.encode({"t": last_us, "id": last_id}, self._cursor_key)
        return Page(orders, next_cursor)

    def get_idempotency(self, key: str) -> IdempotencyRecord | None:
        with self._connection() as conn:
            row = conn.execute(
                "SELECT key, fingerprint, status, body, order_id, version, expires_us"
                " FROM idempotency WHERE key = ?",
                (key,),
            ).fetchone()
        if row is None:
            return None
        key, fp, status, body, order_id, version, expires_us = row
        return IdempotencyRecord(
            key, fp, status, bytes(body), order_id, version, _from_us(expires_us)
        )

    def commit(self, change: Change, *, now: datetime) -> None:
        order = change.order
        try:
            with self._write() as conn:
                record = change.idempotency
                if record is not None:
                    live = conn.execute(
                        "SELECT 1 FROM idempotency WHERE key = ? AND expires_us > ?",
                        (record.key, _us(now)),
                    ).fetchone()
                    if live is not None:
                        raise DuplicateRequest(f"idempotency key {record.key} already used")
                self._write_order(conn, order, change.expected_version)
                if record is not None:
                    conn.execute(
                        "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            record.key,
                            record.fingerprint,
                            record.status,
                            record.body,
                            record.order_id,
                            record.version,
                            _us(record.expires_at),
                        ),
                    )
                conn.executemany(
                    "INSERT INTO outbox (event_id, order_id, record, committed_us)"
                    " VALUES (?, ?, ?, ?)",
                    [
                        (e.id, e.order_id, json.dumps(e.to_record()), _us(now))
                        for e in change.events
                    ],
                )
        except sqlite3.IntegrityError as exc:
            # A duplicate order id or event id that slipped past the version check.
            raise ConcurrencyConflict(f"order {order.order_id} was written concurrently") from exc
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable("the database is unavailable") from exc

    @staticmethod
    def _write_order(conn: sqlite3.Connection, order: Order, expected: int) -> None:
        body = order.to_json().decode()
        if expected == 0:
            cur = conn.execute(
                "INSERT OR IGNORE INTO orders VALUES (?, ?, ?, ?, ?)",
                (order.order_id, order.customer_id, _us(order.created_at), order.version, body),
            )
        else:
            # The version condition is the optimistic-concurrency check: a writer that read
            # an older version updates no row and loses.
            cur = conn.execute(
                "UPDATE orders SET version = ?, body = ? WHERE order_id = ? AND version = ?",
                (order.version, body, order.order_id, expected),
            )
        if cur.rowcount != 1:
            raise ConcurrencyConflict(
                f"order {order.order_id} is not at version {expected} any more"
            )

    # -- Outbox ------------------------------------------------------------------------

    def pending(self, limit: int = 100) -> list[PendingEvent]:
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT position, record, attempts FROM outbox"
                " WHERE delivered_us IS NULL ORDER BY position LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            PendingEvent(pos, DomainEvent.from_record(json.loads(rec)), n) for pos, rec, n in rows
        ]

    def mark_delivered(self, positions: Sequence[int]) -> None:
        now = _us(datetime.now(UTC))
        with self._write() as conn:
            conn.executemany(
                "UPDATE outbox SET delivered_us = ? WHERE position = ? AND delivered_us IS NULL",
                [(now, p) for p in positions],
            )

    def mark_failed(self, positions: Sequence[int], error: str) -> None:
        with self._write() as conn:
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
