"""A valid write pipelined before a head the front end refuses (400, 505, 431) is answered
before the refusal. Refused at once, the write's task still ran and committed, and its 201
went to a closed connection: the client saw only the refusal, and a retry without a key
made a second order (helper-35's review)."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.local.support import ServerProcess
from tests.local.test_event_loop_server import post
from tests.local.test_hostile_http import orders_in

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pipelined") / "o.db"


@pytest.fixture(scope="module")
def server(db: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess("--db", str(db), "--sink", "none")
    yield proc
    proc.stop()


def bad_status(bad: bytes) -> bytes:
    return b"505" if b"HTTP/2.0" in bad else b"431" if bad.count(b"x-a") > 100 else b"400"


@pytest.mark.parametrize(
    "bad",
    [
        b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-a: a\x00b\r\n\r\n",  # 400
        b"GET /healthz HTTP/2.0\r\nhost: x\r\n\r\n",  # 505
        b"GET /healthz HTTP/1.1\r\n" + b"x-a: b\r\n" * 101 + b"\r\n",  # 431
    ],
    ids=["nul-400", "version-505", "fields-431"],
)
def test_a_committed_write_before_a_refused_head_is_answered(
    server: ServerProcess, db: Path, bad: bytes
) -> None:
    before = orders_in(db)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(post() + bad)  # one write: the valid POST, then a head to refuse
        reply = b""
        while chunk := sock.recv(65536):  # the server closes after the refusal
            reply += chunk
    time.sleep(0.2)
    created = orders_in(db) - before
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", reply)  # a body runs on into the next head
    assert created == 1
    assert statuses[0] == b"201", f"an order was committed, but the client got {statuses}"
    assert statuses[1:] == [bad_status(bad)], statuses
    assert b'"type": "urn:orders-core:problem:malformed-request"' in reply
