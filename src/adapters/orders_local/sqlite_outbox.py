"""The SQLite outbox table's reads and delivery bookkeeping, for the relay and the CLI.

A mixin of :class:`orders_local.sqlite.SQLiteStore`, which owns the connections: reads go
through ``_connection``; marks go through ``_bookkeeping``, the open unit of work's
transaction when there is one (the server marks what its relay process delivered in its own
turn), else a write transaction of their own.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime

from orders_core.application import Outbox, PendingEvent, event_type_of, read_pending
from orders_core.domain import DomainEvent
from orders_local.sqlite_writes import from_us, us_of


class SQLiteOutbox(Outbox):
    """The ``outbox`` table as the core's :class:`~orders_core.application.Outbox`."""

    def _connection(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _bookkeeping(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def pending(self, limit: int = 100, *, after: int = 0) -> list[PendingEvent]:
        """Undelivered events in commit order, up to the first that cannot be read (raises
        :class:`~orders_core.application.CorruptEntry` when it comes first); ``after``
        skips positions up to it (a relay process's own record of what it published and
        the server has yet to mark)."""
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT position, record, attempts FROM outbox"
                " WHERE delivered_us IS NULL AND position > ? ORDER BY position LIMIT ?",
                (after, limit),
            ).fetchall()
        return read_pending(rows)  # each row on its own: a corrupt one stops the list there

    def undelivered_count(self) -> int:
        """Committed events not yet published (the ``orders.outbox.undelivered`` gauge)."""
        with self._connection() as conn:
            (count,) = conn.execute(
                "SELECT count(*) FROM outbox WHERE delivered_us IS NULL"
            ).fetchone()
        return int(count)

    def mark_delivered(self, positions: Sequence[int]) -> None:
        now = us_of(datetime.now(UTC))
        with self._bookkeeping() as conn:
            conn.executemany(
                "UPDATE outbox SET delivered_us = ? WHERE position = ? AND delivered_us IS NULL",
                [(now, p) for p in positions],
            )

    def mark_failed(self, positions: Sequence[int], error: str) -> None:
        now = us_of(datetime.now(UTC))
        with self._bookkeeping() as conn:
            conn.executemany(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, last_attempt_us = ?"
                " WHERE position = ?",
                [(error[:500], now, p) for p in positions],
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
                "type": event_type_of(rec),
                "orderId": order_id,
                "committedAt": from_us(committed).isoformat(),
                "deliveredAt": from_us(delivered).isoformat() if delivered else None,
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
