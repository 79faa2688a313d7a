"""Writes waiting for another process's SQLite write lock are answered within their
deadline (``--handler-timeout``, 10 s by default). The writer thread runs a group in one
unit whose transaction the first write begins; when that BEGIN failed after SQLite's busy
timeout (5 s), the group's next write began again and waited another 5 s: three writes
sent while another process held the lock were answered at ~5, ~15 and ~14 s. Now the
unit's first failed BEGIN fails its other writes at once (helper-35's review)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.local.support import ServerProcess
from tests.local.test_event_loop_server import post, read_responses
from tests.local.test_hostile_http import HOLD_LOCK

pytestmark = pytest.mark.slow

DEADLINE = 10.0  # --handler-timeout's default


def test_writes_behind_a_held_lock_are_answered_within_their_deadline(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    server = ServerProcess("--db", str(db), "--sink", "none")
    holder = None
    try:
        first = server.client()
        assert first.request("POST", "/orders", b'{"items":[{"id":"sku-1","qty":2}]}').status == 201
        first.close()
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(db), "18"], stdout=subprocess.PIPE, text=True
        )
        assert holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        waited: dict[int, tuple[float, bytes]] = {}

        def write(i: int, delay: float) -> None:
            time.sleep(delay)
            with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
                started = time.monotonic()
                sock.sendall(post())
                replies = read_responses(sock, 1, timeout=30)
                waited[i] = (time.monotonic() - started, replies[0][9:12] if replies else b"")

        # The first write takes the writer; the next two queue behind it (one group).
        threads = [
            threading.Thread(target=write, args=(i, delay))
            for i, delay in enumerate((0.0, 0.5, 1.0))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(40)
    finally:
        if holder is not None:
            holder.kill()
            holder.communicate(timeout=10)
        server.stop()
    assert sorted(waited) == [0, 1, 2]
    late = {i: (round(w, 1), status) for i, (w, status) in waited.items() if w > DEADLINE + 1.5}
    assert not late, f"answered past their {DEADLINE:g} s deadline: {late}"
