"""Through ``orders-local serve --store postgres`` under load: 64-way races on one key and
one ETag, SIGKILL mid-burst, the database restarted while requests keep coming."""

from __future__ import annotations

import http.client
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.local.support import Client, Reply, ServerProcess
from tests.postgres.support import (
    Postgres,
    events_in,
    password,
    serve,
    stop,
    wait_for,
)

pytest.importorskip("psycopg")

from orders_postgres.store import PostgresStore

pytestmark = pytest.mark.slow
RACERS = 64
BODY = b'{"items":[{"id":"sku-1","qty":2}],"customerId":"c-pg"}'


@pytest.fixture
def schema(postgres: Postgres) -> Iterator[str]:
    name = postgres.new_schema()
    try:
        yield name
    finally:
        postgres.drop(name)


def race(
    port: int, method: str, path: str, body: bytes | None, headers: dict[str, str]
) -> list[Reply]:
    barrier = threading.Barrier(RACERS)

    def one(_: int) -> Reply:
        client = Client(port)
        try:
            barrier.wait(timeout=30)
            return client.request(method, path, body, headers)
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=RACERS) as pool:
        return list(pool.map(one, range(RACERS), timeout=120))


@pytest.fixture
def server(postgres: Postgres, schema: str) -> Iterator[ServerProcess]:
    proc = serve(postgres, schema, "--sink", "none")
    try:
        yield proc
    finally:
        stop(proc, postgres)


@pytest.fixture
def store(postgres: Postgres, schema: str, server: ServerProcess) -> Iterator[PostgresStore]:
    s = postgres.store(schema, min_size=1, max_size=2)
    try:
        yield s
    finally:
        s.close()


def test_64_creates_with_one_key_make_one_order_one_event_and_64_equal_answers(
    server: ServerProcess, store: PostgresStore
) -> None:
    replies = race(server.port, "POST", "/orders", BODY, {"idempotency-key": "one"})
    assert {r.status for r in replies} == {201}, [r.body for r in replies if r.status != 201][:3]
    assert len({r.body for r in replies}) == 1
    (order,) = store.list_by_customer("c-pg", limit=100).orders
    assert [e.id for e in store.events_for(order.order_id)] == [f"{order.order_id}.v1"]


def test_64_confirms_with_one_etag_let_exactly_one_win(
    server: ServerProcess, store: PostgresStore
) -> None:
    client = server.client()
    created = client.request("POST", "/orders", BODY)
    client.close()
    location = created.headers["location"]
    replies = race(server.port, "POST", f"{location}/confirm", None, {"if-match": '"1"'})
    assert sorted(r.status for r in replies) == [200] + [412] * (RACERS - 1)
    order_id = created.json()["orderId"]
    order = store.get(order_id)
    assert order is not None
    assert order.version == 2
    assert [e.id for e in store.events_for(order_id)] == [f"{order_id}.v1", f"{order_id}.v2"]


def burst(
    port: int, acked: list[str], stop: threading.Event, log: list[Reply] | None = None
) -> None:
    """Create orders until told to stop or the server dies; record what was acknowledged."""
    client = Client(port)
    try:
        while not stop.is_set():
            reply = client.request("POST", "/orders", BODY)
            if log is not None:
                log.append(reply)
            if reply.status == 201:
                acked.append(reply.json()["orderId"])
    except (OSError, http.client.HTTPException):
        return  # killed under us, maybe mid-response
    finally:
        client.close()


@pytest.mark.parametrize("kill_after", [30, 150])
def test_sigkill_mid_burst_loses_no_acknowledged_order_or_event(
    postgres: Postgres, schema: str, tmp_path: Path, kill_after: int
) -> None:
    sink = tmp_path / "events.jsonl"
    server = serve(postgres, schema, "--sink", f"file:{sink}")
    acked: list[str] = []
    stop_burst = threading.Event()
    workers = [
        threading.Thread(target=burst, args=(server.port, acked, stop_burst)) for _ in range(8)
    ]
    for w in workers:
        w.start()
    wait_for(lambda: len(acked) >= kill_after)
    code, err = server.stop(signal.SIGKILL)
    assert code == -signal.SIGKILL
    stop_burst.set()
    for w in workers:
        w.join(30)
    assert password(postgres) not in err

    restarted = serve(postgres, schema, "--sink", f"file:{sink}")
    store = postgres.store(schema, min_size=1, max_size=2)
    try:
        client = restarted.client()
        for order_id in acked:
            assert client.request("GET", f"/orders/{order_id}").status == 200, order_id
        client.close()
        for order_id in acked:
            assert [e.id for e in store.events_for(order_id)] == [f"{order_id}.v1"]
        wait_for(lambda: store.undelivered_count() == 0)
    finally:
        store.close()
        stop(restarted, postgres)
    assert {f"{o}.v1" for o in acked} <= set(events_in(sink))


def test_a_database_restart_under_load_is_503s_then_service_without_our_restart(
    postgres: Postgres, schema: str, tmp_path: Path
) -> None:
    database = postgres.restartable()
    sink = tmp_path / "events.jsonl"
    server = serve(postgres, schema, "--sink", f"file:{sink}", "--handler-timeout", "5")
    acked: list[str] = []
    replies: list[Reply] = []
    stop_burst = threading.Event()
    workers = [
        threading.Thread(target=burst, args=(server.port, acked, stop_burst, replies))
        for _ in range(8)
    ]
    try:
        for w in workers:
            w.start()
        wait_for(lambda: len(acked) >= 100)
        # Down longer than a request waits for a connection (5 s): a shorter outage is
        # ridden out, every request answered 201 once the database is back.
        database.restart(down_for=6.0)
        restarted_at = len(replies)
        wait_for(lambda: len(acked) >= 100 + 200)  # serving again, the same process
        stop_burst.set()
        for w in workers:
            w.join(30)
        assert server.proc.poll() is None
        unavailable = [r for r in replies if r.status == 503]
        assert unavailable, "the restart was not noticed"
        assert all(r.headers.get("retry-after") for r in unavailable)
        assert {r.status for r in replies} <= {201, 503}
        assert [r.status for r in replies[-50:]] == [201] * 50  # recovered for good
        assert restarted_at < len(replies)
        store = postgres.store(schema, min_size=1, max_size=2)
        try:
            for order_id in acked:
                assert [e.id for e in store.events_for(order_id)] == [f"{order_id}.v1"]
            wait_for(lambda: store.undelivered_count() == 0)  # the relay recovered too
        finally:
            store.close()
    finally:
        stop_burst.set()
        stop(server, postgres)
    assert {f"{o}.v1" for o in acked} <= set(events_in(sink))
