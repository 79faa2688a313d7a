"""Driver errors become core errors in one place: what is retried, what is a 503, what an
unknown outcome does, and hostile values that never reach SQL as anything but values."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from orders_core.application import Change, event_for
from orders_core.domain import LineItem, Order, OrderStatus
from orders_core.errors import ConcurrencyConflict, MalformedRequest, StoreUnavailable
from tests.postgres.support import Postgres, pgbouncer

psycopg = pytest.importorskip("psycopg")

from orders_postgres import driver  # noqa: E402
from orders_postgres.driver import Connection, Database  # noqa: E402
from orders_postgres.store import PostgresStore  # noqa: E402


@pytest.fixture
def store(postgres: Postgres) -> Iterator[PostgresStore]:
    s = postgres.store()
    try:
        yield s
    finally:
        s.close()
        postgres.drop(s.schema)


def _order(order_id: str = "o-1", owner: str = "jwt:alice") -> Order:
    items = [LineItem(sku="sku-1", quantity=1)]
    return Order.place(order_id, items, "c-1", datetime.now(UTC), owner)


def _create(store: PostgresStore, order: Order) -> None:
    store.commit(Change(order, 0, (event_for(order),)), now=datetime.now(UTC))


class Flaky:
    """An operation that raises SQLSTATE ``code`` on its first ``times`` runs."""

    def __init__(self, code: str, times: int = 1) -> None:
        self.code, self.times, self.runs = code, times, 0

    def __call__(self, conn: Connection) -> int:
        self.runs += 1
        if self.runs <= self.times:
            raise_it = f"RAISE EXCEPTION 'injected' USING ERRCODE = '{self.code}'"
            conn.execute(f"DO $$ BEGIN {raise_it}; END $$")
        return self.runs


@pytest.mark.parametrize("code", ["40001", "40P01"])  # serialization failure, deadlock
@pytest.mark.parametrize("read", [True, False])
def test_a_rolled_back_statement_runs_again(store: PostgresStore, code: str, read: bool) -> None:
    flaky = Flaky(code)
    assert store.database.run(flaky, read=read) == 2


def test_a_statement_rolled_back_every_time_is_503(store: PostgresStore) -> None:
    flaky = Flaky("40001", times=99)
    with pytest.raises(StoreUnavailable):
        store.database.run(flaky, read=False)
    assert flaky.runs == driver.ATTEMPTS


def _terminate_self_once(state: dict[str, int]) -> object:
    def operation(conn: Connection) -> object:
        state["runs"] = state.get("runs", 0) + 1
        if state["runs"] == 1:
            conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return conn.execute("SELECT 1").fetchone()

    return operation


def test_a_read_that_lost_its_connection_runs_again_on_another(store: PostgresStore) -> None:
    state: dict[str, int] = {}
    assert store.database.run(_terminate_self_once(state), read=True) == (1,)  # type: ignore[arg-type]
    assert state["runs"] == 2


def test_a_write_that_lost_its_connection_is_503_and_never_run_twice(
    store: PostgresStore,
) -> None:
    state: dict[str, int] = {}
    with pytest.raises(StoreUnavailable):
        store.database.run(_terminate_self_once(state), read=False)  # type: ignore[arg-type]
    assert state["runs"] == 1  # its outcome is unknown: the caller decides, not the driver
    assert store.get("anything") is None  # and the pool has a working connection again


def test_a_commit_whose_session_is_killed_is_503_and_leaves_the_order_as_it_was(
    postgres: Postgres, store: PostgresStore
) -> None:
    order = _order()
    _create(store, order)
    confirmed = order.transition(OrderStatus.CONFIRMED, datetime.now(UTC))
    outcome: list[BaseException | None] = []
    with psycopg.connect(postgres.url) as holder:  # holds the order's row lock
        holder.execute(f"SELECT 1 FROM {store.schema}.orders WHERE order_id = 'o-1' FOR UPDATE")

        def commit() -> None:
            try:
                change = Change(confirmed, 1, (event_for(confirmed),))
                store.commit(change, now=datetime.now(UTC))
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)

        worker = threading.Thread(target=commit)
        worker.start()
        waiting: list[tuple[object, ...]] = []
        for _ in range(100):  # the commit waits for the row lock
            waiting = postgres.sql(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
                f"%{store.schema}.apply_change%",
            )
            if waiting:
                break
            time.sleep(0.02)
        assert waiting, "the commit never waited for the lock"
        postgres.sql("SELECT pg_terminate_backend(%s)", waiting[0][0])
        worker.join(10)
    assert isinstance(outcome[0], StoreUnavailable), outcome
    read = store.get("o-1")
    assert read is not None
    assert read.version == 1
    assert len(store.events_for("o-1")) == 1


def test_a_commit_waiting_past_the_lock_timeout_is_503_and_writes_nothing(
    postgres: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(driver, "LOCK_TIMEOUT_MS", 200)
    store = postgres.store()
    try:
        from orders_postgres.schema import lock_key

        with psycopg.connect(postgres.url) as holder:  # another writer inside its commit
            holder.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(store.schema, "outbox"),))
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                _create(store, _order())
            assert time.monotonic() - started < 3
        assert store.get("o-1") is None  # the order went with the statement
        _create(store, _order())  # and the next commit, the lock free, succeeds
        assert store.get("o-1") is not None
    finally:
        store.close()
        postgres.drop(store.schema)


def test_no_free_connection_in_time_is_503(postgres: Postgres) -> None:
    database = Database(postgres.url, min_size=1, max_size=1, timeout=0.3)
    database.open()
    try:
        with database.pool.connection():  # the only connection, busy
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="free in time"):
                database.run(lambda conn: conn.execute("SELECT 1"), read=True)
            assert time.monotonic() - started < 2
    finally:
        database.close()


def test_a_read_only_server_is_503_and_its_connections_are_dropped(postgres: Postgres) -> None:
    store = postgres.store(min_size=1, max_size=1)

    def _writable_again() -> None:
        with psycopg.connect(postgres.url, autocommit=True) as conn:
            conn.execute("SET default_transaction_read_only = off")
            conn.execute("ALTER ROLE CURRENT_USER RESET default_transaction_read_only")

    try:
        # What a client of a failed-over primary meets: its server now refuses writes.
        role = postgres.sql("SELECT current_user")[0][0]
        postgres.sql(f"ALTER ROLE {role} SET default_transaction_read_only = on")
        store.database.pool.drain()  # new sessions pick the setting up
        with pytest.raises(StoreUnavailable):
            _create(store, _order())
        _writable_again()
        # Each read-only session is closed when it refuses a write, never pooled again: at
        # most the one the pool opened before the reset refuses once more.
        for attempt in range(2):
            try:
                _create(store, _order())
                break
            except StoreUnavailable:
                assert attempt == 0
        assert store.get("o-1") is not None
    finally:
        _writable_again()
        store.close()
        postgres.drop(store.schema)


def test_the_server_restarting_is_503_then_recovers_without_reopening(
    postgres: Postgres,
) -> None:
    server = postgres.restartable()
    store = postgres.store(min_size=4, max_size=4, timeout=1.0)
    try:
        _create(store, _order("before"))
        server.stop()
        with pytest.raises(StoreUnavailable):
            _create(store, _order("while-down"))
        with pytest.raises(StoreUnavailable):
            store.get("before")
        server.start()
        # Every pooled connection died with the old server; the checkout probe drops them
        # without a round trip, so the first call after the restart already succeeds.
        assert store.get("before") is not None
        _create(store, _order("after"))
        assert store.get("while-down") is None
        assert [e.order_id for e in store.events_for("after")] == ["after"]
    finally:
        store.close()
        postgres.drop(store.schema)


# -- hostile values --------------------------------------------------------------------------

HOSTILE = [
    "o-1'; DROP TABLE orders; --",
    "o-1\x00",
    "\x00",
    "o-\ud800",  # a lone surrogate: not UTF-8
    "o-1' OR '1'='1",
    "%s",
    "$1",
    "x" * 10_000,
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_ids_and_customers_match_nothing_and_break_nothing(
    store: PostgresStore, value: str
) -> None:
    _create(store, _order())
    assert store.get(value) is None
    assert store.get_idempotency(value) is None
    assert store.list_by_customer(value).orders == []
    assert store.list_by_customer("c-1", owner=value).orders == []
    assert store.get("o-1") is not None  # the table is intact


def test_an_sql_ish_order_id_is_stored_as_it_is(store: PostgresStore) -> None:
    _create(store, _order("o'); DELETE FROM orders; --"))
    _create(store, _order("o-2"))
    read = store.get("o'); DELETE FROM orders; --")
    assert read is not None
    assert read.order_id == "o'); DELETE FROM orders; --"
    assert store.get("o-2") is not None


def test_an_owner_postgres_cannot_store_is_refused_and_writes_nothing(
    store: PostgresStore,
) -> None:
    with pytest.raises(MalformedRequest):
        _create(store, _order(owner="jwt:5:https|ali\x00ce"))
    assert store.get("o-1") is None
    assert store.pending() == []


@pytest.mark.parametrize(
    "cursor",
    ["", "x", "a.b", "a" * 5000 + ".b", "e30.AAAAAAAAAAAAAAAAAAAAAA", "..", "\x00.\x00"],
)
def test_malformed_and_oversized_cursors_are_400(store: PostgresStore, cursor: str) -> None:
    with pytest.raises(MalformedRequest):
        store.list_by_customer("c-1", cursor=cursor)


def test_a_cursor_signed_for_another_schema_is_refused(
    postgres: Postgres, store: PostgresStore
) -> None:
    other = postgres.store()
    try:
        for i in range(3):
            _create(other, _order(f"o-{i}"))
        cursor = other.list_by_customer("c-1", limit=1).next_cursor
        assert cursor is not None
        with pytest.raises(MalformedRequest):
            store.list_by_customer("c-1", cursor=cursor)
    finally:
        other.close()
        postgres.drop(other.schema)


def test_a_stale_create_is_a_conflict_not_a_driver_error(store: PostgresStore) -> None:
    _create(store, _order())
    with pytest.raises(ConcurrencyConflict, match="o-1"):
        _create(store, _order())


def test_without_prepares_nothing_relies_on_statements_prepared_on_the_server(
    postgres: Postgres,
) -> None:
    """Behind a transaction pooler the next transaction may land on a server session that
    lacks what this connection prepared: DEALLOCATE ALL on the session, behind psycopg's
    back, does that to it. Pool (requests) and own connections (relay, LISTEN) alike."""
    store = postgres.store(min_size=1, max_size=1, prepare=False)
    try:
        for n in range(7):  # past psycopg's default threshold of 5 runs
            _create(store, _order(f"o-{n}"))
            assert store.get(f"o-{n}") is not None
        store.database.run(lambda conn: conn.pgconn.exec_(b"DEALLOCATE ALL"), read=False)
        _create(store, _order("o-7"))
        assert store.get("o-7") is not None
        assert len(store.list_by_customer("c-1", limit=10).orders) == 8
        with store.database.connect() as own:
            for _ in range(7):
                own.execute("SELECT %s::int", (1,))
            own.pgconn.exec_(b"DEALLOCATE ALL")
            assert own.execute("SELECT %s::int", (1,)).fetchone() == (1,)
    finally:
        store.close()
        postgres.drop(store.schema)


@pytest.mark.slow
def test_the_request_pool_works_through_a_transaction_pooler(postgres: Postgres) -> None:
    """PgBouncer in transaction mode, prepares off: 8 threads' creates and reads share 2
    server sessions."""
    from orders_core.application import CREATE, Command, OrderService

    schema = postgres.new_schema()
    postgres.store(schema).close()  # migrated on the server itself
    with pgbouncer(postgres) as url:
        store = Postgres(url, None).store(schema, min_size=4, max_size=8, prepare=False)
        errors: list[str] = []

        def work(worker: int) -> None:
            for n in range(30):
                try:
                    data = {"items": [{"id": "sku-1", "qty": 1}], "customerId": "c-1"}
                    OrderService(store).handle(Command(CREATE, "urn:test", f"e-{worker}-{n}", data))
                    store.list_by_customer("c-1", limit=1)
                except Exception as exc:
                    errors.append(repr(exc)[:160])

        try:
            threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
            assert errors == [], f"{len(errors)} of 240 failed, e.g. {errors[:3]}"
            assert len(store.list_by_customer("c-1", limit=300).orders) == 240
        finally:
            store.close()
            postgres.drop(schema)
