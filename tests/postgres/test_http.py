"""End to end through ``orders-local serve --store postgres`` (uvicorn) in a child process:
the API, races of 64, SIGKILL mid-burst, the database restarted under load, the password
never printed."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.local.support import Client, Reply
from tests.postgres.support import DrainedServer, Postgres

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


def serve(postgres: Postgres, schema: str, *args: str) -> DrainedServer:
    env = {"ORDERS_DATABASE_URL": postgres.url, "ORDERS_DATABASE_SCHEMA": schema}
    return DrainedServer("--store", "postgres", *args, env=env)


def password(postgres: Postgres) -> str:
    from psycopg.conninfo import conninfo_to_dict

    return str(conninfo_to_dict(postgres.url)["password"])


def stop(server: DrainedServer, postgres: Postgres) -> str:
    code, err = server.stop()
    assert code == 0, err
    assert password(postgres) not in err
    return err


def events_in(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()]


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_api_on_postgres_from_the_command_line(
    postgres: Postgres, schema: str, tmp_path: Path
) -> None:
    sink = tmp_path / "events.jsonl"
    server = serve(postgres, schema, "--sink", f"file:{sink}", "--pool-min", "1", "--pool-max", "4")
    try:
        started = "".join(server.stderr_lines)
        host_db = postgres.url.rsplit("@", 1)[1]
        assert f"data: PostgreSQL {host_db}, schema {schema}, pool 1-4" in started
        client = server.client()
        created = client.request("POST", "/orders", BODY, {"idempotency-key": "k-1"})
        assert created.status == 201
        again = client.request("POST", "/orders", BODY, {"idempotency-key": "k-1"})
        assert (again.status, again.body) == (201, created.body)
        assert again.headers["idempotent-replayed"] == "true"
        location = created.headers["location"]
        confirm = client.request("POST", f"{location}/confirm", headers={"if-match": '"1"'})
        assert confirm.status == 200
        stale = client.request("POST", f"{location}/cancel", headers={"if-match": '"1"'})
        assert stale.status == 412
        for _ in range(4):
            assert client.request("POST", "/orders", BODY).status == 201
        seen, cursor = [], ""
        for _ in range(5):
            page = client.request("GET", f"/orders?customerId=c-pg&limit=2{cursor}").json()
            seen += [o["orderId"] for o in page["orders"]]
            if "nextCursor" not in page:
                break
            cursor = f"&cursor={page['nextCursor']}"
        assert len(seen) == len(set(seen)) == 5
        for path, status in [
            ("/orders/%00", 404),
            ("/orders/x'%3B%20DROP%20TABLE%20orders%3B--", 404),
            ("/orders?customerId=c-pg&cursor=" + "a" * 2000, 400),
            ("/orders?customerId=c-pg&cursor=e30.AAAAAAAAAAAAAAAAAAAAAA", 400),
            ("/orders?customerId=c-pg'--", 400),
        ]:
            assert client.request("GET", path).status == status, path
        client.close()
        wait_for(lambda: len(events_in(sink)) == 6)
    finally:
        stop(server, postgres)
    listed = subprocess.run(
        [sys.executable, "-m", "orders_local.cli", "events", "--store", "postgres", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**_env(postgres, schema)},
    )
    assert listed.returncode == 0, listed.stderr
    entries = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [e["type"].split(".")[3] for e in entries].count("created") == 5
    assert all(e["deliveredAt"] for e in entries)
    assert sorted(e["id"] for e in entries) == sorted(events_in(sink))


def _env(postgres: Postgres, schema: str) -> dict[str, str]:
    import os

    return {**os.environ, "ORDERS_DATABASE_URL": postgres.url, "ORDERS_DATABASE_SCHEMA": schema}


def test_another_tenants_order_is_404_everywhere(postgres: Postgres, schema: str) -> None:
    pytest.importorskip("jwt", reason="needs the jwt extra")
    from tests.local.jwks import AUDIENCE, Key, claims, jwks_server

    key = Key("k1", "EC")
    with jwks_server([key]) as idp:
        server = serve(
            postgres, schema, "--sink", "none", "--jwt-issuer", idp.issuer,
            "--jwt-audience", AUDIENCE,
        )  # fmt: skip
        try:
            alice = {"authorization": "Bearer " + key.sign(claims(idp.issuer, sub="alice"))}
            bob = {"authorization": "Bearer " + key.sign(claims(idp.issuer, sub="bob"))}
            client = server.client()
            created = client.request("POST", "/orders", BODY, alice)
            assert created.status == 201
            location = created.headers["location"]
            assert client.request("GET", location, headers=alice).status == 200
            assert client.request("GET", location, headers=bob).status == 404
            assert client.request("POST", f"{location}/confirm", headers=bob).status == 404
            listing = client.request("GET", "/orders?customerId=c-pg", headers=bob).json()
            assert listing["orders"] == []
            # Bob's key equal to Alice's is his own key: a new order, not her replay.
            mine = client.request("POST", "/orders", BODY, {**bob, "idempotency-key": "same"})
            hers = client.request("POST", "/orders", BODY, {**alice, "idempotency-key": "same"})
            assert mine.json()["orderId"] != hers.json()["orderId"]
            client.close()
        finally:
            stop(server, postgres)


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
def server(postgres: Postgres, schema: str) -> Iterator[DrainedServer]:
    proc = serve(postgres, schema, "--sink", "none")
    try:
        yield proc
    finally:
        stop(proc, postgres)


@pytest.fixture
def store(postgres: Postgres, schema: str, server: DrainedServer) -> Iterator[PostgresStore]:
    s = postgres.store(schema, min_size=1, max_size=2)
    try:
        yield s
    finally:
        s.close()


def test_64_creates_with_one_key_make_one_order_one_event_and_64_equal_answers(
    server: DrainedServer, store: PostgresStore
) -> None:
    replies = race(server.port, "POST", "/orders", BODY, {"idempotency-key": "one"})
    assert {r.status for r in replies} == {201}, [r.body for r in replies if r.status != 201][:3]
    assert len({r.body for r in replies}) == 1
    (order,) = store.list_by_customer("c-pg", limit=100).orders
    assert [e.id for e in store.events_for(order.order_id)] == [f"{order.order_id}.v1"]


def test_64_confirms_with_one_etag_let_exactly_one_win(
    server: DrainedServer, store: PostgresStore
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
        database.restart(down_for=1.0)
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


def test_relay_processes_racing_publish_each_event_once(
    postgres: Postgres, schema: str, tmp_path: Path
) -> None:
    server = serve(postgres, schema, "--sink", "none")  # the relays below do it
    sinks = [tmp_path / f"relay-{i}.jsonl" for i in range(2)]
    logs = [tmp_path / f"relay-{i}.log" for i in range(2)]
    relays = []
    for sink, log in zip(sinks, logs, strict=True):
        argv = [sys.executable, "-m", "orders_local.cli", "relay", "--store", "postgres"]
        argv += ["--sink", f"file:{sink}", "--pool-min", "1", "--pool-max", "1"]
        with log.open("w") as err:
            relays.append(subprocess.Popen(argv, stderr=err, env=_env(postgres, schema)))
    try:
        where = f"relaying PostgreSQL {postgres.url.rsplit('@', 1)[1]}"
        for log in logs:
            wait_for(lambda log=log: where in log.read_text())  # type: ignore[misc]
        client = server.client()
        for _ in range(100):
            assert client.request("POST", "/orders", BODY).status == 201
        wait_for(lambda: sum(len(events_in(s)) for s in sinks) >= 100)
        # The active relay stops (a deploy); the other takes over for what comes next.
        active = next(r for r, s in zip(relays, sinks, strict=True) if events_in(s))
        active.send_signal(signal.SIGTERM)
        assert active.wait(20) == 0
        for _ in range(100):
            assert client.request("POST", "/orders", BODY).status == 201
        client.close()
        wait_for(lambda: sum(len(events_in(s)) for s in sinks) >= 200)
        time.sleep(0.5)  # anything published twice would show up by now
    finally:
        for relay in relays:
            if relay.poll() is None:
                relay.send_signal(signal.SIGTERM)
                relay.wait(20)
        stop(server, postgres)
    assert not any(password(postgres) in log.read_text() for log in logs)
    published = Counter(e for s in sinks for e in events_in(s))
    assert len(published) == 200
    assert max(published.values()) == 1
    assert all(events_in(s) for s in sinks)  # both relayed, one after the other


def test_two_workers_share_one_database_and_one_relay(
    postgres: Postgres, schema: str, tmp_path: Path
) -> None:
    sink = tmp_path / "events.jsonl"
    server = serve(postgres, schema, "--workers", "2", "--sink", f"file:{sink}")
    try:
        assert "2 workers" in "".join(server.stderr_lines)
        clients = [server.client() for _ in range(4)]
        for c in clients:
            for _ in range(10):
                assert c.request("POST", "/orders", BODY).status == 201
            c.close()
        wait_for(lambda: len(events_in(sink)) >= 40)
        time.sleep(0.5)
    finally:
        stop(server, postgres)
    assert len(events_in(sink)) == len(set(events_in(sink))) == 40


def test_a_wrong_or_unreachable_url_fails_clearly_without_printing_the_password() -> None:
    secret = "s3cr3t-Pa55"
    refused = "cannot connect to PostgreSQL 127.0.0.1"
    for url, reason in [
        (f"postgresql://orders:{secret}@127.0.0.1:1/orders", f"{refused}:1/orders"),
        (f"postgresql://orders:{secret}@127.0.0.1:notaport/orders", f"{refused}:notaport/orders"),
        (f"mysql://orders:{secret}@127.0.0.1/orders", "not a PostgreSQL connection URL"),
        (f"postgresql://orders:{secret}@[::1/orders", "not a PostgreSQL connection URL"),
        ("", "--store postgres needs --database-url"),
    ]:  # fmt: skip
        for argv, env in [
            (["--database-url", url], {}),
            ([], {"ORDERS_DATABASE_URL": url}),
        ]:
            result = subprocess.run(
                [sys.executable, "-m", "orders_local.cli", "serve", "--port", "0",
                 "--store", "postgres", *argv],
                capture_output=True, text=True, timeout=60,
                env={**_env_without_url(), **env},
            )  # fmt: skip
            assert result.returncode == 1, result.stderr
            assert reason in result.stderr, result.stderr
            assert secret not in result.stderr + result.stdout
    shown = subprocess.run(
        [sys.executable, "-m", "orders_local.cli", "serve", "--help"],
        capture_output=True, text=True, timeout=60,
        env={**_env_without_url(), "ORDERS_DATABASE_URL": f"postgresql://u:{secret}@h/d"},
    )  # fmt: skip
    assert "--database-url" in shown.stdout
    assert secret not in shown.stdout


def _env_without_url() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "ORDERS_DATABASE_URL"}
