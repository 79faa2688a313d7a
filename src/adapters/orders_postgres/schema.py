"""The PostgreSQL schema as forward migrations, kept in a schema (namespace) of its own.

Everything orders-core writes lives in one PostgreSQL schema (``orders_core`` by default),
so it can share a database with other applications, and tests can give every case a fresh
one. ``meta.schema_version`` says which of :data:`MIGRATIONS` have run; opening a schema
written by a newer orders-core is refused (:class:`SchemaTooNew`) rather than misread.
Migrations run in one transaction under an advisory lock, so replicas starting together
migrate once and the others wait, then find nothing to do.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import psycopg


class SchemaTooNew(RuntimeError):
    """The schema was written by a newer orders-core."""


_NAME_RE: Final = re.compile(r"^[a-z_][a-z0-9_]{0,47}$")
"""Schema names we accept: plain lower-case identifiers, so they need no quoting in SQL text,
and short enough that ``<schema>_outbox`` is a valid channel name (63 bytes at most)."""

DUPLICATE_REQUEST: Final = "OC001"
"""SQLSTATE ``apply_change`` raises when a live idempotency record holds the key."""
VERSION_CONFLICT: Final = "OC002"
"""SQLSTATE ``apply_change`` raises when the order is not at the expected version."""
MIGRATION_LOCK_TIMEOUT_MS: Final = 5_000
"""How long a migration's statements wait for a table's lock (not for the migrate lock:
that wait has no bound), as the request path's statements do."""


def schema_name(name: str) -> str:
    """``name`` if it is a schema name we accept; ValueError otherwise."""
    if not _NAME_RE.match(name):
        raise ValueError(
            f"database schema {name!r}: use 1-48 lower-case letters, digits or '_' "
            "(not starting with a digit)"
        )
    return name


