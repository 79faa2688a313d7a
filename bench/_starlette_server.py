"""Starlette on uvicorn doing the baseline's work, for bench/local_http.py.

Same as ``_baseline_server.py``: one pydantic model validated per POST /orders and one
SQLite insert (WAL, synchronous=NORMAL), a JSON answer. One uvicorn worker on
uvicorn[standard]'s httptools + uvloop, what users deploy (h11 + asyncio measured ~40% slower
here, shared FACTS).
"""

from __future__ import annotations

import json
import socket
import sqlite3
import sys
import uuid

import uvicorn
from pydantic import BaseModel, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


class Item(BaseModel):
    id: str
    qty: int = Field(ge=1)


class CreateOrder(BaseModel):
    items: list[Item] = Field(min_length=1)


DB = sys.argv[1]
conn = sqlite3.connect(DB, isolation_level=None, check_same_thread=False)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("PRAGMA synchronous=NORMAL")
conn.execute("CREATE TABLE IF NOT EXISTS orders (order_id TEXT PRIMARY KEY, body TEXT)")


async def create(request: Request) -> Response:
    try:
        order = CreateOrder.model_validate_json(await request.body())
    except ValidationError:
        return Response('{"error":"invalid"}', 400, media_type="application/json")
    order_id = uuid.uuid4().hex
    payload = json.dumps(
        {"orderId": order_id, "status": "PENDING", "items": order.model_dump()["items"]}
    )
    conn.execute("INSERT INTO orders VALUES (?, ?)", (order_id, payload))
    return Response(payload, 201, media_type="application/json")


app = Starlette(routes=[Route("/orders", create, methods=["POST"])])

if __name__ == "__main__":
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    print(f"starlette listening on http://127.0.0.1:{port}", file=sys.stderr, flush=True)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        http="httptools",
        loop="uvloop",
    )
