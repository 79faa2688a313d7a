"""The strict request-head parser: what it accepts, and the hostile heads it refuses."""

from __future__ import annotations

import io
import socket

import pytest

from orders_local.httphead import HeadError, parse_request_line, read_headers
from orders_local.runtime import LocalRuntime


def headers(raw: bytes) -> dict[str, str]:
    return read_headers(io.BytesIO(raw))


def test_a_normal_head() -> None:
    assert parse_request_line(b"POST /orders?x=1 HTTP/1.1\r\n") == (
        "POST",
        "/orders?x=1",
        "HTTP/1.1",
    )
    parsed = headers(b"Host: a\r\nContent-Type: application/json\r\nX-A: 1\r\nx-a: 2\r\n\r\nBODY")
    assert parsed == {"host": "a", "content-type": "application/json", "x-a": "1, 2"}


def test_leading_double_slashes_collapse() -> None:
    assert parse_request_line(b"GET //evil.example/x HTTP/1.1\r\n")[1] == "/evil.example/x"


@pytest.mark.parametrize(
    ("line", "status"),
    [
        (b"GET /\r\n", 400),  # HTTP/0.9
        (b"GET  / HTTP/1.1\r\n", 400),
        (b"GET / HTTP/2.0\r\n", 505),
        (b"GET / HTTP/x\r\n", 400),
        (b"G(T / HTTP/1.1\r\n", 400),
        (b"GET http://host/ HTTP/1.1\r\n", 400),
        (b"GET * HTTP/1.1\r\n", 400),
    ],
)
def test_bad_request_lines(line: bytes, status: int) -> None:
    with pytest.raises(HeadError) as caught:
        parse_request_line(line)
    assert caught.value.status == status


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"Host: a\r\n folded\r\n\r\n", 400),
        (b"Bad Name: x\r\n\r\n", 400),
        (b"Content-Length : 5\r\n\r\n", 400),
        (b"NoColon\r\n\r\n", 400),
        (b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
        (b"X: " + b"a" * 70_000 + b"\r\n\r\n", 431),
        (b"".join(b"X-%d: 1\r\n" % i for i in range(101)) + b"\r\n", 431),
    ],
    ids=[
        "obs-fold",
        "space-in-name",
        "space-before-colon",
        "no-colon",
        "conflicting-length",
        "long-line",
        "too-many",
    ],
)
def test_hostile_headers_are_refused(raw: bytes, status: int) -> None:
    with pytest.raises(HeadError) as caught:
        headers(raw)
    assert caught.value.status == status


def test_repeated_equal_content_lengths_are_one() -> None:
    assert headers(b"Content-Length: 5\r\nContent-Length: 5\r\n\r\n") == {"content-length": "5"}


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"POST /orders HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", b"400"),
        (b"GET / HTTP/3.0\r\n\r\n", b"505"),
        (b"GET /orders HTTP/1.1\r\nX: a\r\n  b\r\n\r\n", b"400"),
    ],
)
def test_the_server_answers_bad_heads_and_closes(
    runtime: LocalRuntime, raw: bytes, status: bytes
) -> None:
    port = runtime.server.server_address[1]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(raw)
        reply = b""
        while chunk := sock.recv(4096):  # the server closes after a bad head
            reply += chunk
    assert reply.split(b" ", 2)[1] == status
    assert b"application/problem+json" in reply


def test_http_1_0_closes_unless_keep_alive(runtime: LocalRuntime) -> None:
    port = runtime.server.server_address[1]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200")  # a server names its own version
    assert b"connection: close" in reply.lower()
    assert reply.endswith(b'{"status":"ok"}')
