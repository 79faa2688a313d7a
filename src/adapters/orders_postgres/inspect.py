"""What the console reads of a PostgreSQL schema, and the redelivery requests it records.

A mixin of :class:`orders_postgres.store.PostgresStore` (which owns the pool), as
:mod:`orders_local.sqlite_inspect` is of the SQLite store. Schema 2
(:mod:`orders_postgres.schema`) added what these reads need: ``orders.status`` and
``orders.seq`` (insertion order, SQLite's rowid: newest first), the command note on each
change's first outbox row (written by ``apply_change`` in the same statement),
``outbox.last_attempt_at``, ``outbox_by_order`` and ``redeliveries``. Every read is one
statement on a pooled connection through :meth:`Database.run
<orders_postgres.driver.Database.run>`, where psycopg's errors are translated; cursors are
signed with the schema's cursor key, as the store's listing is.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
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
from orders_postgres.driver import Connection, Database, storable

SCAN_WINDOW: Final = 2_000
"""Most rows one status-filtered page reads (as on SQLite): a rare status costs pages that
come back short (with a cursor leading on), never a scan of the whole table."""
_TOP: Final = 1 << 62
_DELIVERY: Final = (
    "o.position, o.event_id, o.record, o.committed_at, o.delivered_at, o.attempts,"
    " o.last_error, o.last_attempt_at, o.command,"
    " (SELECT max(r.requested_at) FROM {s}.redeliveries r WHERE r.position = o.position)"
)

Row = tuple[Any, ...]


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC)


def _delivery(row: Row) -> tuple[Delivery, dict[str, Any] | None]:
    """The row's delivery, and its record (None when it cannot be read: the row is shown
    as a corrupt record, with its position and event id, rather than failing the page)."""
    position, event_id, record_text, committed, delivered, attempts, error, tried, _, asked = row
    state: dict[str, Any] = {
        "committed_at": committed.astimezone(UTC),
        "delivered_at": _utc(delivered),
        "attempts": attempts,
        "last_error": error,
        "last_attempt_at": _utc(tried),
        "redelivery_requested_at": _utc(asked),
    }
    try:
        record = json.loads(record_text)
        return Delivery.of_record(position, event_id, record, **state), record
    except (ValueError, KeyError, TypeError) as exc:
        reason = f"{type(exc).__name__}: {exc}"
        return Delivery.of_corrupt(position, event_id, reason, **state), None


class PostgresInspection(OrderBrowser, OutboxInspector):
    """The console's ports on the schema's ``orders``, ``outbox`` and ``redeliveries``."""

    database: Database
    schema: str
    _cursor_key: bytes

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
        if any(v is not None and not storable(v) for v in (status, customer_id, owner)):
            return Page([])  # no stored value can match it
        s = self.schema
        where: list[str] = ["seq < %s"]
        params: list[object] = [before]
        for column, value in (("customer_id", customer_id), ("owner", owner)):
            if value is not None:
                where.append(f"{column} = %s")
                params.append(value)
        if status is None or customer_id is not None:
            # One customer's orders come from its index: few enough to filter them all.
            if status is not None:
                where.append("status = %s")
                params.append(status)
            query = (
                f"SELECT seq, body, owner FROM {s}.orders WHERE {' AND '.join(where)}"
                " ORDER BY seq DESC LIMIT %s"
            )
            rows = self._read(query, (*params, limit + 1))
            return self._page(rows, limit, window_end=None)
        # A status across every order: look at most SCAN_WINDOW rows back, in one statement
        # that also says where the window ended (its one row of totals comes first).
        query = (
            f"WITH w AS MATERIALIZED (SELECT seq, status FROM {s}.orders"
            f" WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT %s)"
            " SELECT 0, min(seq), count(*)::text, NULL::text FROM w"
            " UNION ALL"
            f" (SELECT 1, o.seq, o.body, o.owner FROM w JOIN {s}.orders o ON o.seq = w.seq"
            "   WHERE w.status = %s ORDER BY w.seq DESC LIMIT %s)"
            " ORDER BY 1, 2 DESC"
        )
        rows = self._read(query, (*params, SCAN_WINDOW, status, limit + 1))
        (_, last, seen, _), matching = rows[0], [row[1:] for row in rows[1:]]
        window_end = last if int(seen) == SCAN_WINDOW else None
        return self._page(matching, limit, window_end=window_end)

    def _read(self, query: str, params: tuple[object, ...]) -> list[Row]:
        return self.database.run(lambda conn: conn.execute(query, params).fetchall(), read=True)

    def _before(self, cursor: str | None) -> int:
        if cursor is None:
            return _TOP
        position = decode_cursor(cursor, self._cursor_key)
        seq = position.get("r")
        if type(seq) is not int or not 0 < seq <= _TOP:
            raise MalformedRequest("invalid pagination cursor")
        return seq

    def _page(self, rows: list[Row], limit: int, *, window_end: int | None) -> Page:
        orders = [Order.model_validate_json(body).owned_by(who) for _, body, who in rows[:limit]]
        # More matches than fit, or a full window read: older rows remain, so a cursor.
        resume = rows[limit - 1][0] if len(rows) > limit else window_end
        next_cursor = None if resume is None else encode_cursor({"r": resume}, self._cursor_key)
        return Page(orders, next_cursor)

    def status_counts(self, *, customer_id: str | None = None) -> dict[str, int]:
        counts = dict.fromkeys((s.value for s in OrderStatus), 0)
        if customer_id is not None and not storable(customer_id):
            return counts
        query = f"SELECT status, count(*) FROM {self.schema}.orders"
        params: tuple[object, ...] = ()
        if customer_id is not None:
            query, params = query + " WHERE customer_id = %s", (customer_id,)
        rows = self._read(query + " GROUP BY status", params)
        counts.update({str(status): int(n) for status, n in rows if status is not None})
        return counts

    # -- OutboxInspector ---------------------------------------------------------------

    def timeline(self, order_id: str) -> list[TimelineEntry]:
        if not storable(order_id):
            return []
        s = self.schema
        rows = self._read(
            f"SELECT {_DELIVERY.format(s=s)} FROM {s}.outbox o WHERE o.order_id = %s"
            " ORDER BY o.position",
            (order_id,),
        )
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
        s = self.schema
        failed = " AND o.attempts > 0" if failed_only else ""
        rows = self._read(
            f"SELECT {_DELIVERY.format(s=s)} FROM {s}.outbox o"
            f" WHERE o.delivered_at IS NULL AND o.position > %s{failed}"
            " ORDER BY o.position LIMIT %s",
            (after, limit),
        )
        return [_delivery(row)[0] for row in rows]

    def summary(self) -> OutboxSummary:
        s = self.schema

        def read(conn: Connection) -> tuple[Row, Row | None]:
            waiting = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE attempts > 0), min(committed_at)"
                f" FROM {s}.outbox WHERE delivered_at IS NULL"
            ).fetchone()
            last = conn.execute(
                f"SELECT committed_at, delivered_at FROM {s}.outbox"
                " WHERE delivered_at IS NOT NULL ORDER BY position DESC LIMIT 1"
            ).fetchone()
            assert waiting is not None
            return waiting, last

        (count, failed, oldest), last = self.database.run(read, read=True)
        return OutboxSummary(
            undelivered=int(count),
            failed=int(failed),
            oldest_undelivered_at=_utc(oldest),
            last_delivered_at=_utc(last[1]) if last else None,
            last_delivery_lag=(last[1] - last[0]).total_seconds() if last else None,
        )

    def request_redelivery(
        self, event_id: str, *, requested_by: str, now: datetime
    ) -> RedeliveryRequest:
        order_id, _, version = event_id.rpartition(".v")
        if not order_id or not version.isdigit() or not storable(event_id):
            raise NotFound(f"no event {event_id!r}")
        s = self.schema

        def record(conn: Connection) -> RedeliveryRequest:
            # One transaction; the event's row locked, so two requests for it take turns
            # (and the unique (position, attempts_before) holds even if they did not).
            with conn.transaction():
                row = conn.execute(
                    f"SELECT position, delivered_at, attempts FROM {s}.outbox"
                    " WHERE order_id = %s AND event_id = %s FOR UPDATE",
                    (order_id, event_id),
                ).fetchone()
                if row is None:
                    raise NotFound(f"no event {event_id!r}")
                position, delivered, attempts = row
                if delivered is not None:
                    raise NotRedeliverable(f"event {event_id} was delivered already")
                if attempts == 0:
                    raise NotRedeliverable(f"event {event_id} has not failed: it waits its turn")
                found = conn.execute(
                    f"SELECT request_id, requested_at, requested_by FROM {s}.redeliveries"
                    " WHERE position = %s AND attempts_before = %s",
                    (position, attempts),
                ).fetchone()
                if found is not None:
                    request_id, asked, who = found
                    return RedeliveryRequest(
                        request_id, event_id, asked.astimezone(UTC), who, created=False
                    )
                made = conn.execute(
                    f"INSERT INTO {s}.redeliveries"
                    " (position, requested_at, requested_by, attempts_before)"
                    " VALUES (%s, %s, %s, %s) RETURNING request_id",
                    (position, now, requested_by, attempts),
                ).fetchone()
                assert made is not None
                return RedeliveryRequest(int(made[0]), event_id, now, requested_by)

        return self.database.run(record, read=False)
