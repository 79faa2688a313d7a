"""A loopback DynamoDB endpoint that answers every call after a fixed delay, for
bench/container.py.

    python bench/_dynamodb_stub.py DELAY_MS

Speaks enough of the DynamoDB JSON protocol (HTTP/1.1 keep-alive, ``X-Amz-Target``) for
what ``orders_aws.dynamodb`` calls: DescribeTable, PutItem, GetItem, UpdateItem,
BatchGetItem, TransactWriteItems, Query. It stores nothing and every condition passes: it
stands for the round trip, not for the database. asyncio (uvloop when installed): a request
waiting out its delay holds up no other; bench/container.py measures it alone first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys

ANSWERS: dict[str, dict[str, object]] = {
    "DescribeTable": {"Table": {"TableName": "bench", "TableStatus": "ACTIVE"}},
    "PutItem": {},
    "UpdateItem": {},
    "GetItem": {},
    "TransactWriteItems": {},
    "Query": {"Items": [], "Count": 0, "ScannedCount": 0},
}


def answer(target: str, body: bytes) -> bytes:
    operation = target.rpartition(".")[2]
    if operation == "BatchGetItem":
        tables = json.loads(body or b"{}").get("RequestItems", {})
        payload: dict[str, object] = {
            "Responses": {name: [] for name in tables},
            "UnprocessedKeys": {},
        }
    elif operation in ANSWERS:
        payload = ANSWERS[operation]
    else:
        error = {"__type": "com.amazonaws.dynamodb.v20120810#UnknownOperationException"}
        return response(400, json.dumps(error).encode())
    return response(200, json.dumps(payload).encode())


def response(status: int, body: bytes) -> bytes:
    reason = b"OK" if status == 200 else b"Bad Request"
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/x-amz-json-1.0\r\n"
        b"x-amzn-requestid: stub\r\ncontent-length: %d\r\n\r\n" % (status, reason, len(body))
    ) + body


async def serve(delay: float) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length, target = 0, ""
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"x-amz-target":
                        target = value.strip().decode()
                body = await reader.readexactly(length) if length else b""
                if delay:
                    await asyncio.sleep(delay)
                writer.write(answer(target, body))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    sock = socket.create_server(("127.0.0.1", 0), backlog=1024)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    server = await asyncio.start_server(handle, sock=sock)
    port = sock.getsockname()[1]
    print(f"dynamodb stub listening on http://127.0.0.1:{port}", file=sys.stderr, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        from uvloop import run
    except ImportError:
        from asyncio import run
    with contextlib.suppress(KeyboardInterrupt):
        run(serve(float(sys.argv[1]) / 1000))
