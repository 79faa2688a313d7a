"""A loopback CloudEvents webhook receiver for bench/publishers.py: reads each POST, answers
202 (a Knative broker's answer), HTTP/1.1 keep-alive, asyncio (uvloop when installed).

    python bench/_ce_receiver.py

Prints ``ce receiver listening on http://127.0.0.1:PORT`` on stderr; stores nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys

ANSWER = b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n"


async def serve() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length, close = 0, False
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"connection" and value.strip().lower() == b"close":
                        close = True
                if length:
                    await reader.readexactly(length)
                writer.write(ANSWER)
                if close:
                    await writer.drain()
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    sock = socket.create_server(("127.0.0.1", 0), backlog=1024)
    server = await asyncio.start_server(handle, sock=sock)
    port = sock.getsockname()[1]
    print(f"ce receiver listening on http://127.0.0.1:{port}", file=sys.stderr, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        from uvloop import run
    except ImportError:
        from asyncio import run
    with contextlib.suppress(KeyboardInterrupt):
        run(serve())
