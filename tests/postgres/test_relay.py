"""The relay on PostgreSQL: one active relay among many, commit order, no event skipped or
published twice by our doing, wake-ups from other replicas' commits, delivery state."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import cast

import pytest

from orders_core.application import Change, OutboxRelay, event_for
from orders_core.domain import DomainEvent, LineItem, Order
from orders_core.errors import StoreUnavailable
from orders_core.testing import InMemoryPublisher
from tests.postgres.support import Postgres

psycopg = pytest.importorskip("psycopg")

from orders_postgres.relay import CommitListener, ElectedOutbox  # noqa: E402
from orders_postgres.store import PostgresStore  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture
def schema(postgres: Postgres) -> Iterator[str]:
    name = postgres.new_schema()
    postgres.store(name, min_size=1, max_size=1).close()  # created before anyone races
    try:
        yield name
    finally:
        postgres.drop(name)


@pytest.fixture
def replicas(postgres: Postgres, schema: str) -> Iterator[Callable[[], PostgresStore]]:
    """Stores on one schema, each with a pool of its own, as separate processes would be."""
    opened: list[PostgresStore] = []

    def open_one() -> PostgresStore:
        store = postgres.store(schema, min_size=1, max_size=8)
        opened.append(store)
        return store

    try:
        yield open_one
    finally:
        for store in opened:
            store.close()


def place(store: PostgresStore, order_id: str) -> None:
    order = Order.place(order_id, [LineItem(sku="sku-1", quantity=1)], "c-1", datetime.now(UTC))
    store.commit(Change(order, 0, (event_for(order),)), now=datetime.now(UTC))


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_only_the_lock_holder_sees_pending_events_and_a_standby_takes_over(
    replicas: Callable[[], PostgresStore],
) -> None:
    one, two = replicas(), replicas()
    place(one, "o-1")
    first, second = ElectedOutbox(one, retry_interval=0.05), ElectedOutbox(two, retry_interval=0.05)
    try:
        assert [p.event.order_id for p in first.pending()] == ["o-1"]
        assert first.leading
        assert second.pending() == []
        assert not second.leading
        with pytest.raises(StoreUnavailable):  # a standby never marks what it did not read
            second.mark_delivered([1])
        first.close()  # the lock goes with the session
        time.sleep(0.06)
        assert [p.event.order_id for p in second.pending()] == ["o-1"]
        assert second.leading
    finally:
        first.close()
        second.close()


def test_a_leader_whose_session_dies_finds_out_and_a_standby_takes_over(
    postgres: Postgres, replicas: Callable[[], PostgresStore]
) -> None:
    one, two = replicas(), replicas()
    place(one, "o-1")
    first, second = ElectedOutbox(one, retry_interval=0.05), ElectedOutbox(two, retry_interval=0.05)
    try:
        assert len(first.pending()) == 1
        (pid,) = _holders(postgres, one.relay_lock)
        postgres.sql("SELECT pg_terminate_backend(%s)", pid)
        with pytest.raises(StoreUnavailable):
            first.pending()
        assert not first.leading
        time.sleep(0.06)
        assert len(second.pending()) == 1  # the lock was released with the session
    finally:
        first.close()
        second.close()


def _holders(postgres: Postgres, key: int) -> list[object]:
    """The sessions holding advisory lock ``key`` (a bigint key is classid:objid)."""
    rows = postgres.sql(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND classid = ((%s::bigint >> 32) & 4294967295)::oid"
        " AND objid = (%s::bigint & 4294967295)::oid",
        key,
        key,
    )
    return [pid for (pid,) in rows]


def _relay(store: PostgresStore, sink: InMemoryPublisher) -> tuple[OutboxRelay, ElectedOutbox]:
    outbox = ElectedOutbox(store, retry_interval=0.05)
    relay = OutboxRelay(outbox, sink, poll_interval=0.02, batch_size=20, backoff_cap=0.2)
    relay.start()
    return relay, outbox


def _write(stores: list[PostgresStore], count: int, prefix: str, pause: float = 0.0) -> None:
    def writer(w: int) -> None:
        for i in range(count):
            place(stores[w % len(stores)], f"{prefix}-{w}-{i}")
            time.sleep(pause)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)


def test_two_relays_racing_publish_every_event_once_in_commit_order(
    replicas: Callable[[], PostgresStore],
) -> None:
    stores = [replicas() for _ in range(2)]
    sinks = [InMemoryPublisher(), InMemoryPublisher()]
    relays = [_relay(store, sink) for store, sink in zip(stores, sinks, strict=True)]
    try:
        _write(stores, 60, "o")
        wait_for(lambda: stores[0].undelivered_count() == 0)
    finally:
        for relay, outbox in relays:
            relay.stop(timeout=5)
            outbox.close()
    published = [e.id for sink in sinks for e in sink.published]
    assert len(published) == 240
    assert Counter(published).most_common(1)[0][1] == 1  # none twice
    committed = [p.event.id for p in _all(stores[0])]
    (active,) = [sink for sink in sinks if sink.published]  # one relay did all of it
    assert [e.id for e in active.published] == committed  # in position order


def _all(store: PostgresStore) -> list[object]:
    query = f"SELECT position, record FROM {store.schema}.outbox ORDER BY position"
    rows = store.database.run(lambda conn: conn.execute(query).fetchall(), read=True)
    import json

    from orders_core.application import PendingEvent

    return [PendingEvent(pos, DomainEvent.from_record(json.loads(rec))) for pos, rec in rows]


def test_an_orderly_hand_over_mid_stream_skips_nothing_and_repeats_nothing(
    replicas: Callable[[], PostgresStore],
) -> None:
    stores = [replicas() for _ in range(3)]
    sinks = [InMemoryPublisher() for _ in stores]
    relays = [_relay(store, sink) for store, sink in zip(stores, sinks, strict=True)]
    writing = threading.Thread(target=_write, args=(stores, 50, "o", 0.02))  # ~1 s of writes
    writing.start()
    try:
        for _ in range(2):  # the leader stops (a deploy), then the next one
            wait_for(lambda: any(o.leading for _, o in relays))
            time.sleep(0.2)
            leader = next((r, o) for r, o in relays if o.leading)
            leader[0].stop(timeout=5)
            leader[1].close()
            relays.remove(leader)
        writing.join(60)
        wait_for(lambda: stores[0].undelivered_count() == 0)
    finally:
        for relay, outbox in relays:
            relay.stop(timeout=5)
            outbox.close()
    published = [e.id for sink in sinks for e in sink.published]
    assert len(published) == 200
    assert len(set(published)) == 200
    assert all(sink.published for sink in sinks)  # it really changed hands, twice


def test_a_leader_cut_off_mid_stream_loses_nothing(
    postgres: Postgres, replicas: Callable[[], PostgresStore]
) -> None:
    stores = [replicas() for _ in range(2)]
    sinks = [InMemoryPublisher() for _ in stores]
    relays = [_relay(store, sink) for store, sink in zip(stores, sinks, strict=True)]
    writing = threading.Thread(target=_write, args=(stores, 50, "o", 0.01))
    writing.start()
    try:
        wait_for(lambda: sum(len(s.published) for s in sinks) > 20)
        (pid,) = _holders(postgres, stores[0].relay_lock)
        assert postgres.sql("SELECT pg_terminate_backend(%s)", pid) == [(True,)]
        writing.join(60)
        wait_for(lambda: stores[0].undelivered_count() == 0)
    finally:
        for relay, outbox in relays:
            relay.stop(timeout=5)
            outbox.close()
    published = Counter(e.id for sink in sinks for e in sink.published)
    assert len(published) == 200  # every event, at least once
    # A batch read under the lost lock may go out again (the cut-off relay could not mark
    # it): at-least-once delivery, bounded by one batch.
    assert sum(n - 1 for n in published.values()) <= 20


def test_a_transaction_that_commits_late_holds_back_the_commits_after_it(
    postgres: Postgres, replicas: Callable[[], PostgresStore]
) -> None:
    store = replicas()
    order = Order.place("late", [LineItem(sku="sku-1", quantity=1)], "c-1", datetime.now(UTC))
    late = Change(order, 0, (event_for(order),))
    done = threading.Event()
    with psycopg.connect(postgres.url) as slow:  # a writer that stalls before its COMMIT
        slow.execute(store._apply, store.apply_params(late, datetime.now(UTC)))
        worker = threading.Thread(target=lambda: (place(store, "early"), done.set()))
        worker.start()
        # "early" drew no position past "late" while "late" was uncommitted: it waits.
        assert not done.wait(0.5)
        assert store.pending() == []
        slow.commit()
    worker.join(10)
    assert [p.event.order_id for p in store.pending()] == ["late", "early"]


def test_a_commit_on_another_replica_wakes_the_relay_within_milliseconds(
    replicas: Callable[[], PostgresStore],
) -> None:
    relaying, other = replicas(), replicas()
    sink = InMemoryPublisher()
    outbox = ElectedOutbox(relaying)
    relay = OutboxRelay(outbox, sink, poll_interval=30)  # no poll in this test's time
    listener = CommitListener(relaying)
    relay.start()
    try:
        wait_for(lambda: outbox.leading)
        place(other, "unheard")  # nobody listens yet: it waits for the poll
        time.sleep(1.0)
        assert sink.published == []
        listener.subscribe(relay.wake)
        wait_for(listener.listening.is_set)  # on subscribing it wakes the relay once
        wait_for(lambda: len(sink.published) == 1, timeout=2)
        started = time.monotonic()
        place(other, "heard")
        wait_for(lambda: len(sink.published) == 2, timeout=2)
        assert time.monotonic() - started < 1.0
    finally:
        listener.close()
        relay.stop(timeout=5)
        outbox.close()


def test_the_listener_and_the_relay_come_back_after_a_database_restart(
    postgres: Postgres, replicas: Callable[[], PostgresStore]
) -> None:
    server = postgres.restartable()
    relaying, other = replicas(), replicas()
    sink = InMemoryPublisher()
    outbox = ElectedOutbox(relaying, retry_interval=0.1)
    relay = OutboxRelay(outbox, sink, poll_interval=30, backoff_cap=0.5)
    listener = CommitListener(relaying, backoff_cap=0.5)
    relay.start()
    listener.subscribe(relay.wake)
    try:
        wait_for(listener.listening.is_set)
        place(other, "before")
        wait_for(lambda: len(sink.published) == 1)
        server.restart(down_for=0.5)
        wait_for(listener.listening.is_set)
        place(other, "after")
        wait_for(lambda: [e.order_id for e in sink.published] == ["before", "after"])
    finally:
        listener.close()
        relay.stop(timeout=5)
        outbox.close()


def test_delivery_state_attempts_and_lag_are_visible(replicas: Callable[[], PostgresStore]) -> None:
    store = replicas()
    sink = InMemoryPublisher()
    sink.down = True
    outbox = ElectedOutbox(store)
    relay = OutboxRelay(outbox, sink, poll_interval=0.02, backoff_base=0.01, backoff_cap=0.05)
    place(store, "o-1")
    relay.start()
    try:
        wait_for(lambda: store.outbox_entries()[0]["attempts"] >= 2)
        (entry,) = store.outbox_entries(pending_only=True)
        assert entry["deliveredAt"] is None
        assert "SinkDown" in str(entry["lastError"])
        sink.down = False
        wait_for(lambda: store.outbox_entries(pending_only=True) == [])
    finally:
        relay.stop(timeout=5)
        outbox.close()
    (entry,) = store.outbox_entries()
    lag = datetime.fromisoformat(str(entry["deliveredAt"])) - datetime.fromisoformat(
        str(entry["committedAt"])
    )
    assert 0 < lag.total_seconds() < 20
    assert entry["type"] == "io.orderscore.order.created.v1"


def test_a_subscriber_that_raises_stops_neither_the_others_nor_the_listener(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each commit notification calls every subscriber on the listening thread: one that
    raised ended that thread for good, and those after it were never called."""
    listener = CommitListener(cast(PostgresStore, None))
    called: list[str] = []

    def broken() -> None:
        called.append("broken")
        raise RuntimeError("a subscriber's bug")

    listener._subscribers[:] = [broken, lambda: called.append("next")]  # not started
    listener._wake()
    listener._wake()
    assert called == ["broken", "next", "broken", "next"]
    assert any("subscriber failed" in r.getMessage() for r in caplog.records)


