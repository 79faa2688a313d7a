"""The core's store on PostgreSQL: orders, idempotency records and the outbox in one schema.

Why it is safe with many threads, processes and replicas:

* Every change is ONE statement, ``apply_change`` (:mod:`orders_postgres.schema`), run in
  autocommit: its checks and writes are one transaction, all or nothing, in one round trip.
  A lost race waits for the winner and then fails its condition (READ COMMITTED re-checks
  the row that won), so it is a conflict, never a double effect.
* Reads are single statements on the primary: strongly consistent.
* Each commit is durable when it returns (``groups_commits`` is False: PostgreSQL groups
  WAL flushes of concurrent commits itself, and a unit of work spanning requests would
  hold a connection and its locks across them).
* Outbox positions are drawn in commit order, and the relay selects what is undelivered
  rather than what comes after a cursor: no event is skipped, however late its
  transaction commits (docs/decisions/0021-postgres-outbox-order.md).

Every psycopg error is translated in :mod:`orders_postgres.driver`, nowhere else.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from orders_core.application import (
    Change,
    IdempotencyRecord,
    OrderStore,
    Outbox,
    Page,
    PendingEvent,
    decode_cursor,
    encode_cursor,
    event_type_of,
    read_pending,
)
from orders_core.domain import DomainEvent, Order
from orders_core.errors import MalformedRequest
from orders_postgres.driver import Connection, Database, storable
from orders_postgres.inspect import PostgresInspection
from orders_postgres.schema import channel, current_version, lock_key, migrate, schema_name

DEFAULT_SCHEMA: Final = "orders_core"
_BIGINT: Final = range(-(2**63), 2**63)
_APPLY_TYPES: Final = (
    "text", "text", "bigint", "integer", "text", "text", "integer", "timestamptz",
    "text[]", "text[]",
    "text", "text", "integer", "bytea", "integer", "timestamptz", "integer",
    "text", "text",
)  # fmt: skip
"""apply_change's parameter types, cast explicitly: an empty list or a NULL carries none."""


def us_of(moment: datetime) -> int:
    """Microseconds since the epoch: the listing order, as in the SQLite store."""
    return int(moment.timestamp() * 1_000_000)


