"""How one change becomes rows in a SQLite transaction: its statements, its checks, its
writes, and the values a unit of work or a group commit carries them in.

Checks come before the first write, so a refused change writes nothing; any later error
leaves the caller's transaction to roll back (docs/decisions/0004-sqlite-store.md).
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from orders_core.application import Change
from orders_core.errors import ConcurrencyConflict, DuplicateRequest, StoreUnavailable

_LIVE_KEY: Final = "SELECT 1 FROM idempotency WHERE key = ? AND expires_us > ?"
_INSERT_ORDER: Final = (
    "INSERT INTO orders (order_id, customer_id, created_us, version, owner, status, body)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_UPDATE_ORDER: Final = (
    "UPDATE orders SET version = ?, status = ?, body = ? WHERE order_id = ? AND version = ?"
)
_PUT_KEY: Final = (
    "INSERT OR REPLACE INTO idempotency"
    " (key, fingerprint, status, body, order_id, version, expires_us, generation)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_EVENT: Final = (
    "INSERT INTO outbox (event_id, order_id, record, committed_us, command) VALUES (?, ?, ?, ?, ?)"
)


class Unit:
    """One thread's unit of work: the connection its transaction runs on (begun by
    :meth:`SQLiteStore._begin` on the first change, or before the block), whether that
    connection came from the pool, and what spent the unit, if anything."""

    __slots__ = ("conn", "failure", "pooled")

    def __init__(self) -> None:
        self.conn: sqlite3.Connection | None = None
        self.pooled = False
        self.failure: BaseException | None = None


@dataclass(slots=True)
class Queued:
    """A change and its rows, serialized before any lock is taken."""

    change: Change
    now_us: int
    body: str
    events: list[tuple[str, str, str, int, str | None]]
    key: tuple[object, ...] | None
    done: bool = False
    error: BaseException | None = None

    @classmethod
    def of(cls, change: Change, now: datetime) -> Queued:
        order, record, now_us = change.order, change.idempotency, us_of(now)
        # The command rides on the change's first event: its timeline entry.
        note = None if change.command is None else change.command.to_json()
        events = [
            (e.id, order.order_id, e.to_record_json(), now_us, note if i == 0 else None)
            for i, e in enumerate(change.events)
        ]
        key = None
        if record is not None:
            key = (
                record.key,
                record.fingerprint,
                record.status,
                record.body,
                order.order_id,
                record.version,
                us_of(record.expires_at),
                record.generation,
            )
        return cls(change, now_us, change.order_json.decode(), events, key)


def us_of(moment: datetime) -> int:
    """Microseconds since the epoch: sortable, unlike ISO strings with optional fractions."""
    return int(moment.timestamp() * 1_000_000)


def from_us(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1_000_000, UTC)


def _conflict(change: Change) -> ConcurrencyConflict:
    return ConcurrencyConflict(
        f"order {change.order.order_id} is not at version {change.expected_version} any more"
    )


def apply_change(conn: sqlite3.Connection, item: Queued) -> None:
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
            us_of(order.created_at),
            order.version,
            order.owner,
            order.status.value,
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
            (order.version, order.status.value, item.body, order.order_id, change.expected_version),
        ).rowcount
        != 1
    ):
        item.error = _conflict(change)
        return
    if item.key is not None:
        conn.execute(_PUT_KEY, item.key)
    for event in item.events:
        conn.execute(_INSERT_EVENT, event)


def commit_group(
    connection: contextlib.AbstractContextManager[sqlite3.Connection], batch: list[Queued]
) -> None:
    """Changes queued by several threads, in one transaction on the connection: each item
    ends ``done`` with its ``error`` (a refusal, or StoreUnavailable when nothing committed,
    the connection's own failure included: a waiter must never wait for ever)."""
    try:
        with connection as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for item in batch:
                    apply_change(conn, item)  # a refused change writes nothing
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
