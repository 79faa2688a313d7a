"""SQLiteStore.unit_of_work: one thread's changes in one transaction, committed at the end.

The local server answers each turn of its loop inside one; these tests pin what it relies
on: changes are checked at once but durable only at the end, reads inside see them, a
refusal backs out only its own change, and a failure takes the whole unit back.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orders_core.application import Change, event_for
from orders_core.domain import LineItem, Order, OrderStatus
from orders_core.errors import ConcurrencyConflict, StoreBusy, StoreUnavailable
from orders_local.sqlite import SQLiteStore

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def placed(order_id: str, items: int = 1) -> Change:
    order = Order.place(
        order_id, [LineItem(sku=f"sku-{i}", quantity=1) for i in range(items)], None, NOW
    )
    return Change(order, 0, (event_for(order),))


def confirmed(order: Order, based_on: int) -> Change:
    new = order.transition(OrderStatus.CONFIRMED, NOW)
    return Change(new, based_on, (event_for(new),))


def seen_elsewhere(store: SQLiteStore, order_id: str) -> bool:
    """Whether another connection (another thread's) sees the order: committed or not."""
    found: list[bool] = []
    worker = threading.Thread(target=lambda: found.append(store.get(order_id) is not None))
    worker.start()
    worker.join(10)
    return found[0]


def test_changes_are_durable_only_when_the_unit_ends(store: SQLiteStore) -> None:
    with store.unit_of_work():
        store.commit(placed("a"), now=NOW)
        store.commit(placed("b"), now=NOW)
        assert not seen_elsewhere(store, "a")
    assert seen_elsewhere(store, "a")
    assert seen_elsewhere(store, "b")
    assert len(store.pending()) == 2


def test_reads_inside_a_unit_see_its_changes(store: SQLiteStore) -> None:
    with store.unit_of_work():
        change = placed("a")
        store.commit(change, now=NOW)
        read = store.get("a")
        assert read is not None
        assert read.version == 1
        store.commit(confirmed(read, 1), now=NOW)
        assert store.get("a").status is OrderStatus.CONFIRMED  # type: ignore[union-attr]


def test_a_refused_change_backs_out_alone(store: SQLiteStore) -> None:
    with store.unit_of_work():
        store.commit(placed("a"), now=NOW)
        with pytest.raises(ConcurrencyConflict):
            store.commit(placed("a"), now=NOW)  # "a" exists: version 0 is stale
        store.commit(placed("b"), now=NOW)
    assert store.get("a") is not None
    assert store.get("b") is not None
    assert [p.event.order_id for p in store.pending()] == ["a", "b"]


def test_an_exception_in_the_block_commits_nothing(store: SQLiteStore) -> None:
    def unit() -> None:
        with store.unit_of_work():
            store.commit(placed("a"), now=NOW)
            raise KeyError("boom")

    with pytest.raises(KeyError):
        unit()
    assert store.get("a") is None
    assert store.pending() == []


def test_a_failed_write_takes_the_whole_unit_back(store: SQLiteStore) -> None:
    refusals: list[StoreUnavailable] = []

    def unit() -> None:
        with store.unit_of_work():
            store.commit(placed("a"), now=NOW)
            conn = store._current_unit().conn  # type: ignore[union-attr]
            assert conn is not None
            (pages,) = conn.execute("PRAGMA page_count").fetchone()
            conn.execute(f"PRAGMA max_page_count = {pages}")  # the file cannot grow
            try:
                for i in range(1000):  # free pages left by the migrations run out first
                    store.commit(placed(f"big-{i}", items=100), now=NOW)
            except StoreUnavailable as refused:
                refusals.append(refused)
            try:
                store.commit(placed("c"), now=NOW)  # the unit is spent: nothing more joins
            except StoreUnavailable as refused:
                refusals.append(refused)
            conn.execute("PRAGMA max_page_count = 1073741823")

    with pytest.raises(StoreUnavailable):
        unit()
    assert len(refusals) == 2
    assert isinstance(refusals[0].__cause__, sqlite3.OperationalError)
    assert store.get("a") is None
    assert store.get("big-0") is None
    assert store.pending() == []
    store.commit(placed("d"), now=NOW)  # the store goes on
    assert store.get("d") is not None


def _events_fail_for(store: SQLiteStore, order_id: str) -> None:
    """After a change's order row is written, its event write fails (a stand-in for I/O)."""
    with store._connection() as conn:
        conn.execute(
            "CREATE TRIGGER fail_events BEFORE INSERT ON outbox"
            f" WHEN NEW.order_id = '{order_id}' BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
        )


def test_a_change_that_fails_halfway_leaves_nothing_in_a_unit(store: SQLiteStore) -> None:
    _events_fail_for(store, "bad")

    def unit() -> None:
        with store.unit_of_work():
            store.commit(placed("a"), now=NOW)
            store.commit(placed("bad"), now=NOW)

    with pytest.raises(StoreUnavailable):
        unit()
    assert store.get("bad") is None
    assert store.get("a") is None
    assert store.pending() == []


def test_a_change_that_fails_halfway_leaves_nothing_outside_a_unit(store: SQLiteStore) -> None:
    _events_fail_for(store, "bad")
    with pytest.raises(StoreUnavailable):
        store.commit(placed("bad"), now=NOW)
    assert store.get("bad") is None
    assert store.pending() == []
    store.commit(placed("a"), now=NOW)
    assert [p.event.order_id for p in store.pending()] == ["a"]


def test_other_threads_wait_for_the_unit_then_commit(store: SQLiteStore) -> None:
    done = threading.Event()

    def other() -> None:
        store.commit(placed("other"), now=NOW)
        done.set()

    with store.unit_of_work():
        store.commit(placed("mine"), now=NOW)
        worker = threading.Thread(target=other)
        worker.start()
        assert not done.wait(0.3)  # held behind the unit's transaction
    assert done.wait(10)
    worker.join(10)
    assert [p.event.order_id for p in store.pending()] == ["mine", "other"]


def test_a_unit_without_writes_takes_no_write_lock(store: SQLiteStore) -> None:
    with store.unit_of_work():
        assert store.get("nope") is None
        assert store._write_lock.acquire(timeout=1)
        store._write_lock.release()


def test_units_do_not_nest(store: SQLiteStore) -> None:
    with store.unit_of_work(), pytest.raises(RuntimeError), store.unit_of_work():
        pass  # pragma: no cover - never entered


def test_outbox_bookkeeping_inside_a_unit_joins_its_transaction(store: SQLiteStore) -> None:
    """How the server marks what its relay process delivered: in its turn's transaction."""
    store.commit(placed("a"), now=NOW)
    store.commit(placed("b"), now=NOW)
    (a, b) = store.pending()

    def unit(fail: bool) -> None:
        with store.unit_of_work():
            store.mark_delivered([a.position])
            store.mark_failed([b.position], "sink down")
            assert [p.event.order_id for p in store.pending()] == ["b"]  # seen inside
            if fail:
                raise KeyError("boom")

    with pytest.raises(KeyError):
        unit(fail=True)
    assert [(p.event.order_id, p.attempts) for p in store.pending()] == [("a", 0), ("b", 0)]
    unit(fail=False)
    assert [(p.event.order_id, p.attempts) for p in store.pending()] == [("b", 1)]


def test_pending_after_a_position_skips_what_was_published(store: SQLiteStore) -> None:
    for order_id in ("a", "b", "c"):
        store.commit(placed(order_id), now=NOW)
    first = store.pending()[0].position
    assert [p.event.order_id for p in store.pending(after=first)] == ["b", "c"]
    assert [p.event.order_id for p in store.pending(1, after=first)] == ["b"]


def test_the_unit_connection_goes_back_to_the_pool(store: SQLiteStore) -> None:
    with store.unit_of_work():
        store.commit(placed("a"), now=NOW)
    with store._connection() as conn:
        assert isinstance(conn, sqlite3.Connection)
        assert not conn.in_transaction


# -- begun without waiting (what an event loop runs itself) ------------------------------


def _lock_held_elsewhere(store: SQLiteStore) -> sqlite3.Connection:
    """Another connection (as another process would) holding the file's write lock."""
    holder = sqlite3.connect(store.path, isolation_level=None, timeout=0)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_a_unit_that_cannot_begin_at_once_is_store_busy_and_runs_nothing(
    store: SQLiteStore,
) -> None:
    holder = _lock_held_elsewhere(store)
    ran: list[int] = []
    with pytest.raises(StoreBusy), store.unit_of_work(wait=False):
        ran.append(1)  # pragma: no cover - never entered
    assert ran == []
    holder.execute("ROLLBACK")
    holder.close()
    with store.unit_of_work(wait=False):
        store.commit(placed("a"), now=NOW)
    assert store.get("a") is not None


def test_a_unit_another_thread_holds_makes_one_begun_without_waiting_store_busy(
    store: SQLiteStore,
) -> None:
    inside, leave = threading.Event(), threading.Event()

    def other() -> None:
        with store.unit_of_work():
            store.commit(placed("other"), now=NOW)
            inside.set()
            leave.wait(10)

    worker = threading.Thread(target=other)
    worker.start()
    assert inside.wait(10)
    with pytest.raises(StoreBusy), store.unit_of_work(wait=False):
        pass  # pragma: no cover - never entered
    leave.set()
    worker.join(10)
    with store.unit_of_work(wait=False):
        store.commit(placed("mine"), now=NOW)
    assert [p.event.order_id for p in store.pending()] == ["other", "mine"]


def test_a_unit_begun_without_waiting_holds_the_write_lock_from_its_start(
    store: SQLiteStore,
) -> None:
    with store.unit_of_work(wait=False):
        other = sqlite3.connect(store.path, isolation_level=None, timeout=0)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.close()
        store.commit(placed("a"), now=NOW)
        assert not seen_elsewhere(store, "a")
    assert seen_elsewhere(store, "a")


def test_a_commit_on_a_closed_store_is_refused_not_waited_for(tmp_path: Path) -> None:
    closed = SQLiteStore(tmp_path / "closed.db")
    closed.close()
    with pytest.raises(StoreUnavailable):
        closed.commit(placed("a"), now=NOW)  # outside a unit: the group commit path
    with pytest.raises(StoreUnavailable), closed.unit_of_work(wait=False):
        pass  # pragma: no cover - never entered
