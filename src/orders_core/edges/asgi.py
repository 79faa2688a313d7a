"""One ASGI 3 app over the core's :class:`~orders_core.edges.http.HttpApi`: every long-running
HTTP runtime serves this, on a server it does not write (uvicorn, granian, hypercorn).

Standard library only: the server is the runtime's choice, and ``import orders_core`` never
imports this module. What it does on top of :class:`HttpApi`:

- the request head and body become an :class:`HttpRequest` (lower-case header names,
  repeated fields joined with ", ", :func:`parse_query`); ``Content-Length`` is checked
  before a byte of the body is read (over ``max_body``: 413; not ASCII digits: 400;
  ``Transfer-Encoding``: 411), and the body is counted as it arrives, so no more than
  ``max_body`` bytes are ever buffered;
- a total body deadline (``body_timeout``): a body that never finishes is a 408, not a
  request held open for ever;
- the request reaches the service through :class:`Lanes` (how a runtime schedules store
  work: groups of writes in one unit each, or a thread per request:
  :mod:`orders_core.edges.lanes`);
- ``x-request-id`` in (if well-formed), ``x-correlation-id`` out, the correlation id and
  order id on every log line, one JSON access-log line per request (method, path, status,
  durationMs, correlationId, traceId from a valid ``traceparent``), never the body; the
  lines are written together, at most :data:`LOG_INTERVAL` after the first of them;
- lifespan startup/shutdown: the lanes start and stop, then the runtime's own hooks.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator, MutableMapping, Sequence
from typing import Any, Final

from orders_core import telemetry
from orders_core.application import Deadline, new_id
from orders_core.edges.http import HttpApi, HttpRequest, parse_query, problem_response
from orders_core.edges.lanes import Answer, Lanes, lanes_for
from orders_core.edges.numbers import ascii_int
from orders_core.errors import MalformedRequest, OrdersError, PayloadTooLarge

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Hook = Callable[[], None]

_REQUEST_ID_RE: Final = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
DEFAULT_BODY_TIMEOUT: Final = 10.0
LOG_INTERVAL: Final = 0.01
"""Seconds access-log lines wait to be written together: each write wakes whoever reads
the stream (journald, a container runtime), a cost the loop paid once per request."""


class LengthRequired(OrdersError):
    status = 411
    slug = "length-required"
    title = "Length required"


class RequestTimeout(OrdersError):
    status = 408
    slug = "request-timeout"
    title = "Request timeout"


def correlation_for(supplied: str | None) -> str:
    """The caller's ``x-request-id`` if it is a plain token, else a new id."""
    if supplied and _REQUEST_ID_RE.match(supplied):
        return supplied
    return new_id()