def lock_key(schema: str, purpose: str) -> int:
    """A signed 64-bit advisory-lock key for ``purpose`` in ``schema``: stores in different
    schemas of one database never wait for each other's locks."""
    digest = hashlib.sha256(f"orders-core\x00{schema}\x00{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel commits in ``schema`` notify."""
    return f"{schema}_outbox"


def _initial(s: str) -> tuple[str, ...]:
    outbox_lock = lock_key(s, "outbox")
    return (
        # fillfactor 90: a transition rewrites the body but no indexed column, so the new
        # row version can stay on its page (a HOT update: no index writes).
        f"""
        CREATE TABLE {s}.orders (
            order_id    text PRIMARY KEY,
            customer_id text,
            created_us  bigint NOT NULL,
            version     integer NOT NULL,
            owner       text NOT NULL,
            body        text NOT NULL
        ) WITH (fillfactor = 90)
        """,
        # Listings: an owner's orders of a customer (every caller but admins and services),
        # and all of a customer's orders (those), both in (created_us, order_id) order.
        f"""
        CREATE INDEX orders_by_customer_owner
            ON {s}.orders (customer_id, owner, created_us, order_id)
            WHERE customer_id IS NOT NULL
        """,
        f"""
        CREATE INDEX orders_by_customer ON {s}.orders (customer_id, created_us, order_id)
            WHERE customer_id IS NOT NULL
        """,
        f"""
        CREATE TABLE {s}.idempotency (
            key         text PRIMARY KEY,
            fingerprint text NOT NULL,
            status      integer NOT NULL,
            body        bytea NOT NULL,
            order_id    text NOT NULL,
            version     integer NOT NULL,
            expires_at  timestamptz NOT NULL,
            generation  integer NOT NULL DEFAULT 0
        )
        """,
        f"""
        CREATE TABLE {s}.outbox (
            position     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            event_id     text NOT NULL,
            order_id     text NOT NULL,
            record       text NOT NULL,
            committed_at timestamptz NOT NULL,
            delivered_at timestamptz,
            attempts     integer NOT NULL DEFAULT 0,
            last_error   text
        )
        """,
        f"CREATE INDEX outbox_pending ON {s}.outbox (position) WHERE delivered_at IS NULL",
        # One change, checked and written in ONE statement: a single round trip, and no
        # lock held while the client is away. A RAISE rolls the whole statement back.
        #
        # Commit order = position order: the transaction-scoped advisory lock is taken
        # after every row lock this change needs (taking it first could deadlock with a
        # change that holds the order's row and waits for the lock) and right before the
        # outbox insert draws its positions. PostgreSQL makes a commit visible before it
        # releases the transaction's locks, so the next writer draws higher positions only
        # once every lower one is visible: a reader never sees position n+1 without n
        # (docs/decisions/0021-postgres-outbox-order.md).
        f"""
        CREATE FUNCTION {s}.apply_change(
            p_order_id text, p_customer_id text, p_created_us bigint, p_version integer,
            p_owner text, p_body text, p_expected integer, p_now timestamptz,
            p_event_ids text[], p_events text[],
            p_key text, p_fingerprint text, p_status integer, p_record_body bytea,
            p_record_version integer, p_expires_at timestamptz, p_generation integer
        ) RETURNS void LANGUAGE plpgsql AS $fn$
        BEGIN
            IF p_key IS NOT NULL THEN
                -- A concurrent writer of the same key makes this wait for its outcome;
                -- only an expired record may be replaced.
                INSERT INTO {s}.idempotency AS r
                       (key, fingerprint, status, body, order_id, version, expires_at,
                        generation)
                VALUES (p_key, p_fingerprint, p_status, p_record_body, p_order_id,
                        p_record_version, p_expires_at, p_generation)
                ON CONFLICT (key) DO UPDATE SET
                       fingerprint = excluded.fingerprint, status = excluded.status,
                       body = excluded.body, order_id = excluded.order_id,
                       version = excluded.version, expires_at = excluded.expires_at,
                       generation = excluded.generation
                 WHERE r.expires_at <= p_now;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'idempotency key already used'
                          USING ERRCODE = '{DUPLICATE_REQUEST}';
                END IF;
            END IF;
            IF p_expected = 0 THEN
                INSERT INTO {s}.orders
                       (order_id, customer_id, created_us, version, owner, body)
                VALUES (p_order_id, p_customer_id, p_created_us, p_version, p_owner, p_body)
                ON CONFLICT (order_id) DO NOTHING;
            ELSE
                -- Under READ COMMITTED a concurrent update makes this wait, then re-check
                -- the version on the row that won: the loser updates nothing.
                UPDATE {s}.orders SET version = p_version, body = p_body
                 WHERE order_id = p_order_id AND version = p_expected;
            END IF;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'order % is not at version % any more', p_order_id, p_expected
                      USING ERRCODE = '{VERSION_CONFLICT}';
            END IF;
            IF cardinality(p_events) > 0 THEN
                PERFORM pg_advisory_xact_lock({outbox_lock});
                INSERT INTO {s}.outbox (event_id, order_id, record, committed_at)
                SELECT e.id, p_order_id, e.record, p_now
                  FROM unnest(p_event_ids, p_events) WITH ORDINALITY AS e(id, record, n)
                 ORDER BY e.n;
                PERFORM pg_notify('{channel(s)}', '');
            END IF;
        END
        $fn$
        """,
    )


def _console(s: str) -> tuple[str, ...]:
    """What the console reads (docs/decisions/0019-console-history-and-redelivery.md), as
    SQLite's schema 6 added it: each order's status as a column (counted without parsing
    bodies; deliberately not indexed, as on SQLite), and ``seq``, the order's place in
    insertion order (SQLite's rowid: newest first), with the one index a newest-first page
    needs; the command behind each change on its first outbox row, written by the same
    ``apply_change``; when an event's last attempt failed; an index from an order to its
    events (its timeline); and redelivery requests, one per failed attempt at most."""
    outbox_lock = lock_key(s, "outbox")
    return (
        f"ALTER TABLE {s}.orders ADD COLUMN status text",
        # Not body::jsonb ->> 'status': jsonb (and json's ->>) refuses a body holding a
        # \u0000 escape, which a cancel reason may carry, and the migration would fail on
        # every start. Bodies are pydantic's compact JSON of an Order, where the only
        # "status" key is the top-level one (no nested model has one), and a string value
        # cannot contain `"status":"` (its quotes would be escaped): the first match is it.
        f"""UPDATE {s}.orders SET status = substring(body from '"status":"([A-Z_]+)"')""",
        f"ALTER TABLE {s}.orders ADD COLUMN seq bigint",
        f"""
        UPDATE {s}.orders o SET seq = r.n
          FROM (SELECT order_id, row_number() OVER (ORDER BY created_us, order_id) AS n
                  FROM {s}.orders) r
         WHERE r.order_id = o.order_id
        """,
        f"ALTER TABLE {s}.orders ALTER COLUMN seq SET NOT NULL",
        f"ALTER TABLE {s}.orders ALTER COLUMN seq ADD GENERATED BY DEFAULT AS IDENTITY",
        f"""
        SELECT setval(pg_get_serial_sequence('{s}.orders', 'seq'),
                      coalesce(max(seq), 0) + 1, false)
          FROM {s}.orders
        """,
        f"CREATE UNIQUE INDEX orders_newest ON {s}.orders (seq)",
        f"ALTER TABLE {s}.outbox ADD COLUMN command text",
        f"ALTER TABLE {s}.outbox ADD COLUMN last_attempt_at timestamptz",
        f"CREATE INDEX outbox_by_order ON {s}.outbox (order_id, position)",
        f"""
        CREATE TABLE {s}.redeliveries (
            request_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            position        bigint NOT NULL,
            requested_at    timestamptz NOT NULL,
            requested_by    text NOT NULL,
            attempts_before integer NOT NULL,
            UNIQUE (position, attempts_before)
        )
        """,
        # apply_change gains the order's status and the command's note: a new signature,
        # so the old function goes (CREATE OR REPLACE would add an overload beside it).
        f"""
        DROP FUNCTION {s}.apply_change(
            text, text, bigint, integer, text, text, integer, timestamptz, text[], text[],
            text, text, integer, bytea, integer, timestamptz, integer)
        """,
        f"""
        CREATE FUNCTION {s}.apply_change(
            p_order_id text, p_customer_id text, p_created_us bigint, p_version integer,
            p_owner text, p_body text, p_expected integer, p_now timestamptz,
            p_event_ids text[], p_events text[],
            p_key text, p_fingerprint text, p_status integer, p_record_body bytea,
            p_record_version integer, p_expires_at timestamptz, p_generation integer,
            p_order_status text, p_command text
        ) RETURNS void LANGUAGE plpgsql AS $fn$
        BEGIN
            IF p_key IS NOT NULL THEN
                INSERT INTO {s}.idempotency AS r
                       (key, fingerprint, status, body, order_id, version, expires_at,
                        generation)
                VALUES (p_key, p_fingerprint, p_status, p_record_body, p_order_id,
                        p_record_version, p_expires_at, p_generation)
                ON CONFLICT (key) DO UPDATE SET
                       fingerprint = excluded.fingerprint, status = excluded.status,
                       body = excluded.body, order_id = excluded.order_id,
                       version = excluded.version, expires_at = excluded.expires_at,
                       generation = excluded.generation
                 WHERE r.expires_at <= p_now;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'idempotency key already used'
                          USING ERRCODE = '{DUPLICATE_REQUEST}';
                END IF;
            END IF;
            IF p_expected = 0 THEN
                INSERT INTO {s}.orders
                       (order_id, customer_id, created_us, version, owner, body, status)
                VALUES (p_order_id, p_customer_id, p_created_us, p_version, p_owner, p_body,
                        p_order_status)
                ON CONFLICT (order_id) DO NOTHING;
            ELSE
                UPDATE {s}.orders SET version = p_version, body = p_body,
                       status = p_order_status
                 WHERE order_id = p_order_id AND version = p_expected;
            END IF;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'order % is not at version % any more', p_order_id, p_expected
                      USING ERRCODE = '{VERSION_CONFLICT}';
            END IF;
            IF cardinality(p_events) > 0 THEN
                PERFORM pg_advisory_xact_lock({outbox_lock});
                -- The command rides on the change's first event: its timeline entry.
                INSERT INTO {s}.outbox (event_id, order_id, record, committed_at, command)
                SELECT e.id, p_order_id, e.record, p_now,
                       CASE WHEN e.n = 1 THEN p_command END
                  FROM unnest(p_event_ids, p_events) WITH ORDINALITY AS e(id, record, n)
                 ORDER BY e.n;
                PERFORM pg_notify('{channel(s)}', '');
            END IF;
        END
        $fn$
        """,
    )


MIGRATIONS: Final[tuple[Callable[[str], tuple[str, ...]], ...]] = (
    # 1: orders, idempotency records, the outbox and apply_change.
    _initial,
    # 2: the console's columns, indexes and redeliveries; apply_change records commands.
    _console,
)
SCHEMA_VERSION: Final = len(MIGRATIONS)


_READ_VERSION: Final = "SELECT value FROM {s}.meta WHERE name = 'schema_version'"


def current_version(conn: psycopg.Connection[tuple[object, ...]], schema: str) -> int | None:
    """The schema's version, or None when it has no meta table yet (nothing created)."""
    import psycopg

    try:
        with conn.transaction():
            row = conn.execute(_READ_VERSION.format(s=schema)).fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return int(str(row[0])) if row else 0


def _refuse_newer(version: int, schema: str) -> None:
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"database schema {schema} has version {version}; this orders-core knows up to "
            f"{SCHEMA_VERSION}. Upgrade orders-core."
        )


