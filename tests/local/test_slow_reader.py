"""A client that sends requests and never reads the answers is cut off after the read
timeout. The head deadline is not armed while a request is under way, the body deadline is
over once the body is in, and uvicorn's ``send`` awaited ``drain()`` without a bound once
the socket's buffers were full: with ``--max-connections 1`` every other request got 503
for as long as the attacker liked, at the cost of a few pipelined request lines (a slowloris
on the answers' side; helper-35's review)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.local.support import ServerProcess
from tests.local.test_event_loop_server import read_responses

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        "--db", str(tmp_path / "o.db"), "--sink", "none",
        "--read-timeout", "1", "--max-connections", "1",
    )  # fmt: skip
    yield proc
    proc.stop()


def probe(server: ServerProcess) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        (reply,) = read_responses(sock, 1, timeout=5)
    return reply[9:12]


def test_a_client_that_never_reads_is_cut_off(server: ServerProcess) -> None:
    assert probe(server) == b"200"
    greedy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    greedy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect
    greedy.connect(("127.0.0.1", server.port))
    try:
        # ~47 MB of answers to ~40 KB of requests: far more than the socket buffers hold.
        greedy.sendall(b"GET /openapi.json HTTP/1.1\r\nhost: x\r\n\r\n" * 1000)
        deadline = time.monotonic() + 15  # --read-timeout 1 (and --handler-timeout 10)
        statuses = []
        while time.monotonic() < deadline:
            time.sleep(1)
            statuses.append(probe(server))
            if statuses[-1] == b"200":
                break
        assert statuses[-1] == b"200", (
            f"the non-reading connection still holds its slot after 15 s: probes got {statuses}"
        )
    finally:
        greedy.close()
