"""The trivial baseline for bench/local_http.py: what a hand-rolled local server would do.

stdlib ThreadingHTTPServer with TCP_NODELAY, HTTP/1.1 keep-alive, one pydantic model
validated per POST /orders, one SQLite insert (WAL, synchronous=NORMAL), a JSON answer.
No idempotency, no outbox, no events, no error handling beyond a 400.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pydantic import BaseModel, Field, ValidationError


class Item(BaseModel):
    id: str
    qty: int = Field(ge=1)


class CreateOrder(BaseModel):
    items: list[Item] = Field(min_length=1)


local = threading.local()
DB = sys.argv[1]


def connection() -> sqlite3.Connection:
    conn = getattr(local, "conn", None)
    if conn is None:
        conn = sqlite3.connect(DB, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        local.conn = conn
    return conn


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        try:
            order = CreateOrder.model_validate_json(body)
        except ValidationError:
            self._send(400, b'{"error":"invalid"}')
            return
        order_id = uuid.uuid4().hex
        payload = json.dumps(
            {"orderId": order_id, "status": "PENDING", "items": order.model_dump()["items"]}
        ).encode()
        connection().execute("INSERT INTO orders VALUES (?, ?)", (order_id, payload))
        self._send(201, payload)

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    conn = sqlite3.connect(DB)
    conn.execute("CREATE TABLE IF NOT EXISTS orders (order_id TEXT PRIMARY KEY, body TEXT)")
    conn.close()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(
        f"baseline listening on http://127.0.0.1:{server.server_address[1]}",
        file=sys.stderr,
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
