"""Adapters compose: the local HTTP server on the DynamoDB store, against moto's server and
DynamoDB Local."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orders_aws.clients import make_client
from tests.aws.support import FAKE_ENV, new_table
from tests.local.support import ServerProcess

SEED = b'{"items":[{"id":"sku-1","qty":2}],"customerId":"c-dyn"}'


@pytest.fixture(params=["moto_server", "dynamodb_local"])
def endpoint(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto's server, then AWS's DynamoDB Local (a JVM; skipped without Java)."""
    for name, value in FAKE_ENV.items():
        monkeypatch.setenv(name, value)
    if request.param == "dynamodb_local":
        yield request.getfixturevalue("dynamodb_local")
        return
    from tests.aws.motoserver import MotoServer

    server = MotoServer().start()
    try:
        yield server.endpoint
    finally:
        server.stop()


@pytest.mark.slow
def test_orders_local_serves_from_a_dynamodb_table(endpoint: str) -> None:
    new_table(make_client(endpoint_url=endpoint), "orders-local")
    server = ServerProcess(
        "--store", "dynamodb", "--table", "orders-local", "--endpoint-url", endpoint
    )
    try:
        assert "DynamoDB table orders-local" in "".join(server.stderr_lines)
        client = server.client()
        created = client.request("POST", "/orders", SEED, {"idempotency-key": "k-1"})
        assert created.status == 201
        again = client.request("POST", "/orders", SEED, {"idempotency-key": "k-1"})
        assert again.body == created.body
        location = created.headers["location"]
        assert (
            client.request("POST", f"{location}/confirm", headers={"if-match": '"1"'}).status == 200
        )
        listing = client.request("GET", "/orders?customerId=c-dyn").json()
        assert [o["status"] for o in listing["orders"]] == ["CONFIRMED"]
        client.close()
    finally:
        code, err = server.stop()
    assert code == 0, err


def test_a_missing_table_fails_clearly(endpoint: str) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "orders_local.cli",
            "serve",
            "--port",
            "0",
            "--store",
            "dynamodb",
            "--table",
            "nope",
            "--endpoint-url",
            endpoint,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "cannot use DynamoDB table 'nope'" in result.stderr


@pytest.mark.slow
def test_two_workers_serve_one_table(endpoint: str) -> None:
    """``--workers 2``: uvicorn's supervisor, one listening socket, the factory per worker."""
    new_table(make_client(endpoint_url=endpoint), "orders-two")
    server = ServerProcess(
        "--store", "dynamodb", "--table", "orders-two", "--endpoint-url", endpoint,
        "--workers", "2",
    )  # fmt: skip
    try:
        assert "2 workers" in "".join(server.stderr_lines)
        clients = [server.client() for _ in range(4)]
        created = [c.request("POST", "/orders", SEED).status for c in clients for _ in range(3)]
        assert created == [201] * 12
        listing = clients[0].request("GET", "/orders?customerId=c-dyn&limit=50").json()
        assert len(listing["orders"]) == 12  # one table behind both processes
        for c in clients:
            c.close()
    finally:
        code, err = server.stop()
    assert code == 0, err