class PostgresStore(OrderStore, Outbox, PostgresInspection):
    """Thread-safe: every call takes a pooled connection for one statement. Also the
    console's ports (:mod:`orders_postgres.inspect`)."""

    def __init__(self, database: Database, *, schema: str = DEFAULT_SCHEMA) -> None:
        self.database = database
        self.schema = s = schema_name(schema)
        self.channel = channel(s)
        self.relay_lock = lock_key(s, "relay")
        """The session advisory lock the one active relay holds (orders_postgres.relay)."""
        self.migrated_from = database.run(lambda conn: migrate(conn, s), read=False)
        """The schema version found on opening (0: created now)."""
        self._cursor_key = database.run(self._load_cursor_key, read=False)
        self._apply = f"SELECT {s}.apply_change({', '.join(f'%s::{t}' for t in _APPLY_TYPES)})"
        self._get = f"SELECT body, owner FROM {s}.orders WHERE order_id = %s"
        page = (
            f"SELECT body, owner, created_us, order_id FROM {s}.orders"
            " WHERE customer_id = %s AND (created_us, order_id) > (%s, %s){}"
            " ORDER BY created_us, order_id LIMIT %s"
        )
        self._page_all = page.format("")
        self._page_owned = page.format(" AND owner = %s")
        self._get_record = (
            "SELECT key, fingerprint, status, body, order_id, version, expires_at, generation"
            f" FROM {s}.idempotency WHERE key = %s"
        )
        self._pending = (
            f"SELECT position, record, attempts FROM {s}.outbox"
            " WHERE delivered_at IS NULL ORDER BY position LIMIT %s"
        )
        self._delivered = (
            f"UPDATE {s}.outbox SET delivered_at = clock_timestamp()"
            " WHERE position = ANY(%s) AND delivered_at IS NULL"
        )
        self._failed = (
            f"UPDATE {s}.outbox SET attempts = attempts + 1, last_error = left(%s, 500),"
            " last_attempt_at = clock_timestamp() WHERE position = ANY(%s)"
        )

    def _load_cursor_key(self, conn: Connection) -> bytes:
        """A per-schema secret, so cursors survive restarts and hold on every replica. If
        two stores open a new schema together, the first one's key wins for both."""
        conn.execute(
            f"INSERT INTO {self.schema}.meta (name, value) VALUES ('cursor_key', %s)"
            " ON CONFLICT (name) DO NOTHING",
            (os.urandom(32).hex(),),
        )
        row = conn.execute(
            f"SELECT value FROM {self.schema}.meta WHERE name = 'cursor_key'"
        ).fetchone()
        assert row is not None
        return bytes.fromhex(row[0])

    def schema_version(self) -> int:
        return self.database.run(lambda conn: current_version(conn, self.schema) or 0, read=True)

    def close(self) -> None:
        self.database.close()

    # -- OrderStore --------------------------------------------------------------------

    def get(self, order_id: str) -> Order | None:
        if not storable(order_id):
            return None
        row = self.database.run(
            lambda conn: conn.execute(self._get, (order_id,)).fetchone(), read=True
        )
        return None if row is None else Order.model_validate_json(row[0]).owned_by(row[1])

    def list_by_customer(
        self,
        customer_id: str,
        *,
        limit: int = 20,
        cursor: str | None = None,
        owner: str | None = None,
    ) -> Page:
        after: tuple[object, object] = (-1, "")
        if cursor is not None:
            position = decode_cursor(cursor, self._cursor_key)
            after = (position.get("t"), position.get("id"))
            # Signed by us, so well-formed unless our key leaked; checked all the same, so
            # that no cursor can reach the database as anything but a bigint and a text.
            if type(after[0]) is not int or after[0] not in _BIGINT or type(after[1]) is not str:
                raise MalformedRequest("invalid pagination cursor")
        if not storable(customer_id) or (owner is not None and not storable(owner)):
            return Page([])
        params: tuple[object, ...] = (customer_id, *after, limit + 1)
        query = self._page_all
        if owner is not None:
            query, params = self._page_owned, (customer_id, *after, owner, limit + 1)
        rows = self.database.run(lambda conn: conn.execute(query, params).fetchall(), read=True)
        orders = [Order.model_validate_json(body).owned_by(who) for body, who, _, _ in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            _, _, last_us, last_id = rows[limit - 1]
            next_cursor = encode_cursor({"t": last_us, "id": last_id}, self._cursor_key)
        return Page(orders, next_cursor)

    def get_idempotency(self, key: str) -> IdempotencyRecord | None:
        if not storable(key):
            return None
        row = self.database.run(
            lambda conn: conn.execute(self._get_record, (key,)).fetchone(), read=True
        )
        if row is None:
            return None
        key, fp, status, body, order_id, version, expires_at, generation = row
        return IdempotencyRecord(
            key, fp, status, bytes(body), order_id, version, expires_at, generation
        )

    def commit(self, change: Change, *, now: datetime) -> None:
        """One ``apply_change`` call: one statement, one transaction, one round trip."""
        params = self.apply_params(change, now)
        self.database.run(lambda conn: conn.execute(self._apply, params), read=False)

    def apply_params(self, change: Change, now: datetime) -> tuple[object, ...]:
        """``apply_change``'s parameters for ``change`` (the command's note included)."""
        order, record = change.order, change.idempotency
        if not storable(order.owner):
            raise MalformedRequest("the caller's identity cannot be stored (NUL or invalid UTF-8)")
        keyed: tuple[Any, ...] = (None,) * 7
        if record is not None:
            keyed = (
                record.key,
                record.fingerprint,
                record.status,
                record.body,
                record.version,
                record.expires_at,
                record.generation,
            )
        return (
            order.order_id,
            order.customer_id,
            us_of(order.created_at),
            order.version,
            order.owner,
            change.order_json.decode(),
            change.expected_version,
            now,
            [e.id for e in change.events],
            [e.to_record_json() for e in change.events],
            *keyed,
            order.status.value,
            None if change.command is None else change.command.to_json(),
        )

    # -- Outbox ------------------------------------------------------------------------

    def pending(self, limit: int = 100) -> list[PendingEvent]:
        """Undelivered events in commit order, read on a pooled connection (any replica
        may look; publishing is the elected relay's: :mod:`orders_postgres.relay`)."""
        return self.database.run(lambda conn: self.pending_on(conn, limit), read=True)

    def pending_on(self, conn: Connection, limit: int) -> list[PendingEvent]:
        rows = conn.execute(self._pending, (limit,)).fetchall()
        return read_pending(rows)  # each row on its own: a corrupt one stops the list there

    def mark_delivered(self, positions: Sequence[int]) -> None:
        self.database.run(lambda conn: self.mark_delivered_on(conn, positions), read=False)

    def mark_delivered_on(self, conn: Connection, positions: Sequence[int]) -> None:
        if positions:
            conn.execute(self._delivered, (list(positions),))

    def mark_failed(self, positions: Sequence[int], error: str) -> None:
        self.database.run(lambda conn: self.mark_failed_on(conn, positions, error), read=False)

    def mark_failed_on(self, conn: Connection, positions: Sequence[int], error: str) -> None:
        if positions:
            conn.execute(self._failed, (error, list(positions)))

    def undelivered_count(self) -> int:
        """Committed events not yet published (the ``orders.outbox.undelivered`` gauge)."""
        query = f"SELECT count(*) FROM {self.schema}.outbox WHERE delivered_at IS NULL"
        row = self.database.run(lambda conn: conn.execute(query).fetchone(), read=True)
        assert row is not None
        return int(row[0])

    def outbox_entries(
        self, *, pending_only: bool = False, limit: int = 100
    ) -> list[dict[str, object]]:
        """Outbox rows with their delivery state, for ``orders-local events`` (the same
        fields as the SQLite store's)."""
        query = (
            "SELECT position, event_id, order_id, record, committed_at, delivered_at, attempts,"
            f" last_error FROM {self.schema}.outbox WHERE delivered_at IS NULL OR NOT %s"
            " ORDER BY position LIMIT %s"
        )
        rows = self.database.run(
            lambda conn: conn.execute(query, (pending_only, limit)).fetchall(), read=True
        )
        return [
            {
                "position": pos,
                "id": event_id,
                "type": event_type_of(rec),
                "orderId": order_id,
                "committedAt": committed.astimezone(UTC).isoformat(),
                "deliveredAt": delivered.astimezone(UTC).isoformat() if delivered else None,
                "attempts": attempts,
                "lastError": last_error,
            }
            for pos, event_id, order_id, rec, committed, delivered, attempts, last_error in rows
        ]

    def events_for(self, order_id: str) -> list[DomainEvent]:
        """Every event committed for ``order_id``, delivered or not (for tests)."""
        query = f"SELECT record FROM {self.schema}.outbox WHERE order_id = %s ORDER BY position"
        rows = self.database.run(
            lambda conn: conn.execute(query, (order_id,)).fetchall(), read=True
        )
        return [DomainEvent.from_record(json.loads(rec)) for (rec,) in rows]