class OrdersAsgi:
    """The ASGI 3 application. Build one with :func:`create_app`."""

    def __init__(
        self,
        api: HttpApi,
        lanes: Lanes,
        *,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        access_log: logging.Logger | None = None,
        on_startup: Sequence[Hook] = (),
        on_shutdown: Sequence[Hook] = (),
    ) -> None:
        self.api = api
        self.lanes = lanes
        self.body_timeout = body_timeout
        self.access_log = access_log or logging.getLogger("orders_core.access")
        self.on_startup = list(on_startup)
        self.on_shutdown = list(on_shutdown)
        self.draining = False
        self._held = telemetry.HeldLines()
        self._flush_due = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        # websockets: not served (the server refuses the upgrade when the app returns)

    # -- lifespan ----------------------------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.startup()
                except Exception as exc:  # the server must not serve half a runtime
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def startup(self) -> None:
        self.lanes.start()
        for hook in self.on_startup:
            hook()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the lanes (begun work has ``timeout`` s to end), then the runtime's hooks
        (the relay's final pass after the last commit)."""
        self.draining = True
        self.lanes.stop(timeout)
        self._held.flush()
        for hook in self.on_shutdown:
            hook()

    # -- one request -------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        headers = _headers(scope["headers"])
        correlation = correlation_for(headers.get("x-request-id"))
        method: str = scope["method"]
        path: str = scope["path"]
        answer: Answer
        try:
            body = await self._body(headers, receive)
        except OrdersError as error:  # refused before the service saw it: close after
            answer = Answer(problem_response(error, path), close=True)
        else:
            request = HttpRequest(
                method=method,
                path=path,
                headers=headers,
                query=parse_query(scope.get("query_string", b"").decode("latin-1")),
                body=body,
                peer=_peer(scope),
            )
            answer = await self.lanes.submit(request, Deadline.after(self.api.timeout), correlation)
        close = answer.close or self.draining
        keep_alive = (
            not close
            and scope.get("http_version") == "1.0"
            and _asks_keep_alive(headers.get("connection"))
        )
        head = method == "HEAD"
        await _send(send, answer, correlation, close=close, keep_alive=keep_alive, head=head)
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        self._log(method, path, answer, duration_ms, correlation, headers.get("traceparent"))

    async def _body(self, headers: dict[str, str], receive: Receive) -> bytes:
        """The body, read only once its declared size is known to fit, counted as it comes."""
        if "transfer-encoding" in headers:
            raise LengthRequired("send the body with Content-Length (chunked is not accepted)")
        raw = headers.get("content-length")
        if raw is None:
            return b""
        declared = ascii_int(raw, max_digits=1000)  # U+00B2 passes isdigit()
        if declared is None:
            raise MalformedRequest("Content-Length must be a non-negative integer")
        limit = self.api.max_body
        if declared > limit:
            raise PayloadTooLarge(f"the body is over the {limit}-byte limit")
        if declared == 0:
            return b""
        # The usual body is in already (the server read it with the head): a first step
        # of the read that does not wait needs no deadline, and its timer (~4 us) is
        # skipped. One that waits continues under the whole deadline.
        reading = _read(receive, limit)
        try:
            waiting_on = reading.send(None)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        except BaseException:
            reading.close()
            raise
        try:
            async with asyncio.timeout(self.body_timeout):  # a timer, not a task: wait_for's
                return await _Resumed(reading, waiting_on)
        except TimeoutError:
            raise RequestTimeout(
                f"the body did not arrive within {self.body_timeout:g} s"
            ) from None

    def _log(
        self,
        method: str,
        path: str,
        answer: Answer,
        duration_ms: float,
        correlation: str,
        traceparent: str | None,
    ) -> None:
        if not self.access_log.isEnabledFor(logging.INFO):
            return
        fields: dict[str, Any] = {
            "method": method,
            "path": path,
            "status": answer.response.status,
            "durationMs": duration_ms,
            "correlationId": correlation,
        }
        parent = telemetry.valid_traceparent(traceparent)
        if parent:
            fields["traceId"] = parent.split("-")[1]
        if answer.order_id is not None:
            fields["orderId"] = answer.order_id  # in the record, whenever it is formatted
        telemetry.log_line(self.access_log, "request", fields, held=self._held)
        if self._held and not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_later(LOG_INTERVAL, self._flush_lines)

    def _flush_lines(self) -> None:
        self._flush_due = False
        self._held.flush()


class _Resumed:
    """Awaits the rest of a coroutine already stepped once, which is waiting on ``first``:
    what the task sends or throws in goes on to the coroutine."""

    __slots__ = ("_coro", "_first")

    def __init__(self, coro: Coroutine[Any, Any, bytes], first: Any) -> None:
        self._coro = coro
        self._first = first

    def __await__(self) -> Generator[Any, Any, bytes]:
        coro, waiting_on = self._coro, self._first
        while True:
            try:
                sent = yield waiting_on
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:
                try:
                    waiting_on = coro.throw(exc)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]
            else:
                try:
                    waiting_on = coro.send(sent)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]


async def _read(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise MalformedRequest("the client went away before its body arrived")
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:  # a body longer than it declared: stop buffering now
            raise PayloadTooLarge(f"the body is over the {limit}-byte limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _peer(scope: Scope) -> str | None:
    """The client's address as the server gives it (ASGI ``client``; None: unknown)."""
    client = scope.get("client")
    return str(client[0]) if client else None


def _asks_keep_alive(connection: str | None) -> bool:
    """An HTTP/1.0 request asked to keep its connection: ``keep-alive`` is one of its
    ``Connection`` tokens, in any case (what the server's parser keeps it open for)."""
    if connection is None:
        return False
    return "keep-alive" in (token.strip().lower() for token in connection.split(","))


def _headers(raw: Sequence[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


async def _send(
    send: Send,
    answer: Answer,
    correlation: str,
    *,
    close: bool,
    keep_alive: bool = False,
    head: bool = False,
) -> None:
    """The answer, as ASGI messages. To HEAD: GET's head, Content-Length included, and an
    empty body (uvicorn drops a body sent to HEAD; the app does not count on every server
    to)."""
    response = answer.response
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
    headers.append((b"content-length", str(len(response.body)).encode()))
    headers.append((b"x-correlation-id", correlation.encode()))
    if close:
        headers.append((b"connection", b"close"))
    elif keep_alive:
        headers.append((b"connection", b"keep-alive"))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else response.body})


def create_app(
    api: HttpApi,
    lanes: Lanes | None = None,
    *,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    access_log: logging.Logger | None = None,
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
) -> OrdersAsgi:
    """The ASGI app for ``api``. Without ``lanes``: writes grouped into units if the
    store declares ``groups_commits``, else a bounded thread pool
    (:mod:`orders_core.edges.lanes`)."""
    if lanes is None:
        lanes = lanes_for(api)
    return OrdersAsgi(
        api,
        lanes,
        body_timeout=body_timeout,
        access_log=access_log,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
    )
