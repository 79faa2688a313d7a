"""The local HTTP server: one thread runs a ``selectors`` loop over non-blocking sockets.

Why this shape, and not the standard library's ThreadingHTTPServer it replaced: see
docs/decisions/0006-local-server-event-loop.md. In short, the core's work is CPU under one
GIL and SQLite takes one writer at a time, so a thread per connection bought no parallelism
and paid for it in GIL hand-offs (40% of the server's CPU was kernel time at 16
connections, p99 30 ms). One loop thread serves every connection in turn.

What it keeps from the old server: HTTP/1.1 keep-alive, TCP_NODELAY (without it a
keep-alive request stalls ~44 ms on Nagle + delayed ACK), a read timeout (a connection that
sends nothing for ``read_timeout`` seconds is closed: idle or slow clients hold no thread,
only a buffer), the body limit checked against Content-Length *before* reading, the strict
head parser of :mod:`orders_local.httphead`, a handler deadline passed to the core, one
JSON access-log line per request. On :meth:`OrdersHTTPServer.shutdown` it stops accepting,
lets requests already begun finish (bounded by a drain timeout), and closes idle
connections.

The price of one thread: a slow handler delays every connection. Handlers here are SQLite
commits of a few tens of microseconds; the core's deadline bounds the rest.

With a store that groups commits (SQLite), each turn of the loop answers its requests in
one transaction and sends the answers after its COMMIT: group commit without threads, 1.26x
the throughput at 16 connections (docs/decisions/0006).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import selectors
import socket
import threading
import time
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import unquote

from orders_core import telemetry
from orders_core.application import Deadline, Unit, new_id
from orders_core.edges.http import (
    HttpApi,
    HttpRequest,
    HttpResponse,
    parse_query,
    problem_response,
)
from orders_core.edges.numbers import ascii_int
from orders_core.errors import MalformedRequest, OrdersError, PayloadTooLarge, StoreUnavailable
from orders_local.httphead import HeadError, parse_request_line, read_headers

access_log = logging.getLogger("orders_local.access")
log = logging.getLogger("orders_local.server")

_REQUEST_ID_RE: Final = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_HEAD_END: Final = re.compile(rb"\r?\n\r?\n")
MAX_HEAD: Final = 128 * 1024
"""A request head larger than this is refused with 431 before it is parsed."""
_OUT_HIGH_WATER: Final = 256 * 1024
"""Stop reading a connection whose answers wait unread beyond this (pipelining clients)."""
_REASONS: Final = {s.value: s.phrase for s in HTTPStatus}
_ACCEPT: Final = object()
_WAKE: Final = object()


def _serialize(status: int, headers: dict[str, str], date: str) -> bytes:
    """A response head: status line, our Server and Date fields, then ``headers`` in order."""
    fields = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return (
        f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\n"
        f"server: orders-local\r\ndate: {date}\r\n{fields}\r\n"
    ).encode("latin-1")


class LengthRequired(OrdersError):
    status = 411
    slug = "length-required"
    title = "Length required"


class _Head:
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


class _Reader:
    __slots__ = ("callback",)

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback


class _Connection:
    """One client socket: bytes in, at most one request being assembled, bytes out."""

    __slots__ = ("closing", "head", "inbuf", "last_seen", "out", "server", "sock", "writing")

    def __init__(self, sock: socket.socket, server: OrdersHTTPServer) -> None:
        self.sock = sock
        self.server = server
        self.inbuf = bytearray()
        self.out = bytearray()
        self.head: _Head | None = None
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
        while not self.closing and len(self.out) < _OUT_HIGH_WATER:
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
        found = _HEAD_END.search(self.inbuf)
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
        head = _Head(method, target, version, headers, 0, keep_alive)
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
        self.out += _serialize(status, headers, self.server.date()) + body
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


class OrdersHTTPServer:
    """Serves an :class:`~orders_core.edges.http.HttpApi` on one address from one thread."""

    def __init__(
        self,
        address: tuple[str, int],
        api: HttpApi,
        *,
        read_timeout: float = 5.0,
        on_commit: Any = None,
        group_commit: bool = False,
        max_connections: int = 1024,
        backlog: int = 128,
    ) -> None:
        """``group_commit``: the store groups commits (SQLite). Then each turn of the loop
        answers its requests inside one of the service's units of work and sends the
        answers only once it has committed; if that commit fails, every connection that had
        an answer in the turn gets a 503 instead and is closed. Either way ``on_commit``
        runs after a unit that committed something (the unit says so, not the status)."""
        self.api = api
        self.group_commit = group_commit
        self._unit: Unit | None = None
        # Within a unit: connections to flush after the commit, and where each one's
        # uncommitted answers begin in its output buffer.
        self.touched: dict[_Connection, None] | None = None
        self._marks: dict[_Connection, int] = {}
        # Within a unit: the access-log lines of the turn's answers, written after its end.
        self._held_lines: list[tuple[_Connection, tuple[_Head, int, str, float, str], str | None]]
        self._held_lines = []
        self._committed_writes = False
        self.read_timeout = read_timeout
        self.on_commit = on_commit
        self.max_connections = max_connections
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.bind(address)
            self.socket.listen(backlog)
        except OSError:
            self.socket.close()
            raise
        self.socket.setblocking(False)
        self.server_address: tuple[str, int] = self.socket.getsockname()[:2]
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._connections: dict[int, _Connection] = {}
        self._accepting = False
        self._stop_requested = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()  # until serve_forever runs
        self._drained = True
        self._drain_timeout = 10.0
        self._accept_paused_until = 0.0
        self.draining = False
        self._date = ("", 0)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- the loop ----------------------------------------------------------------------

    def serve_forever(self, poll_interval: float = 0.25) -> None:
        """Run until :meth:`shutdown`; then finish the requests already begun."""
        self._stopped.clear()
        sel = self._selector
        sel.register(self._wake_r, selectors.EVENT_READ, _WAKE)
        self._set_accepting(True)
        next_sweep = time.monotonic() + poll_interval
        try:
            while not self._stop_requested.is_set():
                self._turn(poll_interval)
                now = time.monotonic()
                if now >= next_sweep:
                    self._sweep(now)
                    next_sweep = now + poll_interval
            self._drain(poll_interval)
        finally:
            for conn in list(self._connections.values()):
                self.close_connection(conn)
            with contextlib.suppress(KeyError, ValueError):
                sel.unregister(self._wake_r)
            self._set_accepting(False)
            self._stopped.set()

    def _turn(self, timeout: float) -> None:
        ready = self._selector.select(timeout)
        if ready:
            with telemetry.batched_log_lines():  # one write of access-log lines per turn
                self._answer(ready)

    def _answer(self, ready: list[tuple[selectors.SelectorKey, int]]) -> None:
        if not self.group_commit:
            self._dispatch(ready)
            return
        self.touched, self._marks, self._committed_writes = {}, {}, False
        self._held_lines = []
        withdrawn: set[_Connection] = set()
        committed = False
        try:
            with self.api.service.unit_of_work() as unit:
                self._unit = unit
                self._dispatch(ready)
            committed = True
            self._committed_writes = bool(unit.committed)
        except Exception as exc:  # the commit failed: none of the turn's answers holds
            withdrawn = set(self._marks)
            self._withdraw(exc)
        finally:
            touched, self.touched = self.touched, None
            self._marks, self._unit = {}, None
        for conn in touched:
            conn.flush()
        # What no answer waits for comes after the answers are sent: with 4 clients that
        # was 1.16x the throughput (docs/decisions/0006).
        if committed and self._committed_writes and self.on_commit is not None:
            self.on_commit()
        self._log_held(withdrawn)

    def _withdraw(self, exc: Exception) -> None:
        log.error(
            "commit failed (%s): %d connections get 503 instead of their answers",
            type(exc).__name__,
            len(self._marks),
        )
        error = StoreUnavailable("the database is unavailable; nothing was committed")
        response = problem_response(error, "/")
        for conn, mark in self._marks.items():
            del conn.out[mark:]
            conn.answer_and_close(response.status, response.headers, response.body)

    def _dispatch(self, ready: list[tuple[selectors.SelectorKey, int]]) -> None:
        for key, mask in ready:
            data = key.data
            if data is _ACCEPT:
                self._accept()
            elif data is _WAKE:
                with contextlib.suppress(OSError):
                    self._wake_r.recv(4096)
            elif isinstance(data, _Reader):
                try:
                    data.callback()
                except Exception:
                    log.exception("reader %s failed", data.callback)
            else:
                try:
                    if mask & selectors.EVENT_WRITE:
                        data.flush()
                    else:
                        data.on_readable()
                except Exception:  # a bug must cost one connection, not the server
                    log.exception("connection failed")
                    self.close_connection(data)

    def _drain(self, poll_interval: float) -> None:
        """Stop accepting; close idle connections; give begun requests ``drain_timeout``."""
        self.draining = True
        self._set_accepting(False)
        deadline = time.monotonic() + self._drain_timeout
        while True:
            for conn in [c for c in self._connections.values() if not c.busy]:
                self.close_connection(conn)
            if not self._connections:
                self._drained = True
                return
            if time.monotonic() >= deadline:
                self._drained = False
                return
            self._turn(min(poll_interval, 0.05))

    def _sweep(self, now: float) -> None:
        """Close connections silent for longer than the read timeout; resume accepting."""
        limit = now - self.read_timeout
        for conn in [c for c in self._connections.values() if c.last_seen < limit]:
            self.close_connection(conn)
        if (
            not self._accepting
            and not self.draining
            and now >= self._accept_paused_until
            and len(self._connections) < self.max_connections
        ):
            self._set_accepting(True)

    def _set_accepting(self, on: bool) -> None:
        if on == self._accepting:
            return
        self._accepting = on
        if on:
            self._selector.register(self.socket, selectors.EVENT_READ, _ACCEPT)
        else:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(self.socket)

    def _accept(self) -> None:
        for _ in range(64):
            try:
                sock, _ = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # Out of file descriptors (EMFILE/ENFILE) or the like: the listening socket
                # stays readable, so pause accepting rather than spin; the sweep resumes it.
                log.warning("accept failed (%s); pausing new connections", exc)
                self._accept_paused_until = time.monotonic() + 0.5
                self._set_accepting(False)
                return
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Connection(sock, self)
            self._connections[sock.fileno()] = conn
            self._selector.register(sock, selectors.EVENT_READ, conn)
            if len(self._connections) >= self.max_connections:
                self._set_accepting(False)  # the backlog holds the rest until one closes
                return

    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` on the loop thread, inside the turn's unit of work, whenever
        ``fd`` is readable (the relay process's delivery reports). Before serving only."""
        self._selector.register(fd, selectors.EVENT_READ, _Reader(callback))

    def watch(self, conn: _Connection, events: int) -> None:
        self._selector.modify(conn.sock, events, conn)

    def close_connection(self, conn: _Connection) -> None:
        if self._connections.pop(conn.sock.fileno(), None) is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.sock)
        with contextlib.suppress(OSError):
            conn.sock.shutdown(socket.SHUT_WR)
        conn.sock.close()
        if (
            not self._accepting
            and not self.draining
            and not self._stop_requested.is_set()
            and time.monotonic() >= self._accept_paused_until
        ):
            self._set_accepting(len(self._connections) < self.max_connections)

    # -- from other threads ------------------------------------------------------------

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Stop accepting, finish begun requests (up to ``timeout``), stop the loop.

        Safe from any thread; returns whether every begun request was answered.
        """
        self._drain_timeout = timeout
        self._stop_requested.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self._stopped.wait(timeout + 5)
        return self._drained

    def server_close(self) -> None:
        self.socket.close()
        self._wake_r.close()
        self._wake_w.close()
        self._selector.close()

    # -- one request -------------------------------------------------------------------

    def body_length(self, headers: dict[str, str]) -> int:
        if headers.get("transfer-encoding"):
            raise LengthRequired("send the body with Content-Length (chunked is not accepted)")
        raw = headers.get("content-length")
        if raw is None:
            return 0
        length = ascii_int(raw, max_digits=1000)  # U+00B2 passes isdigit()
        if length is None:
            raise MalformedRequest("Content-Length must be a non-negative integer")
        if length > self.api.max_body:
            raise PayloadTooLarge(f"the body is over the {self.api.max_body}-byte limit")
        return length

    def respond(
        self, conn: _Connection, head: _Head, body: bytes, *, error: OrdersError | None = None
    ) -> None:
        """Run one request through the API and queue its answer on the connection."""
        started = time.perf_counter()
        if self.touched is not None:
            self._marks.setdefault(conn, len(conn.out))
        supplied = head.headers.get("x-request-id", "")
        correlation = supplied if _REQUEST_ID_RE.match(supplied) else new_id()
        token = telemetry.correlation_id.set(correlation)
        order_token = telemetry.order_id.set(None)
        path, _, query = head.target.partition("?")
        try:
            if error is not None:
                response = problem_response(error, path)
            else:
                request = HttpRequest(
                    method=head.method,
                    path=unquote(path),
                    headers=head.headers,
                    query=parse_query(query),
                    body=body,
                )
                deadline = Deadline.after(self.api.timeout)
                if self._unit is not None:  # the turn's unit: woken after it commits
                    response = self.api.handle(request, deadline, unit=self._unit)
                else:
                    with self.api.service.unit_of_work() as unit:
                        response = self.api.handle(request, deadline, unit=unit)
                    if unit.committed and self.on_commit is not None:
                        self.on_commit()
            keep_alive = head.keep_alive and not self.draining
            conn.out += self._encode(response, correlation, keep_alive, head)
            if not keep_alive:
                conn.closing = True
            duration_ms = round((time.perf_counter() - started) * 1000, 2)
            if self.touched is None:
                self._log(head, response.status, path, duration_ms, correlation)
            else:  # logged after the commit, which decides what the client gets
                held = (head, response.status, path, duration_ms, correlation)
                self._held_lines.append((conn, held, telemetry.order_id.get()))
        finally:
            telemetry.order_id.reset(order_token)
            telemetry.correlation_id.reset(token)

    def _encode(
        self, response: HttpResponse, correlation: str, keep_alive: bool, head: _Head
    ) -> bytes:
        headers = {
            **response.headers,
            "content-length": str(len(response.body)),
            "x-correlation-id": correlation,
        }
        if not keep_alive:
            headers["connection"] = "close"
        elif head.version == "HTTP/1.0":
            headers["connection"] = "keep-alive"
        encoded = _serialize(response.status, headers, self.date())
        return encoded if head.method == "HEAD" else encoded + response.body

    def date(self) -> str:
        """The Date header, formatted once a second."""
        now = int(time.time())
        if self._date[1] != now:
            self._date = (formatdate(now, usegmt=True), now)
        return self._date[0]

    def _log_held(self, withdrawn: set[_Connection]) -> None:
        """The turn's access-log lines, now that its commit has gone one way or the other:
        a withdrawn answer is logged as the 503 its client got, naming no order."""
        held, self._held_lines = self._held_lines, []
        for conn, line, order in held:
            head, status, path, duration_ms, correlation = line
            if conn in withdrawn:
                status, order = StoreUnavailable.status, None
            token = telemetry.correlation_id.set(correlation)
            order_token = telemetry.order_id.set(order)
            try:
                self._log(head, status, path, duration_ms, correlation)
            finally:
                telemetry.order_id.reset(order_token)
                telemetry.correlation_id.reset(token)

    @staticmethod
    def _log(head: _Head, status: int, path: str, duration_ms: float, correlation: str) -> None:
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
