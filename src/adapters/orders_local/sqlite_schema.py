"""The SQLite schema as forward migrations, keyed by ``PRAGMA user_version``, and the
``synchronous`` levels a file may be opened with.

Each entry of :data:`MIGRATIONS` takes a file from the version before it to its own; the
reasons for each change are beside it (and in docs/decisions/0004-sqlite-store.md). A file
written by a newer orders-core is refused rather than misread.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

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


class SchemaTooNew(RuntimeError):
    """The database was written by a newer orders-core."""


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
    # 6: what the console reads (docs/decisions/0019-console-history-and-redelivery.md). Each
    # order's status as a column (counting statuses reads it, not every body's JSON: 93 vs
    # 456 ms for 200,000 orders; no index, which every write would pay for); the command
    # behind each outbox event, written in the same INSERT; when its last attempt failed;
    # an index from an order to its events (its timeline); and redelivery requests.
    (
        "ALTER TABLE orders ADD COLUMN status TEXT",
        "UPDATE orders SET status = json_extract(body, '$.status')",
        "ALTER TABLE outbox ADD COLUMN command TEXT",
        "ALTER TABLE outbox ADD COLUMN last_attempt_us INTEGER",
        "CREATE INDEX outbox_by_order ON outbox (order_id, position)",
        """
        CREATE TABLE redeliveries (
            request_id      INTEGER PRIMARY KEY,
            position        INTEGER NOT NULL,
            requested_us    INTEGER NOT NULL,
            requested_by    TEXT NOT NULL,
            attempts_before INTEGER NOT NULL
        )
        """,
        "CREATE INDEX redeliveries_by_position ON redeliveries (position, request_id)",
    ),
)
SCHEMA_VERSION: Final = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the file ``conn`` opened up to :data:`SCHEMA_VERSION`, in one transaction."""
    (current,) = conn.execute("PRAGMA user_version").fetchone()
    if current > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"{path} has schema version {current}; this orders-core knows up to "
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
