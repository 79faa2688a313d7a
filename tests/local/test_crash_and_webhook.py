"""Nothing acknowledged is lost: SIGKILL mid-burst, and a webhook target that is down."""

from __future__ import annotations

import http.client
import json
import random
import signal
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from orders_local.runtime import LocalConfig, LocalRuntime
from orders_local.sinks import WebhookSink
from orders_local.sqlite import SQLiteStore
from tests.local.support import Client, ServerProcess

pytestmark = pytest.mark.slow
SEED = b'{"items":[{"id":"sku-1","qty":2}],"customerId":"crash"}'


def burst(port: int, acked: list[str], stop: threading.Event, limit: int) -> None:
    """Create orders until told to stop, the server dies, or ``limit`` is reached."""
    client = Client(port)
    try:
        for _ in range(limit):
            if stop.is_set():
                return
            reply = client.request("POST", "/orders", SEED)
            if reply.status == 201:
                acked.append(reply.json()["orderId"])
    except (OSError, http.client.HTTPException):
        return  # the server was killed under us, maybe mid-response: expected
    finally:
        client.close()


def wait_until(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# Fixed points and seeded random ones: a crash early, late, and anywhere in between.
KILL_POINTS = [40, 150, *(random.Random(seed).randint(5, 200) for seed in (1, 2, 3))]


@pytest.mark.parametrize("kill_after", KILL_POINTS)
def test_sigkill_mid_burst_loses_no_acknowledged_order_or_event(
    tmp_path: Path, kill_after: int
) -> None:
    db, sink = tmp_path / "o.db", tmp_path / "events.jsonl"
    server = ServerProcess("--db", str(db), "--sink", f"file:{sink}")
    acked: list[str] = []
    stop = threading.Event()
    workers = [
        threading.Thread(target=burst, args=(server.port, acked, stop, 400)) for _ in range(4)
    ]
    for w in workers:
        w.start()
    wait_until(lambda: len(acked) >= kill_after or not any(w.is_alive() for w in workers))
    code, _ = server.stop(signal.SIGKILL)
    assert code == -signal.SIGKILL
    stop.set()
    for w in workers:
        w.join(timeout=30)
    assert len(acked) >= kill_after

    restarted = ServerProcess("--db", str(db), "--sink", f"file:{sink}")
    try:
        client = restarted.client()
        for order_id in acked:
            assert client.request("GET", f"/orders/{order_id}").status == 200, order_id
        client.close()
        store = SQLiteStore(db)
        try:
            for order_id in acked:
                assert [e.id for e in store.events_for(order_id)] == [f"{order_id}.v1"]
            wait_until(lambda: store.pending(1) == [])
        finally:
            store.close()
    finally:
        assert restarted.stop()[0] == 0
    published = {json.loads(line)["id"] for line in sink.read_text().splitlines() if line.strip()}
    assert {f"{o}.v1" for o in acked} <= published


class Target(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, bytes]]] = []
    fail_first: ClassVar[int] = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        if Target.fail_first > 0:
            Target.fail_first -= 1
            self.send_response(503)
        else:
            Target.received.append((self.headers["ce-id"], body))
            self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def free_port() -> int:
    """A loopback port nothing listens on (yet)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_webhook_target_down_then_up_receives_every_event(tmp_path: Path, free_port: int) -> None:
    Target.received, Target.fail_first = [], 2
    sink = WebhookSink(f"http://127.0.0.1:{free_port}/hook", timeout=2)
    runtime = LocalRuntime(LocalConfig(db=tmp_path / "o.db", port=0), publisher=sink)
    runtime.start()
    target = None
    try:
        client = Client(runtime.server.server_address[1])
        ids = [client.request("POST", "/orders", SEED).json()["orderId"] for _ in range(10)]
        client.close()
        store = runtime.store
        assert isinstance(store, SQLiteStore)
        wait_until(lambda: store.outbox_entries()[0]["attempts"] >= 2)  # it keeps trying
        assert len(store.pending(100)) == 10  # and drops nothing

        target = ThreadingHTTPServer(("127.0.0.1", free_port), Target)
        threading.Thread(target=target.serve_forever, daemon=True).start()
        wait_until(lambda: store.pending(1) == [], timeout=60)
    finally:
        runtime.stop(timeout=5)
        if target is not None:
            target.shutdown()
            target.server_close()
    delivered = [ce_id for ce_id, _ in Target.received]
    assert delivered == [f"{i}.v1" for i in ids]  # all, once each here, in commit order
    body = json.loads(Target.received[0][1])
    assert body["orderId"] == ids[0]  # binary mode: the body is the event's data
