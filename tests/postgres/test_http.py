"""End to end through ``orders-local serve --store postgres`` (uvicorn) in a child process:
the API and hostile paths, another tenant's orders, relay processes and workers, the
password never printed. (Races, SIGKILL and database restarts: test_http_load.py.)"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres.support import (
    Postgres,
    child_env,
    events_in,
    password,
    serve,
    stop,
    wait_for,
)

pytest.importorskip("psycopg")


pytestmark = pytest.mark.slow
BODY = b'{"items":[{"id":"sku-1","qty":2}],"customerId":"c-pg"}'


@pytest.fixture
def schema(postgres: Postgres) -> Iterator[str]:
    name = postgres.new_schema()
    try:
        yield name
    finally:
        postgres.drop(name)


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
        env=child_env(postgres, schema),
    )
    assert listed.returncode == 0, listed.stderr
    entries = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [e["type"].split(".")[3] for e in entries].count("created") == 5
    assert all(e["deliveredAt"] for e in entries)
    assert sorted(e["id"] for e in entries) == sorted(events_in(sink))


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
            relays.append(subprocess.Popen(argv, stderr=err, env=child_env(postgres, schema)))
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
