"""moto as a real HTTP server on 127.0.0.1, with each API call atomic.

moto's backends check a ConditionExpression and apply the write without a lock, so under
concurrent requests two conditional writes to one item can both succeed (seen here: two
orders from 16 concurrent creates with one Idempotency-Key, through ThreadedMotoServer).
DynamoDB itself applies each call atomically. This server is moto's threaded server with one
lock around the WSGI app: requests still arrive concurrently over real sockets and interleave
between calls, which is where our races live, but each call is applied whole.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any


class _AtomicApp:
    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self._lock:
            return list(self._app(environ, start_response))


class MotoServer:
    def __init__(self) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        app = _AtomicApp(DomainDispatcherApplication(create_backend_app))
        self._server = make_server("127.0.0.1", 0, app, True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> MotoServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
