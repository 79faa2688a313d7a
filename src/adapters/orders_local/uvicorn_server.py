"""The orders ASGI app on uvicorn (httptools + uvloop), configured rather than rewritten.

uvicorn parses (llhttp: no bare CR, no NUL, no obs-fold, ASCII Content-Length, one
Content-Length), keeps connections alive, answers pipelined requests in order, and caps
concurrency (``limit_concurrency``: a 503, never silence). What it does not bound, this
module adds in a small subclass of its httptools protocol:

- a request-head deadline: a head must be complete within ``read_timeout`` of the
  connection opening or of the previous answer (uvicorn's keep-alive timer stops at the
  first byte, so a head dribbled byte by byte would be held open for ever: slowloris);
- an answer deadline: a client that takes in no answer for ``read_timeout`` while they
  pile up (pipelined requests, never read) is cut off;
- a head size cap (:data:`MAX_HEAD` bytes, :data:`MAX_HEADERS` fields of at most
  :data:`MAX_FIELD` bytes each): 431, counted as bytes arrive, not once the head is whole;
- HTTP versions other than 1.0 and 1.1: 505; every refusal as problem+json, then close;
- one ``send()`` per response: uvicorn writes a response's head and its body separately,
  two syscalls and two packets where one does (:class:`_JoinedWrites`).

The body limit and the body deadline are the ASGI app's (:mod:`orders_core.edges.asgi`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from orders_core.edges.asgi import OrdersAsgi

MAX_HEAD: Final = 128 * 1024
MAX_HEADERS: Final = 100
MAX_FIELD: Final = 64 * 1024
DEFAULT_MAX_CONNECTIONS: Final = 1024
LINGER_SECONDS: Final = 2.0
LINGER_BYTES: Final = 16 * 1024 * 1024
"""How long and how much of a refused body is read and dropped before a close (_close_after)."""
STORE_WAIT: Final = 5.0
"""Seconds a store call may run past its request's deadline: SQLite's busy timeout."""

log = logging.getLogger("orders_local.server")


class _Refused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class BoundedHeadProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head deadline, a head size cap and problem+json
    refusals. The deadline is the config's ``orders_head_timeout`` (:func:`uvicorn_config`;
    an attribute, not a subclass per value: ``--workers`` pickles the config and the
    class must be importable by name), else its keep-alive timeout."""

    _head_timer: asyncio.TimerHandle | None = None
    _head_deadline = 0.0
    _in_head = True
    _head_bytes = 0
    _fields = 0
    _refusal: _Refused | None = None
    _write_timer: asyncio.TimerHandle | None = None
    _lingering = False
    _lingered = 0
    _deferred: _Refused | None = None
    """A refusal held until the requests read before the refused bytes are answered."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        """Answers are piling up unread: the client has the read timeout to take them in
        (to drain the transport's buffer below its low-water mark), or the connection is
        aborted. uvicorn waits for the drain without a bound: a client that pipelines
        requests and never reads would hold its connection, and a slot under the cap, for
        ever (a slowloris on the answers' side)."""
        super().pause_writing()
        if self._write_timer is None:
            timeout = getattr(self.config, "orders_head_timeout", self.config.timeout_keep_alive)
            self._write_timer = self.loop.call_later(timeout, self._write_timed_out)

    def resume_writing(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        super().resume_writing()

    def _write_timed_out(self) -> None:
        self._write_timer = None
        log.info("a client took in no answer within the read timeout: connection aborted")
        self.transport.abort()  # close() would wait for the buffer it never drains

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            self._lingered += len(data)  # a refused body still arriving: dropped unread
            if self._lingered > LINGER_BYTES:
                self.transport.close()
            return
        if self._deferred is not None:
            return  # past a refused head: nothing more is read, its answer is due last
        self._unset_keepalive_if_required()
        if self._in_head:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # no upgrades here: the request is answered as a plain one
        except httptools.HttpParserError as exc:
            status = 505 if str(exc) == "Invalid HTTP version" else 400  # llhttp's words
            refusal = self._refusal or _Refused(status, f"the request cannot be parsed: {exc}")
            self._refuse(refusal)
            return
        if self._in_head and self._head_bytes > MAX_HEAD:
            self._refuse(_Refused(431, "the request head is too large"))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._fields = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        if self._fields > MAX_HEADERS:
            self._refusal = _Refused(431, f"more than {MAX_HEADERS} header fields")
            raise self._refusal
        if len(name) + len(value) > MAX_FIELD:
            self._refusal = _Refused(431, f"a header field is over {MAX_FIELD} bytes")
            raise self._refusal
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False  # the head timer, if it fires now, finds no head to time
        self._head_bytes = 0
        version = self.parser.get_http_version()
        if version not in ("1.0", "1.1"):
            self._refusal = _Refused(505, f"HTTP/{version} is not supported: use HTTP/1.1")
            raise self._refusal
        previous = self.cycle
        limit = self.limit_concurrency
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            # Over the cap: uvicorn's own 503 is text/plain; this one is problem+json.
            app, self.app, self.limit_concurrency = self.app, _over_capacity, None
            try:
                super().on_headers_complete()
            finally:
                self.app, self.limit_concurrency = app, limit
        else:
            super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle is not previous:  # its task has not run yet
            writes = _JoinedWrites(self.transport, self.loop, lambda: self._close_after(cycle))
            cycle.transport = writes  # type: ignore[assignment]
        if version == "1.0" and self.parser.should_keep_alive() and self.cycle is not None:
            self.cycle.keep_alive = True  # uvicorn closes every HTTP/1.0 connection

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._lingering:
            return
        if self._deferred is not None:
            if not self._answers_due():
                refusal, self._deferred = self._deferred, None
                self._write_refusal(refusal)
            return
        if not self.pipeline and not self.transport.is_closing():
            self._in_head = True  # idle or a next head under way: either must end in time
            self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        """A next head is due by now + the timeout. One timer per connection, moved on
        when it fires early rather than cancelled and made again for every request."""
        timeout = getattr(self.config, "orders_head_timeout", self.config.timeout_keep_alive)
        self._head_deadline = self.loop.time() + timeout
        if self._head_timer is None:
            self._head_timer = self.loop.call_at(self._head_deadline, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        """No complete head in time: idle, or dribbling one (slowloris). Close. A request
        under way is not timed (its answer arms the timer again); a deadline moved on
        since the timer was set is waited for."""
        self._head_timer = None
        if not self._in_head or self.transport.is_closing():
            return
        if self.loop.time() < self._head_deadline:
            self._head_timer = self.loop.call_at(self._head_deadline, self._head_timed_out)
        elif self.cycle is None or self.cycle.response_complete:
            self.transport.close()

    def _close_after(self, cycle: Any) -> None:
        """Close once ``cycle``'s answer is out. If the client may still be sending that
        request's body (refused by its declared size before a byte of it was read), closing
        with its bytes unread makes the kernel answer them with a reset, which can destroy
        the answer before the client reads it. Then this side ends (a FIN after the
        answer), what still arrives is dropped unread for at most :data:`LINGER_SECONDS`
        and :data:`LINGER_BYTES`, and the connection closes: a lingering close."""
        transport = self.transport
        if transport.is_closing() or not cycle.more_body or not transport.can_write_eof():
            transport.close()
            return
        self._lingering = True
        self._cancel_head_timer()
        transport.write_eof()
        self.flow.resume_reading()
        self.loop.call_later(LINGER_SECONDS, transport.close)

    def _answers_due(self) -> bool:
        """Whether whole requests read before now still wait for their answers: one whose
        task runs, or pipelined ones behind it."""
        cycle = self.cycle
        running = cycle is not None and not cycle.response_complete and not cycle.more_body
        return running or bool(self.pipeline)

    def _refuse(self, refusal: _Refused) -> None:
        """Refuse the bytes that failed, and close: once every whole request read before
        them has its answer (its write may have committed: a client told only 400 would
        retry it, and without a key make it twice), at once otherwise."""
        self._cancel_head_timer()
        if self._answers_due():
            self._deferred = refusal
            self.flow.pause_reading()
            return
        self._write_refusal(refusal)

    def _write_refusal(self, refusal: _Refused) -> None:
        problem = {
            "type": "urn:orders-core:problem:malformed-request",
            "title": "Malformed request",
            "status": refusal.status,
            "detail": refusal.detail,
        }
        body = json.dumps(problem).encode()
        phrase = {400: b"Bad Request", 431: b"Request Header Fields Too Large"}.get(
            refusal.status, b"HTTP Version Not Supported"
        )
        head = b"HTTP/1.1 %d %s\r\n" % (refusal.status, phrase)
        for name, value in self.server_state.default_headers:
            head += name + b": " + value + b"\r\n"
        head += (
            b"content-type: application/problem+json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n" % len(body)
        )
        # Through the last request's writer, if it has one: its answer may still be held
        # there (_JoinedWrites), and must go out first.
        writer: Any = self.transport
        if self.cycle is not None and isinstance(self.cycle.transport, _JoinedWrites):
            writer = self.cycle.transport
        if not self.transport.is_closing():
            writer.write(head + body)
            writer.close()


_OVER_CAPACITY: Final = json.dumps(
    {
        "type": "urn:orders-core:problem:over-capacity",
        "title": "Over capacity",
        "status": 503,
        "detail": "the server has as many connections as it serves: try again shortly",
    }
).encode()


async def _over_capacity(scope: Any, receive: Any, send: Any) -> None:
    """The answer past ``--max-connections``: a 503 to retry, and the connection closed."""
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", b"%d" % len(_OVER_CAPACITY)),
        (b"retry-after", b"1"),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": _OVER_CAPACITY})


class _JoinedWrites:
    """A request cycle's view of the connection's transport: a write is held until the
    next one (a response's head until its body, written in the same step of the app's
    task) and both go out in one ``write``; whatever is still held at the end of the loop
    iteration goes out then, and ``close`` sends it first."""

    __slots__ = ("_close", "_held", "_loop", "_transport")

    def __init__(
        self,
        transport: asyncio.Transport,
        loop: asyncio.AbstractEventLoop,
        close: Callable[[], None] | None = None,
    ) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._close = close

    def write(self, data: bytes) -> None:
        if self._held:
            self._held.append(data)
            self._flush()
            return
        self._held.append(data)
        self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        if self._held:
            data = b"".join(self._held)
            self._held.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        if self._close is None:
            self._transport.close()
        else:
            self._close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def uvicorn_config(
    app: Any,
    *,
    read_timeout: float = 5.0,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    backlog: int = 128,
    **options: Any,
) -> uvicorn.Config:
    """How orders-local runs uvicorn; ``options`` pass through (workers, factory)."""
    config = uvicorn.Config(
        app,
        http=BoundedHeadProtocol,
        loop="auto",  # uvloop when installed (uvicorn[standard])
        lifespan="on",
        log_config=None,
        access_log=False,  # the app writes the JSON access-log line
        proxy_headers=False,  # the app reads no client address: a middleware layer saved
        # uvicorn refuses when connections >= the limit, counting the one asking: + 1
        # serves max_connections of them, as the option says.
        limit_concurrency=max_connections + 1,
        backlog=backlog,
        timeout_keep_alive=int(max(1, read_timeout)),
        server_header=False,
        headers=[("server", "orders-local")],
        **options,
    )
    config.orders_head_timeout = read_timeout  # type: ignore[attr-defined]
    return config


def listen(address: tuple[str, int], backlog: int) -> socket.socket:
    """The listening socket, bound before uvicorn starts: the port is known at once (also
    for ``--port 0``), and EADDRINUSE is an OSError the CLI reports."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class UvicornServer:
    """An :class:`~orders_core.edges.asgi.OrdersAsgi` app on uvicorn, in one thread of this
    process: the same start/stop surface the runtime and the tests use."""

    def __init__(
        self,
        address: tuple[str, int],
        app: OrdersAsgi,
        *,
        read_timeout: float = 5.0,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        backlog: int = 128,
    ) -> None:
        self.app = app
        self.socket = listen(address, backlog)
        self.server_address: tuple[str, int] = self.socket.getsockname()[:2]
        config = uvicorn_config(
            app, read_timeout=read_timeout, max_connections=max_connections, backlog=backlog
        )
        self._server = uvicorn.Server(config)
        self._stopped = threading.Event()
        self._stopped.set()
        for name in ("uvicorn", "uvicorn.error"):
            logging.getLogger(name).setLevel(logging.WARNING)  # its start-up chatter

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def serve_forever(self, poll_interval: float = 0.1) -> None:
        """Run until :meth:`shutdown` (uvicorn looks at its exit flag every 0.1 s)."""
        self._stopped.clear()
        try:
            self._server.run(sockets=[self.socket])
        finally:
            if not self.app.draining:
                # Asked to exit while still starting, uvicorn returns without its lifespan
                # shutdown: stop the lanes and run the shutdown hooks here, once.
                self.app.shutdown()
            self._stopped.set()

    def wait_started(self, timeout: float = 30.0) -> bool:
        """Whether uvicorn is serving (its startup, the app's lifespan startup included, is
        done) within ``timeout``: the startup line is printed only then, so a signal that
        follows it finds a server that shuts down in order."""
        deadline = time.monotonic() + timeout
        while not self._server.started and not self._stopped.is_set():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return bool(self._server.started)

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Stop accepting, let begun requests finish, stop the lanes. Safe from any thread;
        whether every begun request was answered.

        ``timeout`` is a request's deadline; a begun request gets that plus
        :data:`STORE_WAIT`, the longest a store call runs past it (SQLite waits out its busy
        timeout; the deadline is checked between calls, not inside one). uvicorn cancels
        what is still running then and answers 500, while the write it started may still
        commit: a client told 500 retries, and without a key makes the order twice."""
        grace = max(1, math.ceil(timeout + STORE_WAIT))
        self._server.config.timeout_graceful_shutdown = grace
        self._server.should_exit = True
        return self._stopped.wait(grace + 5)

    def server_close(self) -> None:
        self.socket.close()
