"""The ASGI app a Cloud Run service runs: Pub/Sub pushes on one path, the core's app on the rest.

The push path is this adapter's; every other request, and the lifespan, go untouched to the
core's app (:func:`orders_core.edges.asgi.create_app`), so the HTTP API answers exactly as on
every other runtime. For the push path, as the core's app does for its routes: the declared
``Content-Length`` is checked before a byte is read (over ``max_body``: 413; absent with a
body, or chunked: 411), the body is counted as it arrives and must arrive within
``body_timeout`` (408); the work runs on a bounded thread pool, never on the event loop (a
Firestore round trip must not hold other requests); one JSON access-log line per push.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

from orders_core import telemetry
from orders_core.edges.asgi import (
    LengthRequired,
    OrdersAsgi,
    Receive,
    RequestTimeout,
    Scope,
    Send,
    correlation_for,
)
from orders_core.edges.http import HttpResponse, problem_response
from orders_core.edges.numbers import ascii_int
from orders_core.errors import MalformedRequest, MethodNotAllowed, OrdersError, PayloadTooLarge
from orders_gcp.push_endpoint import PushAnswer, PushEndpoint

DEFAULT_MAX_BODY: Final = 256 * 1024
"""A command's JSON is a few KB; base64 and the envelope add a third. Pub/Sub allows 10 MB
messages: a bigger push is refused (413, so Pub/Sub redelivers and in the end dead-letters
it by the subscription's policy) rather than buffered."""


class PushApp:
    """ASGI 3: ``POST path`` is a push (:class:`PushEndpoint`); anything else is ``app``'s."""

    def __init__(
        self,
        app: OrdersAsgi,
        endpoint: PushEndpoint,
        *,
        max_body: int = DEFAULT_MAX_BODY,
        body_timeout: float = 10.0,
        threads: int = 16,
    ) -> None:
        self.app = app
        self.endpoint = endpoint
        self.path = endpoint.path
        self.max_body = max_body
        self.body_timeout = body_timeout
        self.access_log = logging.getLogger("orders_gcp.access")
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="push")
        app.on_shutdown.append(self._pool.shutdown)

    @property
    def draining(self) -> bool:
        return self.app.draining

    def startup(self) -> None:
        """What the lifespan's startup does (for servers driven without one)."""
        self.app.startup()

    def shutdown(self, timeout: float = 10.0) -> None:
        self.app.shutdown(timeout)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == self.path:
            await self._push(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _push(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        headers = _headers(scope["headers"])
        correlation = correlation_for(headers.get("x-request-id"))
        try:
            if scope["method"] != "POST":
                raise MethodNotAllowed(f"{scope['method']} is not allowed on {self.path}", ["POST"])
            body = await self._body(headers, receive)
        except OrdersError as error:
            answer = PushAnswer(problem_response(error, self.path), {"problem": error.slug})
            close = True
        else:
            loop = asyncio.get_running_loop()
            answer = await loop.run_in_executor(self._pool, self.endpoint.handle, headers, body)
            close = False
        await _send(send, answer.response, correlation, close=close)
        self._log(scope["method"], answer, started, correlation, headers.get("traceparent"))

    async def _body(self, headers: dict[str, str], receive: Receive) -> bytes:
        if "transfer-encoding" in headers:
            raise LengthRequired("send the body with Content-Length (chunked is not accepted)")
        raw = headers.get("content-length")
        if raw is None:
            raise LengthRequired("a push carries its envelope with Content-Length")
        declared = ascii_int(raw, max_digits=1000)
        if declared is None:
            raise MalformedRequest("Content-Length must be a non-negative integer")
        if declared > self.max_body:
            raise PayloadTooLarge(f"the push is over the {self.max_body}-byte limit")
        try:
            return await asyncio.wait_for(_read(receive, self.max_body), self.body_timeout)
        except TimeoutError:
            raise RequestTimeout(
                f"the body did not arrive within {self.body_timeout:g} s"
            ) from None

    def _log(
        self,
        method: str,
        answer: PushAnswer,
        started: float,
        correlation: str,
        traceparent: str | None,
    ) -> None:
        if not self.access_log.isEnabledFor(logging.INFO):
            return
        fields: dict[str, Any] = {
            "method": method,
            "path": self.path,
            "status": answer.response.status,
            "durationMs": round((time.perf_counter() - started) * 1000, 2),
            "correlationId": correlation,
            **answer.fields,
        }
        parent = telemetry.valid_traceparent(traceparent)
        if parent:
            fields["traceId"] = parent.split("-")[1]
        token = telemetry.correlation_id.set(correlation)
        order_token = telemetry.order_id.set(answer.order_id)
        try:
            telemetry.log_line(self.access_log, "push", fields)
        finally:
            telemetry.order_id.reset(order_token)
            telemetry.correlation_id.reset(token)


async def _read(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise MalformedRequest("the client went away before its body arrived")
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:  # longer than declared: stop buffering now
            raise PayloadTooLarge(f"the push is over the {limit}-byte limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _headers(raw: Any) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


async def _send(send: Send, response: HttpResponse, correlation: str, *, close: bool) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
    headers.append((b"content-length", str(len(response.body)).encode()))
    headers.append((b"x-correlation-id", correlation.encode()))
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
