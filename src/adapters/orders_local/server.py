"""The local HTTP server: the standard library's ThreadingHTTPServer, tuned.

Why the standard library: see docs/decisions/0003-local-http-server.md. Without TCP_NODELAY
it stalls ~44 ms per keep-alive request on Nagle + delayed ACK (recorded for this machine
type in shared FACTS: 91 req/s instead of thousands), so ``disable_nagle_algorithm`` is set.

One thread per connection, HTTP/1.1 keep-alive, a socket read timeout (a slow or idle client
cannot hold a thread for ever), a body limit checked against Content-Length *before* reading,
a handler deadline passed to the core, and one JSON access-log line per request.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qsl, unquote

from orders_core import telemetry
from orders_core.deadline import Deadline
from orders_core.errors import MalformedRequest, OrdersError, PayloadTooLarge
from orders_core.http import HttpApi, HttpRequest, HttpResponse, problem_response
from orders_local.httphead import HeadError, parse_request_line, read_headers

access_log = logging.getLogger("orders_local.access")

_REQUEST_ID_RE: Final = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class LengthRequired(OrdersError):
    status = 411
    slug = "length-required"
    title = "Length required"


class OrdersHTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # idle keep-alive connections must not block exit
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        api: HttpApi,
        *,
        read_timeout: float = 5.0,
        on_commit: Any = None,
    ) -> None:
        self.api = api
        self.read_timeout = read_timeout
        self.on_commit = on_commit
        self.draining = False
        self._inflight = 0
        self._idle = threading.Condition()
        super().__init__(address, OrdersRequestHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def begin(self) -> None:
        with self._idle:
            self._inflight += 1

    def end(self) -> None:
        with self._idle:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """After :meth:`shutdown`: wait for in-flight requests to finish."""
        self.draining = True
        with self._idle:
            return self._idle.wait_for(lambda: self._inflight == 0, timeout)


class OrdersRequestHandler(BaseHTTPRequestHandler):
    server: OrdersHTTPServer
    headers: dict[str, str]  # type: ignore[assignment]  # ours: see parse_request
    raw_requestline: bytes  # set by handle_one_request before parse_request
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "orders-local"
    sys_version = ""

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        # The read timeout: an idle or slow client cannot hold its thread for ever.
        self.connection.settimeout(self.server.read_timeout)

    def parse_request(self) -> bool:
        """Replaces the standard library's (see :mod:`orders_local.httphead` for why).

        Sets what ``handle_one_request`` relies on: command, path, request_version,
        headers and close_connection; answers and returns False on a bad head.
        """
        self.command = None  # type: ignore[assignment]
        self.request_version = "HTTP/1.0"  # so an error answer has a status line
        self.close_connection = True
        self.requestline = self.raw_requestline.decode("iso-8859-1").rstrip("\r\n")
        try:
            method, target, version = parse_request_line(self.raw_requestline)
            self.request_version = version
            headers = read_headers(self.rfile)
        except HeadError as error:
            self.send_error(error.status, error.message)
            return False
        self.command, self.path = method, target
        self.headers = headers
        connection = headers.get("connection", "").lower()
        if version == "HTTP/1.1":
            self.close_connection = connection == "close"
        else:
            self.close_connection = connection != "keep-alive"
        if version == "HTTP/1.1" and headers.get("expect", "").lower() == "100-continue":
            return self.handle_expect_100()
        return True

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET  # noqa: N815

    def __getattr__(self, name: str) -> Any:
        """Any other method (TRACE, PROPFIND...) is the API's to refuse: 405 on a known
        path, 404 elsewhere, as problem+json, instead of the stdlib's 501."""
        if name.startswith("do_") and name[3:].isalpha() and name[3:].isupper():
            return self._handle
        raise AttributeError(name)

    def _read_body(self) -> bytes:
        if self.headers.get("transfer-encoding"):
            raise LengthRequired("send the body with Content-Length (chunked is not accepted)")
        raw = self.headers.get("content-length")
        if raw is None:
            return b""
        if not raw.isdigit():
            raise MalformedRequest("Content-Length must be a non-negative integer")
        length = int(raw)
        if length > self.server.api.max_body:
            raise PayloadTooLarge(f"the body is over the {self.server.api.max_body}-byte limit")
        return self.rfile.read(length)

    def _handle(self) -> None:
        started = time.perf_counter()
        self.server.begin()
        supplied = self.headers.get("x-request-id", "")
        correlation = supplied if _REQUEST_ID_RE.match(supplied) else uuid.uuid4().hex
        token = telemetry.correlation_id.set(correlation)
        order_token = telemetry.order_id.set(None)
        path, _, query = self.path.partition("?")
        try:
            try:
                body = self._read_body()
            except OrdersError as error:
                # The body was not read: the connection cannot be reused.
                self.close_connection = True
                response = problem_response(error, path)
            else:
                response = self._dispatch(path, query, body)
            if (
                self.server.on_commit is not None
                and self.command == "POST"
                and response.status < 300
            ):
                self.server.on_commit()
            self._write(response, correlation)
            self._log(response, path, started, correlation)
        finally:
            telemetry.order_id.reset(order_token)
            telemetry.correlation_id.reset(token)
            self.server.end()

    def _dispatch(self, path: str, query: str, body: bytes) -> HttpResponse:
        request = HttpRequest(
            method=self.command,
            path=unquote(path),
            headers=self.headers,  # already a dict with lower-case names
            query=dict(parse_qsl(query)) if query else {},
            body=body,
        )
        return self.server.api.handle(request, Deadline.after(self.server.api.timeout))

    def _write(self, response: HttpResponse, correlation: str) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(response.body)))
        self.send_header("x-correlation-id", correlation)
        if self.server.draining:
            self.close_connection = True
        if self.close_connection:
            self.send_header("connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _log(self, response: HttpResponse, path: str, started: float, correlation: str) -> None:
        fields: dict[str, Any] = {
            "method": self.command,
            "path": path,
            "status": response.status,
            "durationMs": round((time.perf_counter() - started) * 1000, 2),
            "correlationId": correlation,
        }
        parent = telemetry.valid_traceparent(self.headers.get("traceparent"))
        if parent:
            fields["traceId"] = parent.split("-")[1]
        access_log.info("request", extra=fields)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level errors (bad request line, oversized headers) as problem+json too."""
        self.close_connection = True
        problem = {
            "type": "urn:orders-core:problem:malformed-request",
            "title": "Malformed request",
            "status": code,
            "detail": message or "the request could not be parsed",
        }
        body = json.dumps(problem).encode()
        self.send_response(code)
        self.send_header("content-type", "application/problem+json")
        self.send_header("content-length", str(len(body)))
        self.send_header("connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the stdlib's stderr lines; :meth:`_log` writes JSON instead."""
