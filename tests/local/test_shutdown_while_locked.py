"""SIGTERM while a write waits for another process's SQLite write lock: the write is
answered (its commit is told 201), or not committed. uvicorn's graceful shutdown waited
``int(--handler-timeout)`` seconds, then cancelled the task and answered a text/plain 500,
while the write in the writer thread, inside BEGIN IMMEDIATE (busy timeout 5 s), committed
once the other process let go: a client told 500 retries, and without a key the order is
made twice (helper-35's review). The grace is now the deadline plus the store's wait."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.local.support import ServerProcess
from tests.local.test_event_loop_server import post, read_responses
from tests.local.test_hostile_http import HOLD_LOCK, orders_in

pytestmark = pytest.mark.slow


def test_a_write_cut_off_by_shutdown_is_either_answered_or_not_committed(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    server = ServerProcess("--db", str(db), "--sink", "none", "--handler-timeout", "2")
    try:
        before = orders_in(db)
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(db), "3.5"], stdout=subprocess.PIPE, text=True
        )
        assert holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
            sock.sendall(post())
            time.sleep(0.3)  # the write waits for the lock in the writer thread
            server.proc.send_signal(signal.SIGTERM)
            replies = read_responses(sock, 1, timeout=15)
        holder.communicate(timeout=10)
        server.proc.wait(timeout=30)
    finally:
        if server.proc.poll() is None:
            server.stop()
    created = orders_in(db) - before
    assert len(replies) == 1
    status = replies[0][9:12]
    head = replies[0].split(b"\r\n\r\n", 1)[0].lower()
    problem = b"content-type: application/problem+json" in head
    # Committed: the client must have been told 201. Not committed: a problem+json 503.
    assert (status, created) in {(b"201", 1), (b"503", 0)}, (
        f"answered {status!r} with {created} order(s) committed; head: {head!r}"
    )
    assert status == b"201" or problem
