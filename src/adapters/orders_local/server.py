"""The hand-written local server (``orders-local serve --server builtin``): one thread runs a
``selectors`` loop over non-blocking sockets (docs/decisions/0006-local-server-event-loop.md).

One loop thread serves every connection in turn: the core's work is CPU under one GIL and
SQLite takes one writer at a time, so a thread per connection bought no parallelism. It
keeps HTTP/1.1 keep-alive, TCP_NODELAY, a read timeout, the body limit
checked against Content-Length before reading, the strict head parser of
:mod:`orders_local.httphead`, the core's handler deadline and one JSON access-log line per
request. With a store that groups commits, each turn of the loop answers its requests in one
transaction and sends the answers after its COMMIT. Connections: :mod:`.server_connection`.
"""

from __future__ import annotations

import contextlib
import logging
import re
import selectors
import socket
import threading
import time
from collections.abc import Callable
from email.utils import formatdate
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
from orders_local.server_connection import (
    Connection,
    Head,
    LengthRequired,
    Reader,
    log_access,
    serialize,
)

log = logging.getLogger("orders_local.server")

_REQUEST_ID_RE: Final = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_ACCEPT: Final = object()
_WAKE: Final = object()


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
        self.touched: dict[Connection, None] | None = None
        self._marks: dict[Connection, int] = {}
        # Within a unit: the access-log lines of the turn's answers, written after its end.
        self._held_lines: list[tuple[Connection, tuple[Head, int, str, float, str], str | None]]
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
        self._connections: dict[int, Connection] = {}
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
        withdrawn: set[Connection] = set()
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
            elif isinstance(data, Reader):
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
            conn = Connection(sock, self)
            self._connections[sock.fileno()] = conn
            self._selector.register(sock, selectors.EVENT_READ, conn)
            if len(self._connections) >= self.max_connections:
                self._set_accepting(False)  # the backlog holds the rest until one closes
                return

    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` on the loop thread, inside the turn's unit of work, whenever
        ``fd`` is readable (the relay process's delivery reports). Before serving only."""
        self._selector.register(fd, selectors.EVENT_READ, Reader(callback))

    def watch(self, conn: Connection, events: int) -> None:
        self._selector.modify(conn.sock, events, conn)

    def close_connection(self, conn: Connection) -> None:
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
        self, conn: Connection, head: Head, body: bytes, *, error: OrdersError | None = None
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
                log_access(head, response.status, path, duration_ms, correlation)
            else:  # logged after the commit, which decides what the client gets
                held = (head, response.status, path, duration_ms, correlation)
                self._held_lines.append((conn, held, telemetry.order_id.get()))
        finally:
            telemetry.order_id.reset(order_token)
            telemetry.correlation_id.reset(token)

    def _encode(
        self, response: HttpResponse, correlation: str, keep_alive: bool, head: Head
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
        encoded = serialize(response.status, headers, self.date())
        return encoded if head.method == "HEAD" else encoded + response.body

    def date(self) -> str:
        """The Date header, formatted once a second."""
        now = int(time.time())
        if self._date[1] != now:
            self._date = (formatdate(now, usegmt=True), now)
        return self._date[0]

    def _log_held(self, withdrawn: set[Connection]) -> None:
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
                log_access(head, status, path, duration_ms, correlation)
            finally:
                telemetry.order_id.reset(order_token)
                telemetry.correlation_id.reset(token)
