"""Adapters compose: the local HTTP server on the DynamoDB store, against moto's server and
DynamoDB Local."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

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


@pytest.mark.slow
@pytest.mark.parametrize("endpoint", ["moto_server"], indirect=True)
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux-only")
def test_cpu_affinity_puts_each_worker_on_a_cpu_of_its_own(endpoint: str, tmp_path: Path) -> None:
    new_table(make_client(endpoint_url=endpoint), "orders-pinned")
    server = ServerProcess(
        "--store", "dynamodb", "--table", "orders-pinned", "--endpoint-url", endpoint,
        "--workers", "2", "--cpu-affinity", "auto",
        env={"TMPDIR": str(tmp_path)},  # its own lock directory, apart from other runs
    )  # fmt: skip
    try:
        clients = [server.client() for _ in range(4)]
        assert [c.request("POST", "/orders", SEED).status for c in clients] == [201] * 4
        for c in clients:
            c.close()
        allowed = sorted(os.sched_getaffinity(0))
        expected = allowed[:2] if len(allowed) > 1 else [allowed[0]]
        # Four answers may all come from one worker while the other still starts: wait,
        # bounded, until two workers are up and pinned, then check what they settled on.
        deadline = time.monotonic() + 20
        while True:
            workers = [pid for pid in _children(server.proc.pid) if _threads(pid) > 1]
            pinned = [_cpus_of_every_thread(pid) for pid in workers]
            settled = len(workers) == 2 and all(len(cpus) == 1 for cpus in pinned)
            if settled or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert len(workers) == 2
        for cpus in pinned:
            assert len(cpus) == 1  # every thread of the worker on the same one CPU
        assert sorted({cpu for cpus in pinned for cpu in cpus}) == expected
        assert _cpus_of_every_thread(server.proc.pid) == set(allowed)  # the supervisor: not
    finally:
        code, err = server.stop()
    assert code == 0, err


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _threads(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/task").iterdir()))


def _cpus_of_every_thread(pid: int) -> set[int]:
    cpus: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            cpus |= os.sched_getaffinity(int(task.name))
        except ProcessLookupError:  # a thread that ended meanwhile
            continue
    return cpus