def migrate(conn: psycopg.Connection[tuple[object, ...]], schema: str) -> int:
    """Bring ``schema`` up to :data:`SCHEMA_VERSION`; returns the version it was at (0: new).

    Reads the version first, without a lock or a write, so a store opened on an up-to-date
    schema needs no privilege beyond reading it.
    """
    found = current_version(conn, schema)
    if found is not None:
        _refuse_newer(found, schema)
        if found == SCHEMA_VERSION:
            return found
    with conn.transaction():
        # A migration is not a request: the session's request-path timeouts (statement 10 s,
        # lock 5 s: driver._configure) would fail a replica that waits here while another
        # migrates a big table, and cancel that table's rewrite on every start. For this
        # transaction only (SET LOCAL; the pooled session keeps its own):
        # * no statement timeout: a rewrite takes what the table needs (pg_cancel_backend
        #   stops one);
        # * no lock timeout while waiting for the migrate lock: its holder is a migration
        #   under way, or its session ends and the lock goes with it;
        # * then a bounded wait again for the tables' locks: an ALTER queued behind a long
        #   reader (a report, pg_dump) would queue every request behind itself; failing
        #   instead leaves the running replicas serving and this one retries on its next
        #   start.
        conn.execute("SET LOCAL statement_timeout = 0")
        conn.execute("SET LOCAL lock_timeout = 0")
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(schema, "migrate"),))
        conn.execute(f"SET LOCAL lock_timeout = {MIGRATION_LOCK_TIMEOUT_MS}")
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {schema}.meta (name text PRIMARY KEY, value text NOT NULL)"
        )
        # Re-read under the lock: another process may have migrated meanwhile.
        row = conn.execute(_READ_VERSION.format(s=schema)).fetchone()
        before = int(str(row[0])) if row else 0
        _refuse_newer(before, schema)
        for version in range(before + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version - 1](schema):
                conn.execute(statement)
            conn.execute(
                f"INSERT INTO {schema}.meta (name, value) VALUES ('schema_version', %s)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (str(version),),
            )
    return before
