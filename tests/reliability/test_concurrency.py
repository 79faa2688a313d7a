"""Duplicates under concurrency through real sockets: SQLite behind the local server, and
DynamoDB (moto's server) behind the same server. 64 racers each."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from orders_local.runtime import LocalConfig, LocalRuntime
from tests.local.support import Client, Reply

RACERS = 64
BODY = b'{"items":[{"id":"sku-1","qty":2}],"customerId":"race"}'
pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "dynamodb-moto-server"])
def runtime(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LocalRuntime]:
    store = None
    server = None
    if request.param == "dynamodb-moto-server":
        from orders_aws.clients import make_client
        from orders_aws.dynamodb import DynamoDBStore
        from tests.aws.motoserver import MotoServer
        from tests.aws.support import new_table, set_fake_env

        set_fake_env(monkeypatch)
        server = MotoServer().start()
        client = make_client(endpoint_url=server.endpoint)
        # moto keeps one in-process backend for every server: a fresh table per test.
        store = DynamoDBStore(new_table(client, f"race-{uuid.uuid4().hex[:8]}"), client)
    rt = LocalRuntime(LocalConfig(db=tmp_path / "o.db", port=0, sink="none"), store=store)
    rt.start()
    try:
        yield rt
    finally:
        rt.stop()
        if server is not None:
            server.stop()


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


def test_64_creates_with_one_key_make_one_order_and_64_equal_answers(runtime: LocalRuntime) -> None:
    port = runtime.server.server_address[1]
    replies = race(port, "POST", "/orders", BODY, {"idempotency-key": "one"})
    assert {r.status for r in replies} == {201}, [r.body for r in replies if r.status != 201][:3]
    assert len({r.body for r in replies}) == 1
    assert len(runtime.store.list_by_customer("race", limit=100).orders) == 1


def test_64_confirms_with_one_etag_let_exactly_one_win(runtime: LocalRuntime) -> None:
    port = runtime.server.server_address[1]
    client = Client(port)
    created = client.request("POST", "/orders", BODY)
    client.close()
    location = created.headers["location"]
    replies = race(port, "POST", f"{location}/confirm", None, {"if-match": created.headers["etag"]})
    statuses = sorted(r.status for r in replies)
    assert statuses == [200] + [412] * (RACERS - 1)
    order = runtime.store.get(created.json()["orderId"])
    assert order is not None
    assert order.version == 2
