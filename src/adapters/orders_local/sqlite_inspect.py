"""What the console reads of a SQLite file, and the redelivery requests it records.

A mixin of :class:`orders_local.sqlite.SQLiteStore` (which owns the connections), as the
outbox is. Newest first means commit order backwards: the ``orders`` table's rowid, which
grows with every insert (rows are never deleted) and costs no index. Schema 6 added what
these reads need (:mod:`orders_local.sqlite_schema`).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from datetime import datetime
from typing import Any, Final

from orders_core.application import (
    Delivery,
    OrderBrowser,
    OutboxInspector,
    OutboxSummary,
    Page,
    RedeliveryRequest,
    TimelineEntry,
    decode_cursor,
    encode_cursor,
)
from orders_core.domain import Order, OrderStatus
from orders_core.errors import MalformedRequest, NotFound, NotRedeliverable
from orders_local.sqlite_writes import from_us, us_of

SCAN_WINDOW: Final = 2_000
"""Most rows one status-filtered page reads: a rare status costs pages that come back short
(with a cursor leading on), never a scan of the whole table."""

_DELIVERY: Final = (
    "o.position, o.event_id, o.record, o.committed_us, o.delivered_us, o.attempts,"
    " o.last_error, o.last_attempt_us, o.command,"
    " (SELECT max(r.requested_us) FROM redeliveries r WHERE r.position = o.position)"
)

Row = tuple[int, str, str, int, int | None, int, str | None, int | None, str | None, int | None]


def _delivery(row: Row) -> tuple[Delivery, dict[str, Any] | None]:
    """The row's delivery, and its record (None when it cannot be read: the row is shown
    as a corrupt record, with its position and event id, rather than failing the page)."""
    position, event_id, record_text, committed, delivered, attempts, error, tried, _, asked = row
    state: dict[str, Any] = {
        "committed_at": from_us(committed),
        "delivered_at": from_us(delivered) if delivered is not None else None,
        "attempts": attempts,
        "last_error": error,
        "last_attempt_at": from_us(tried) if tried is not None else None,
        "redelivery_requested_at": from_us(asked) if asked is not None else None,
    }
    try:
        record = json.loads(record_text)
        return Delivery.of_record(position, event_id, record, **state), record
    except (ValueError, KeyError, TypeError) as exc:
        return Delivery.of_corrupt(
            position, event_id, f"{type(exc).__name__}: {exc}", **state
        ), None


class SQLiteInspection(OrderBrowser, OutboxInspector):
    """The console's ports on the file's ``orders``, ``outbox`` and ``redeliveries``."""

    _cursor_key: bytes

    def _connection(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _bookkeeping(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    # -- OrderBrowser ------------------------------------------------------------------

    def browse(
        self,
        *,
        status: str | None = None,
        customer_id: str | None = None,
        owner: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> Page:
        before = self._before(cursor)
        where: list[str] = ["rowid < ?"]
        params: list[object] = [before]
        for column, value in (("customer_id", customer_id), ("owner", owner)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = " AND ".join(where)  # fixed column names; every value is a parameter
        with self._connection() as conn:
            if status is None or customer_id is not None:
                # One customer's orders come from its index: few enough to filter them all.
                if status is not None:
                    sql += " AND status = ?"
                    params.append(status)
                rows = conn.execute(
                    f"SELECT rowid, body, owner FROM orders WHERE {sql}"  # noqa: S608
                    " ORDER BY rowid DESC LIMIT ?",
                    (*params, limit + 1),
                ).fetchall()
                return self._page(rows, limit, window_end=None)
            window = conn.execute(
                f"SELECT rowid, body, owner, status FROM orders WHERE {sql}"  # noqa: S608
                " ORDER BY rowid DESC LIMIT ?",
                (*params, SCAN_WINDOW),
            ).fetchall()
        matching = [(rowid, body, who) for rowid, body, who, found in window if found == status]
        window_end = window[-1][0] if len(window) == SCAN_WINDOW else None
        return self._page(matching, limit, window_end=window_end)

    def _before(self, cursor: str | None) -> int:
        if cursor is None:
            return 1 << 62
        position = decode_cursor(cursor, self._cursor_key)
        rowid = position.get("r")
        if not isinstance(rowid, int) or isinstance(rowid, bool) or rowid < 1:
            raise MalformedRequest("invalid pagination cursor")
        return rowid

    def _page(
        self, rows: list[tuple[int, str, str]], limit: int, *, window_end: int | None
    ) -> Page:
        orders = [Order.model_validate_json(body).owned_by(who) for _, body, who in rows[:limit]]
        # More matches than fit, or a full window read: older rows remain, so a cursor.
        resume = rows[limit - 1][0] if len(rows) > limit else window_end
        next_cursor = None if resume is None else encode_cursor({"r": resume}, self._cursor_key)
        return Page(orders, next_cursor)

    def status_counts(self, *, customer_id: str | None = None) -> dict[str, int]:
        counts = dict.fromkeys((s.value for s in OrderStatus), 0)
        where, params = ("WHERE customer_id = ?", (customer_id,)) if customer_id else ("", ())
        with self._connection() as conn:
            rows = conn.execute(
                f"SELECT status, count(*) FROM orders {where} GROUP BY status",  # noqa: S608
                params,
            ).fetchall()
        counts.update({str(status): int(n) for status, n in rows if status is not None})
        return counts

    # -- OutboxInspector ---------------------------------------------------------------

    def timeline(self, order_id: str) -> list[TimelineEntry]:
        with self._connection() as conn:
            rows = conn.execute(
                f"SELECT {_DELIVERY} FROM outbox o WHERE o.order_id = ?"  # noqa: S608
                " ORDER BY o.position",
                (order_id,),
            ).fetchall()
        entries = []
        for row in rows:
            delivery, record = _delivery(row)
            try:
                entries.append(TimelineEntry.of(delivery, record, row[8]))
            except (ValueError, KeyError, TypeError):  # a record without the order's state
                entries.append(TimelineEntry.of(delivery, None, row[8]))
        return entries

    def undelivered(
        self, *, failed_only: bool = False, after: int = 0, limit: int = 50
    ) -> list[Delivery]:
        failed = " AND o.attempts > 0" if failed_only else ""
        with self._connection() as conn:
            rows = conn.execute(
                f"SELECT {_DELIVERY} FROM outbox o"  # noqa: S608 - fixed text
                f" WHERE o.delivered_us IS NULL AND o.position > ?{failed}"
                " ORDER BY o.position LIMIT ?",
                (after, limit),
            ).fetchall()
        return [_delivery(row)[0] for row in rows]

    def summary(self) -> OutboxSummary:
        with self._connection() as conn:
            waiting, failed, oldest = conn.execute(
                "SELECT count(*), coalesce(sum(attempts > 0), 0), min(committed_us)"
                " FROM outbox WHERE delivered_us IS NULL"
            ).fetchone()
            last = conn.execute(
                "SELECT committed_us, delivered_us FROM outbox WHERE delivered_us IS NOT NULL"
                " ORDER BY position DESC LIMIT 1"
            ).fetchone()
        return OutboxSummary(
            undelivered=int(waiting),
            failed=int(failed),
            oldest_undelivered_at=from_us(oldest) if oldest is not None else None,
            last_delivered_at=from_us(last[1]) if last else None,
            last_delivery_lag=(last[1] - last[0]) / 1e6 if last else None,
        )

    def request_redelivery(
        self, event_id: str, *, requested_by: str, now: datetime
    ) -> RedeliveryRequest:
        order_id, _, version = event_id.rpartition(".v")
        if not order_id or not version.isdigit():
            raise NotFound(f"no event {event_id!r}")
        with self._bookkeeping() as conn:  # read and write in one write transaction
            row = conn.execute(
                "SELECT position, delivered_us, attempts FROM outbox"
                " WHERE order_id = ? AND event_id = ?",
                (order_id, event_id),
            ).fetchone()
            if row is None:
                raise NotFound(f"no event {event_id!r}")
            position, delivered, attempts = row
            if delivered is not None:
                raise NotRedeliverable(f"event {event_id} was delivered already")
            if attempts == 0:
                raise NotRedeliverable(f"event {event_id} has not failed: it waits its turn")
            open_request = conn.execute(
                "SELECT request_id, requested_us, requested_by FROM redeliveries"
                " WHERE position = ? AND attempts_before = ? ORDER BY request_id DESC LIMIT 1",
                (position, attempts),
            ).fetchone()
            if open_request is not None:
                request_id, asked, who = open_request
                return RedeliveryRequest(request_id, event_id, from_us(asked), who, created=False)
            cursor = conn.execute(
                "INSERT INTO redeliveries (position, requested_us, requested_by, attempts_before)"
                " VALUES (?, ?, ?, ?)",
                (position, us_of(now), requested_by, attempts),
            )
            assert cursor.lastrowid is not None
            return RedeliveryRequest(cursor.lastrowid, event_id, now, requested_by)
