"""The schema: created, migrated forward, a newer one refused, indexes the listings use."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from orders_core.application import Change, event_for
from orders_core.domain import LineItem, Order, OrderStatus
from tests.postgres.support import Postgres

pytest.importorskip("psycopg")

from orders_postgres import schema as schemas
from orders_postgres.store import PostgresStore


@pytest.fixture
def name(postgres: Postgres) -> Iterator[str]:
    schema = postgres.new_schema()
    try:
        yield schema
    finally:
        postgres.drop(schema)


def _place(store: PostgresStore, order_id: str, customer: str = "c-1") -> None:
    order = Order.place(order_id, [LineItem(sku="sku-1", quantity=1)], customer, datetime.now(UTC))
    store.commit(Change(order, 0, (event_for(order),)), now=datetime.now(UTC))


def test_a_new_schema_is_created_at_the_current_version_and_reopened_as_is(
    postgres: Postgres, name: str
) -> None:
    store = postgres.store(name)
    try:
        assert store.migrated_from == 0
        assert store.schema_version() == schemas.SCHEMA_VERSION
        _place(store, "o-1")
    finally:
        store.close()
    again = postgres.store(name)
    try:
        assert again.migrated_from == schemas.SCHEMA_VERSION  # nothing left to run
        assert again.get("o-1") is not None
    finally:
        again.close()


def test_an_older_schema_is_migrated_forward_keeping_its_rows(
    postgres: Postgres, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = postgres.store(name)
    _place(store, "o-1")
    store.close()

    def add_note(s: str) -> tuple[str, ...]:
        return (f"ALTER TABLE {s}.orders ADD COLUMN note text NOT NULL DEFAULT 'migrated'",)

    monkeypatch.setattr(schemas, "MIGRATIONS", (*schemas.MIGRATIONS, add_note))
    monkeypatch.setattr(schemas, "SCHEMA_VERSION", schemas.SCHEMA_VERSION + 1)
    upgraded = postgres.store(name)
    try:
        assert upgraded.migrated_from == schemas.SCHEMA_VERSION - 1
        assert upgraded.schema_version() == schemas.SCHEMA_VERSION
        assert upgraded.get("o-1") is not None
        assert postgres.sql(f"SELECT note FROM {name}.orders") == [("migrated",)]
    finally:
        upgraded.close()


def test_a_schema_written_by_a_newer_orders_core_is_refused(postgres: Postgres, name: str) -> None:
    postgres.store(name).close()
    newer = schemas.SCHEMA_VERSION + 1
    postgres.sql(f"UPDATE {name}.meta SET value = %s WHERE name = 'schema_version'", str(newer))
    with pytest.raises(schemas.SchemaTooNew, match=f"version {newer}"):
        postgres.store(name)
    from orders_postgres.backend import backend

    with pytest.raises(ValueError, match="Upgrade orders-core") as refused:
        backend({"database_url": postgres.url, "database_schema": name})
    assert postgres.url not in str(refused.value)


def test_replicas_opening_a_new_schema_together_migrate_it_once(
    postgres: Postgres, name: str
) -> None:
    with ThreadPoolExecutor(8) as pool:
        stores = list(pool.map(lambda _: postgres.store(name, min_size=1, max_size=2), range(8)))
    try:
        assert sorted(s.migrated_from for s in stores).count(0) == 1  # one created it
        for i in range(3):
            _place(stores[0], f"o-{i}")
        cursor = stores[0].list_by_customer("c-1", limit=1).next_cursor
        assert cursor is not None
        # One cursor key for every replica: a page begun on one continues on another.
        assert [o.order_id for o in stores[7].list_by_customer("c-1", cursor=cursor).orders] == [
            "o-1",
            "o-2",
        ]
    finally:
        for store in stores:
            store.close()


@pytest.mark.parametrize(
    ("owner", "index"),
    [("jwt:1", "orders_by_customer_owner"), (None, "orders_by_customer")],
)
def test_customer_listings_read_an_index(
    postgres: Postgres, name: str, owner: str | None, index: str
) -> None:
    store = postgres.store(name)
    try:
        # A customer with 20 owners' orders, 5,000 in all, and fresh statistics.
        postgres.sql(
            f"INSERT INTO {name}.orders (order_id, customer_id, created_us, version, owner, body)"
            " SELECT 'o-' || n, 'c-' || (n % 5), n, 1, 'jwt:' || (n % 20), '{}'"
            "   FROM generate_series(1, 5000) AS n"
        )
        postgres.sql(f"ANALYZE {name}.orders")
        query = store._page_all if owner is None else store._page_owned
        params: tuple[object, ...] = ("c-1", 10, "", 21)
        if owner is not None:
            params = ("c-1", 10, "", owner, 21)
        plan = "\n".join(str(r[0]) for r in postgres.sql(f"EXPLAIN {query}", *params))
        assert f"Index Scan using {index} " in plan, plan
        assert "Sort" not in plan, plan  # the index gives the order: no sort step
        assert "Filter" not in plan, plan  # and holds every condition
    finally:
        store.close()


def test_schema_names_are_plain_identifiers_and_locks_are_per_schema() -> None:
    for bad in ("Orders", "1st", "a-b", 'x"; DROP SCHEMA public; --', "", "a" * 49):
        with pytest.raises(ValueError, match="database schema"):
            schemas.schema_name(bad)
    assert schemas.lock_key("a", "relay") != schemas.lock_key("b", "relay")
    assert schemas.lock_key("a", "relay") != schemas.lock_key("a", "outbox")
    assert -(2**63) <= schemas.lock_key("a", "relay") < 2**63


def test_schema_1_is_migrated_for_the_console_and_old_rows_show_no_command(
    postgres: Postgres, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows written before schema 2 keep their order and status and show "not recorded";
    changes after it record their command with the change."""
    from orders_core.application import CONFIRM, Command, OrderService

    with monkeypatch.context() as patched:
        patched.setattr(schemas, "MIGRATIONS", schemas.MIGRATIONS[:1])
        patched.setattr(schemas, "SCHEMA_VERSION", 1)
        postgres.store(name).close()
    now = datetime.now(UTC)
    for n in range(3):  # as schema 1's apply_change left them
        order = Order.place(f"o-{n}", [LineItem(sku="s", quantity=1)], "c-1", now)
        event = event_for(order)
        postgres.sql(
            f"INSERT INTO {name}.orders (order_id, customer_id, created_us, version, owner, body)"
            " VALUES (%s, 'c-1', %s, 1, %s, %s)",
            order.order_id, int(now.timestamp() * 1e6) + n, order.owner, order.to_json().decode(),
        )  # fmt: skip
        postgres.sql(
            f"INSERT INTO {name}.outbox (event_id, order_id, record, committed_at)"
            " VALUES (%s, %s, %s, %s)",
            event.id, order.order_id, event.to_record_json(), now,
        )  # fmt: skip
    store = postgres.store(name)
    try:
        assert (store.migrated_from, store.schema_version()) == (1, 2)
        assert [o.order_id for o in store.browse().orders] == ["o-2", "o-1", "o-0"]
        assert store.status_counts()["PENDING"] == 3
        (old,) = store.timeline("o-0")
        assert old.command is None
        OrderService(store).handle(Command(CONFIRM, "urn:test", "c-9", {"orderId": "o-0"}))
        assert [o.order_id for o in store.browse(status="CONFIRMED").orders] == ["o-0"]
        _, new = store.timeline("o-0")
        assert new.command is not None
        assert (new.command.type, new.command.command_id) == (CONFIRM, "c-9")
        _place(store, "o-3")
        assert store.browse(limit=1).orders[0].order_id == "o-3"  # numbered after the old
    finally:
        store.close()