def test_a_corrupt_row_fails_alone_after_the_events_before_it_went_out(
    postgres: Postgres, schema: str, replicas: Callable[[], PostgresStore]
) -> None:
    """As on SQLite: the rows are decoded one by one, so a bad record neither blocks the
    events before it nor goes unrecorded; it holds back those after it (commit order)."""
    store = replicas()
    for order_id in ("o-1", "o-2", "o-3"):
        place(store, order_id)
    postgres.sql(f"UPDATE {schema}.outbox SET record = '{{not json' WHERE order_id = 'o-2'")
    sink = InMemoryPublisher()
    outbox = ElectedOutbox(store)
    try:
        relay = OutboxRelay(outbox, sink)
        assert relay.run_once() == 1
        assert relay.run_once() == 0
    finally:
        outbox.close()
    assert [e.subject for e in sink.published] == ["o-1"]
    rows = postgres.sql(
        f"SELECT order_id, delivered_at IS NULL, attempts, last_error FROM {schema}.outbox"
        " ORDER BY position"
    )
    assert [row[:3] for row in rows] == [("o-1", False, 0), ("o-2", True, 1), ("o-3", True, 0)]
    assert str(rows[1][3]).startswith("corrupt record: JSONDecodeError")


def test_the_listing_and_the_console_show_a_corrupt_row_by_position_and_event_id(
    postgres: Postgres, schema: str, replicas: Callable[[], PostgresStore]
) -> None:
    """The tools to find the row that holds the outbox back (`orders-local events`, the
    console's outbox and timeline views) show it instead of failing on it."""
    store = replicas()
    place(store, "o-1")
    postgres.sql(f"UPDATE {schema}.outbox SET record = '{{not json' WHERE order_id = 'o-1'")
    (listed,) = store.outbox_entries()
    assert (listed["id"], listed["type"]) == ("o-1.v1", "(corrupt record)")
    (waiting,) = store.undelivered()
    assert (waiting.event_id, waiting.order_id, waiting.version) == ("o-1.v1", "o-1", 1)
    assert waiting.event_type == "(corrupt record)"
    assert str(waiting.last_error).startswith("corrupt record: JSONDecodeError")
    (entry,) = store.timeline("o-1")
    assert (entry.version, entry.status) == (1, "(corrupt record)")
