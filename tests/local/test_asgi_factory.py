"""The runtime as an ASGI app under someone else's uvicorn, and what --workers refuses."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.local.support import Client

pytestmark = pytest.mark.slow
SEED = b'{"items":[{"id":"sku-1","qty":2}]}'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_uvicorn_runs_the_factory_from_the_environment(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    port = free_port()
    env = {
        **os.environ,
        "ORDERS_LOCAL_DB": str(tmp_path / "o.db"),
        "ORDERS_LOCAL_SINK": f"file:{out}",
        "ORDERS_LOCAL_MAX_BODY": "100",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "orders_local.asgi_app:factory", "--factory",
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                client = Client(port)
                health = client.request("GET", "/healthz")
                break
            except OSError:
                assert time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.1)
        assert health.status == 200
        created = client.request("POST", "/orders", SEED, {"x-request-id": "r-1"})
        assert created.status == 201
        assert created.headers["x-correlation-id"] == "r-1"
        assert client.request("POST", "/orders", b"{" + b" " * 200 + b"}").status == 413
        client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    # uvicorn >= 0.29 re-raises the signal it caught once it has shut down cleanly.
    assert proc.returncode in (0, -signal.SIGTERM), err
    assert "Application shutdown complete" in err
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["subject"] for e in events] == [created.json()["orderId"]]  # relay flushed
    assert '"path": "/orders"' in err or '"path":"/orders"' in err  # the access-log line


@pytest.mark.parametrize(("store", "why"), [("sqlite", "one writer"), ("memory", "of its own")])
def test_workers_need_a_networked_store(tmp_path: Path, store: str, why: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "orders_local.cli", "serve", "--store", store,
         "--db", str(tmp_path / "o.db"), "--workers", "2", "--port", "0"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 1
    assert "--workers 2 needs a networked store" in done.stderr
    assert why in done.stderr