def test_schema_1_holding_a_nul_escaped_cancel_reason_is_migrated(
    postgres: Postgres, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancel reason may hold a NUL: the body's JSON has a \\u0000 escape, which jsonb
    refuses. The migration must not parse bodies as jsonb to find their status."""
    with monkeypatch.context() as patched:
        patched.setattr(schemas, "MIGRATIONS", schemas.MIGRATIONS[:1])
        patched.setattr(schemas, "SCHEMA_VERSION", 1)
        postgres.store(name).close()
    now = datetime.now(UTC)
    order = Order.place("o-1", [LineItem(sku="s", quantity=1)], "c-1", now)
    order = order.transition(OrderStatus.CANCELLED, now, reason="a\x00b")
    assert "\\u0000" in order.to_json().decode()
    postgres.sql(
        f"INSERT INTO {name}.orders (order_id, customer_id, created_us, version, owner, body)"
        " VALUES (%s, 'c-1', 1, %s, %s, %s)",
        order.order_id, order.version, order.owner, order.to_json().decode(),
    )  # fmt: skip
    store = postgres.store(name)
    try:
        assert (store.migrated_from, store.schema_version()) == (1, 2)
        assert store.status_counts()["CANCELLED"] == 1
        got = store.get("o-1")
        assert got is not None
        assert got.cancel_reason == "a\x00b"
    finally:
        store.close()


def test_a_migration_runs_without_the_request_timeouts_and_leaves_them_in_place(
    postgres: Postgres, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No statement timeout (a big table's rewrite takes what it takes); table locks are
    waited for as long as the request path waits; the pool's sessions keep their limits."""
    postgres.store(name, min_size=1, max_size=1).close()

    def note_limits(s: str) -> tuple[str, ...]:
        return (
            f"CREATE TABLE {s}.limits AS SELECT current_setting('statement_timeout') AS st,"
            " current_setting('lock_timeout') AS lt",
        )

    monkeypatch.setattr(schemas, "MIGRATIONS", (*schemas.MIGRATIONS, note_limits))
    monkeypatch.setattr(schemas, "SCHEMA_VERSION", schemas.SCHEMA_VERSION + 1)
    store = postgres.store(name, min_size=1, max_size=1)
    try:
        assert postgres.sql(f"SELECT st, lt FROM {name}.limits") == [("0", "5s")]
        limits = store.database.run(
            lambda conn: conn.execute(
                "SELECT current_setting('statement_timeout'), current_setting('lock_timeout')"
            ).fetchone(),
            read=True,
        )
        assert limits == ("10s", "5s")
    finally:
        store.close()


@pytest.mark.slow
def test_a_replica_waits_for_another_replicas_migration_longer_than_the_lock_timeout(
    postgres: Postgres, name: str
) -> None:
    import psycopg

    from orders_postgres.driver import LOCK_TIMEOUT_MS

    held = LOCK_TIMEOUT_MS / 1000 + 2
    opened: list[object] = []
    with psycopg.connect(postgres.url, autocommit=True) as migrating:  # another replica's
        migrating.execute("SELECT pg_advisory_lock(%s)", (schemas.lock_key(name, "migrate"),))
        with ThreadPoolExecutor(1) as pool:
            started = time.monotonic()
            opening = pool.submit(lambda: postgres.store(name, min_size=1, max_size=1))
            opening.add_done_callback(lambda _: opened.append(time.monotonic() - started))
            time.sleep(held)
            migrating.execute("SELECT pg_advisory_unlock_all()")
            store = opening.result(timeout=30)
    try:
        assert opened[0] >= held  # it waited for the lock rather than failing
        assert (store.migrated_from, store.schema_version()) == (0, schemas.SCHEMA_VERSION)
    finally:
        store.close()
