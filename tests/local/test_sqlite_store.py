"""What the SQLite store promises beyond the contract: schema versions, WAL, two processes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orders_core.application import CREATE, Change, Command, OrderService, event_for
from orders_core.domain import LineItem, Order
from orders_local.sqlite import MIGRATIONS, SCHEMA_VERSION, SchemaTooNew, SQLiteStore

WRITER = """
import sys
from orders_core.application import CREATE
from orders_core.application import Command
from orders_core.application import http_key
from orders_core.application import OrderService
from orders_local.sqlite import SQLiteStore

store = SQLiteStore(sys.argv[1])
service = OrderService(store)
for i in range(int(sys.argv[3])):
    data = {"items": [{"sku": "a", "quantity": 1}], "customerId": "shared"}
    service.handle(Command(CREATE, "urn:test", f"{sys.argv[2]}-{i}", data),
                   idempotency_key=http_key(f"{sys.argv[2]}-{i}"))
    # Every process also replays one shared key: exactly one order may come of it.
    service.handle(Command(CREATE, "urn:test", "same", data),
                   idempotency_key=http_key("same"))
store.close()
"""


def test_a_new_file_gets_the_current_schema_in_wal_mode(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "o.db")
    assert store.schema_version() == SCHEMA_VERSION
    store.close()
    conn = sqlite3.connect(tmp_path / "o.db")
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


def test_reopening_keeps_data_and_cursors(tmp_path: Path) -> None:
    first = SQLiteStore(tmp_path / "o.db")
    service = OrderService(first)
    for i in range(3):
        service.handle(
            Command(
                CREATE,
                "t",
                str(i),
                {"items": [{"sku": "a", "quantity": 1}], "customerId": "c"},
            )
        )
    cursor = first.list_by_customer("c", limit=1).next_cursor
    first.close()
    second = SQLiteStore(tmp_path / "o.db")
    assert len(second.list_by_customer("c", limit=5, cursor=cursor).orders) == 2
    second.close()


def test_a_file_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "o.db")
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaTooNew, match="Upgrade"):
        SQLiteStore(tmp_path / "o.db")


def test_migrations_run_forward_from_an_empty_file(tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "o.db").close()  # user_version 0
    store = SQLiteStore(tmp_path / "o.db")
    assert store.schema_version() == SCHEMA_VERSION
    store.close()


def _us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _write_as_schema_2_and_3_did(conn: sqlite3.Connection, change: Change, now: datetime) -> None:
    """One row into the apply_change view, whose trigger did the checks and the writes."""
    order = change.order
    events = "[" + ",".join(e.to_record_json() for e in change.events) + "]"
    conn.execute(
        "INSERT INTO apply_change VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            order.order_id,
            order.customer_id,
            _us(order.created_at),
            order.version,
            change.order_json.decode(),
            change.expected_version,
            _us(now),
            events,
            *(None,) * 7,
        ),
    )


@pytest.mark.parametrize("old_version", [2, 3])
def test_an_older_file_migrates_with_its_orders_and_delivery_state(
    tmp_path: Path, old_version: int
) -> None:
    db = tmp_path / "o.db"
    conn = sqlite3.connect(db, isolation_level=None)
    for version, statements in enumerate(MIGRATIONS[:old_version], start=1):
        for statement in statements:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version={version}")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    old = [Order.place(f"o-{n}", [LineItem(sku="a", quantity=1)], "c-1", now) for n in (1, 2)]
    for order in old:
        _write_as_schema_2_and_3_did(conn, Change(order, 0, (event_for(order),)), now)
    conn.execute("UPDATE outbox SET delivered_us = 1 WHERE order_id = 'o-1'")
    conn.close()

    store = SQLiteStore(db)
    assert store.schema_version() == SCHEMA_VERSION == 6
    with store._connection() as conn:
        leftovers = conn.execute(
            "SELECT name FROM sqlite_schema WHERE name LIKE 'apply_change%'"
        ).fetchall()
    assert leftovers == []
    migrated = store.list_by_customer("c-1", limit=10).orders
    assert sorted(migrated, key=lambda o: o.order_id) == old
    # Rows from before owners were stored belong to the anonymous principal, as every
    # caller was then: a runtime without authentication still lists them.
    from orders_core.application import ANONYMOUS

    assert len(store.list_by_customer("c-1", limit=10, owner=ANONYMOUS.id).orders) == 2
    assert store.list_by_customer("c-1", limit=10, owner="jwt:someone").orders == []
    assert [p.event.order_id for p in store.pending()] == ["o-2"]
    third = OrderService(store).handle(
        Command(CREATE, "test", "e-3", {"items": [{"sku": "b", "quantity": 2}]})
    )
    pending = store.pending()
    assert [p.event.order_id for p in pending] == ["o-2", third.order_id]
    assert pending[0].position < pending[1].position
    # Schema 6: statuses were read out of the bodies; commands before it were not recorded.
    assert store.status_counts() == {"PENDING": 3, "CONFIRMED": 0, "FULFILLED": 0, "CANCELLED": 0}
    (old_entry,) = store.timeline("o-1")
    assert old_entry.command is None
    assert old_entry.delivery.state == "delivered"
    (new_entry,) = store.timeline(third.order_id)
    assert new_entry.command is not None
    assert new_entry.command.type == CREATE
    store.close()


@pytest.mark.slow
def test_two_processes_write_one_file_without_loss_or_duplicates(tmp_path: Path) -> None:
    db = str(tmp_path / "o.db")
    SQLiteStore(db).close()  # migrate once up front; the writers race on data, not schema
    per_process = 60
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, db, name, str(per_process)])
        for name in ("p1", "p2")
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    store = SQLiteStore(db)
    first = store.list_by_customer("shared", limit=100)
    orders = (
        first.orders + store.list_by_customer("shared", limit=100, cursor=first.next_cursor).orders
    )
    assert len(orders) == 2 * per_process + 1
    assert len({o.order_id for o in orders}) == len(orders)
    assert len(store.pending(limit=1000)) == len(orders)
    store.close()


def test_checkpoints_run_in_the_background_not_in_commits(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "o.db")
    service = OrderService(store)
    main_file = tmp_path / "o.db"
    before = main_file.stat().st_size
    for n in range(200):  # ~1,000 WAL frames: below the backstop, so SQLite leaves them
        service.handle(Command(CREATE, "test", f"e-{n}", {"items": [{"id": "a", "qty": 1}]}))
    deadline = time.monotonic() + 10
    while main_file.stat().st_size <= before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert main_file.stat().st_size > before  # pages copied back by the checkpoint thread
    store.close()
    assert not any(t.name == "sqlite-checkpoint" and t.is_alive() for t in threading.enumerate())


def test_without_background_checkpoints_no_thread_runs(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "o.db", background_checkpoints=False)
    assert store._checkpointer is None
    frames, done = store.checkpoint()
    assert frames == done
    store.close()
