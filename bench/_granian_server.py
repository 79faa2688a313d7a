"""The orders ASGI app (``orders_local.asgi_app:factory``) on granian instead of uvicorn, for
bench/container.py ``--granian``: the same runtime, configured from ORDERS_LOCAL_*
variables, on granian's Rust HTTP server with one worker and a uvloop event loop.

    python bench/_granian_server.py ENDPOINT_URL TABLE
"""

from __future__ import annotations

import os
import socket
import sys

if __name__ == "__main__":
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    os.environ.update(
        ORDERS_LOCAL_STORE="dynamodb",
        ORDERS_LOCAL_DYNAMODB_ENDPOINT=sys.argv[1],
        ORDERS_LOCAL_TABLE=sys.argv[2],
    )
    print(f"granian listening on http://127.0.0.1:{port}", file=sys.stderr, flush=True)
    argv = [sys.executable, "-m", "granian", "--interface", "asgi", "--factory"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop"]
    argv += ["--no-access-log", "--log-level", "warning", "orders_local.asgi_app:factory"]
    os.execv(sys.executable, argv)
