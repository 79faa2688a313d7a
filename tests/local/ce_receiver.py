"""A CloudEvents HTTP receiver on loopback for webhook tests (HTTP/1.1, keep-alive): it
records every request and answers as told: a status, a redirect, nothing at all (hang), an
answer trickled a byte at a time, or a connection closed after answering."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    answered: int | None = None

    def cloudevent(self) -> dict[str, Any]:
        """The structured CloudEvent a consumer reads (HTTP binding 3.1 and 3.2)."""
        media = self.headers.get("content-type", "")
        if media.startswith("application/cloudevents+json"):
            event: dict[str, Any] = json.loads(self.body)
            return event
        event = {
            k[3:]: unquote(v, errors="strict")
            for k, v in self.headers.items()
            if k.startswith("ce-")
        }
        event["datacontenttype"] = media
        event["data"] = json.loads(self.body)
        return event


class Receiver:
    def __init__(self) -> None:
        self.status = 202  # a Knative broker's answer
        self.behaviour = "answer"  # or hang, trickle, close
        self.location: str | None = None
        self.body = b""
        self.fail_from: int | None = None
        """Requests from this index on get ``status``; earlier ones 202."""
        self.requests: list[Request] = []
        self.connections = 0
        self.release = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def setup(self) -> None:
                super().setup()
                with receiver._lock:
                    receiver.connections += 1

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    index = len(receiver.requests)
                    receiver.requests.append(Request("POST", self.path, headers, body))
                receiver._answer(self, index)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def _answer(self, handler: BaseHTTPRequestHandler, index: int) -> None:
        if self.behaviour == "hang":
            self.release.wait(30)
            return
        if self.behaviour == "trickle":  # a status line, then a byte now and then, for ever
            with contextlib.suppress(OSError):  # until the client gives up
                handler.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                while not self.release.wait(0.1):
                    handler.wfile.write(b"a")
                    handler.wfile.flush()
            return
        failing = self.fail_from is None or index >= self.fail_from
        status = self.status if failing else 202
        self.requests[index].answered = status
        handler.send_response(status)
        if self.location is not None and failing:
            handler.send_header("location", self.location)
        handler.send_header("content-length", str(len(self.body)))
        handler.end_headers()
        handler.wfile.write(self.body)
        if self.behaviour == "close":
            handler.close_connection = True  # without saying so (no Connection: close)

    def received(self) -> list[dict[str, Any]]:
        """The events it accepted (answered 2xx)."""
        with self._lock:
            return [r.cloudevent() for r in self.requests if 200 <= (r.answered or 0) < 300]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def wait_until(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.01)
