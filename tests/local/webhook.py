"""A CloudEvents webhook on loopback for relay tests: it can refuse connections (down), then
listen (up), answer a chosen status, and hold a request until the test lets it go."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Webhook:
    """Records ``(method, path, ce-id)`` of every request it answers.

    Created down: its port is bound but not listening, so a connection is refused (the port
    is reserved, no other test can take it). ``open()`` starts listening on the same port.
    """

    def __init__(self, status: int = 204, location: str | None = None) -> None:
        self.status = status
        self.location = location
        self.requests: list[tuple[str, str, str | None]] = []
        self.hold_first = False
        self.holding = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                hook._answer(self)

            def do_GET(self) -> None:
                hook._answer(self)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self.server.daemon_threads = True
        self.server.server_bind()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread: threading.Thread | None = None

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            first = not self.requests
            self.requests.append((handler.command, handler.path, handler.headers.get("ce-id")))
        if first and self.hold_first:
            self.holding.set()
            self.release.wait(60)
        status = self.status if handler.path == "/hook" else 204
        handler.send_response(status)
        if self.location is not None and handler.path == "/hook":
            handler.send_header("location", self.location)
        handler.send_header("content-length", "0")
        handler.end_headers()

    def received(self) -> list[str]:
        """The ce-ids of the events POSTed to the hook, in arrival order."""
        with self._lock:
            return [ce_id for method, path, ce_id in self.requests if method == "POST" and ce_id]

    def open(self) -> None:
        self.server.server_activate()
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.release.set()
        if self._thread is not None:
            self.server.shutdown()
        self.server.server_close()
