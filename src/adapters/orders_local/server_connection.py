"""One client connection of the hand-written local server (:mod:`orders_local.server`):
bytes in, at most one request being assembled, bytes out. The loop that owns the
connections is the server's; a connection asks it, through :class:`ConnectionOwner`, to run
a request, to watch its socket and to close it."""

from __future__ import annotations

import io
import json
import logging
import re
import selectors
import socket
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Final, Protocol

from orders_core import telemetry
from orders_core.errors import OrdersError
from orders_local.httphead import HeadError, parse_request_line, read_headers

access_log = logging.getLogger("orders_local.access")


class ConnectionOwner(Protocol):
    """What a connection needs of the server that runs it."""

    touched: dict[Connection, None] | None

    def body_length(self, headers: dict[str, str]) -> int: ...

    def close_connection(self, conn: Connection) -> None: ...

    def date(self) -> str: ...

    def respond(
        self, conn: Connection, head: Head, body: bytes, *, error: OrdersError | None = None
    ) -> None: ...

    def watch(self, conn: Connection, events: int) -> None: ...


HEAD_END: Final = re.compile(rb"\r?\n\r?\n")
MAX_HEAD: Final = 128 * 1024
"""A request head larger than this is refused with 431 before it is parsed."""
OUT_HIGH_WATER: Final = 256 * 1024
"""Stop reading a connection whose answers wait unread beyond this (pipelining clients)."""
REASONS: Final = {s.value: s.phrase for s in HTTPStatus}


def serialize(status: int, headers: dict[str, str], date: str) -> bytes:
    """A response head: status line, our Server and Date fields, then ``headers`` in order."""
    fields = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return (
        f"HTTP/1.1 {status} {REASONS.get(status, '')}\r\n"
        f"server: orders-local\r\ndate: {date}\r\n{fields}\r\n"
    ).encode("latin-1")


class LengthRequired(OrdersError):
    status = 411
    slug = "length-required"
    title = "Length required"


class Head:
    __slots__ = ("headers", "keep_alive", "length", "method", "target", "version")

    def __init__(
        self,
        method: str,
        target: str,
        version: str,
        headers: dict[str, str],
        length: int,
        keep_alive: bool,
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.length = length
        self.keep_alive = keep_alive


class Reader:
    __slots__ = ("callback",)

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback


class Connection:
    """One client socket: bytes in, at most one request being assembled, bytes out."""

    __slots__ = ("closing", "head", "inbuf", "last_seen", "out", "server", "sock", "writing")

    def __init__(self, sock: socket.socket, server: ConnectionOwner) -> None:
        self.sock = sock
        self.server = server
        self.inbuf = bytearray()
        self.out = bytearray()
        self.head: Head | None = None
        self.last_seen = time.monotonic()
        self.closing = False  # answer what is queued, then close
        self.writing = False  # registered for EVENT_WRITE (output waits on the socket)

    @property
    def busy(self) -> bool:
        """A request is under way: part of it has arrived, or its answer is not yet sent."""
        return bool(self.inbuf) or self.head is not None or bool(self.out)

    def on_readable(self) -> None:
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.server.close_connection(self)
            return
        if not data:  # the client closed its side
            self.server.close_connection(self)
            return
        self.last_seen = time.monotonic()
        self.inbuf += data
        self.process()

    def process(self) -> None:
        """Answer every complete request in the buffer, in order (pipelining included)."""
        while not self.closing and len(self.out) < OUT_HIGH_WATER:
            if self.head is None and not self._take_head():
                break
            head = self.head
            assert head is not None
            if len(self.inbuf) < head.length:
                break
            body = bytes(self.inbuf[: head.length])
            del self.inbuf[: head.length]
            self.head = None
            self.server.respond(self, head, body)
        if self.server.touched is not None:
            self.server.touched[self] = None  # sent after the turn's commit
        else:
            self.flush()

    def _take_head(self) -> bool:
        """Parse the next head from the buffer; False when it has not fully arrived."""
        while self.inbuf[:2] == b"\r\n":  # RFC 9112 2.2: ignore empty lines before a request
            del self.inbuf[:2]
        found = HEAD_END.search(self.inbuf)
        if found is None:
            if len(self.inbuf) > MAX_HEAD:
                self.fail(431, "the request head is too large")
            return False
        raw = bytes(self.inbuf[: found.end()])
        del self.inbuf[: found.end()]
        line, _, rest = raw.partition(b"\n")
        try:
            method, target, version = parse_request_line(line)
            headers = read_headers(io.BytesIO(rest))
        except HeadError as error:
            self.fail(error.status, error.message)
            return False
        connection = headers.get("connection", "").lower()
        keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
        head = Head(method, target, version, headers, 0, keep_alive)
        try:
            head.length = self.server.body_length(headers)
        except OrdersError as error:
            # The body will not be read: answer, then close, or its bytes would be taken
            # for the next request.
            head.keep_alive = False
            self.server.respond(self, head, b"", error=error)
            self.closing = True
            return False
        self.head = head
        if (
            head.length > len(self.inbuf)
            and version == "HTTP/1.1"
            and headers.get("expect", "").lower() == "100-continue"
        ):
            self.out += b"HTTP/1.1 100 Continue\r\n\r\n"
        return True

    def fail(self, status: int, message: str) -> None:
        """A request that cannot be parsed: a problem+json answer, then the connection closes."""
        problem = {
            "type": "urn:orders-core:problem:malformed-request",
            "title": "Malformed request",
            "status": status,
            "detail": message,
        }
        body = json.dumps(problem).encode()
        self.answer_and_close(status, {"content-type": "application/problem+json"}, body)

    def answer_and_close(self, status: int, headers: dict[str, str], body: bytes) -> None:
        """Queue a last answer; whatever else the client sent goes unanswered."""
        headers = {**headers, "content-length": str(len(body)), "connection": "close"}
        self.out += serialize(status, headers, self.server.date()) + body
        self.inbuf.clear()
        self.head = None
        self.closing = True

    def flush(self) -> None:
        if self.out:
            try:
                sent = self.sock.send(self.out)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self.server.close_connection(self)
                return
            del self.out[:sent]
            self.last_seen = time.monotonic()
        if self.out:
            if not self.writing:
                self.writing = True
                self.server.watch(self, selectors.EVENT_WRITE)
            return
        if self.closing:
            self.server.close_connection(self)
            return
        if self.writing:
            self.writing = False
            self.server.watch(self, selectors.EVENT_READ)
            self.process()  # requests that waited behind the backlog


def log_access(head: Head, status: int, path: str, duration_ms: float, correlation: str) -> None:
    """One JSON access-log line, the shape every front end writes (ids, no body)."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    fields: dict[str, Any] = {
        "method": head.method,
        "path": path,
        "status": status,
        "durationMs": duration_ms,
        "correlationId": correlation,
    }
    parent = telemetry.valid_traceparent(head.headers.get("traceparent"))
    if parent:
        fields["traceId"] = parent.split("-")[1]
    telemetry.log_line(access_log, "request", fields)
