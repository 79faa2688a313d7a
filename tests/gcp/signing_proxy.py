"""What Pub/Sub adds to a push and the emulator does not: an OIDC token.

The emulator pushes to this proxy on 127.0.0.1; the proxy signs a fresh Google-shaped ID
token for the push service account (with the test's key, whose JWKS the app trusts), forwards
the request to the app's push path and answers with the app's status, so the emulator acks or
redelivers exactly as Pub/Sub would. It records each answer.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.gcp.push_support import google_claims
from tests.local.jwks import Key


class _Quiet(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """The emulator drops idle keep-alive connections: not worth a traceback."""


class SigningProxy:
    def __init__(self, target: str, key: Key, issuer: str) -> None:
        self.answers: list[tuple[int, bytes]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                token = key.sign(google_claims(issuer))
                forward = urllib.request.Request(
                    target,
                    data=body,
                    method="POST",
                    headers={
                        "content-type": self.headers.get("content-type", "application/json"),
                        "authorization": f"Bearer {token}",
                    },
                )
                try:
                    with urllib.request.urlopen(forward, timeout=10) as response:
                        status, answer = response.status, response.read()
                except urllib.error.HTTPError as error:
                    status, answer = error.code, error.read()
                with outer._lock:
                    outer.answers.append((status, answer))
                self.send_response(status)
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = _Quiet(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/push"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def statuses(self) -> list[int]:
        with self._lock:
            return [status for status, _ in self.answers]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
