"""Unicode digits over loopback: the head parser and the binding read numbers as ASCII.

``str.isdigit()`` accepts a superscript two (ISO-8859-1 byte 0xB2), which ``int()`` then
refuses; before the fix a Content-Length, If-Match or limit of a superscript two was a 500.
"""

from __future__ import annotations

import socket

import pytest

from orders_local.arguments import build_parser
from orders_local.runtime import LocalRuntime
from tests.digits import AR0, AR1, AR5, FW0, FW8, SUP1, SUP2, SUP3
from tests.local.support import Client

SEED = b'{"items":[{"id":"sku-1","qty":2}],"customerId":"c-1"}'


def _exchange(runtime: LocalRuntime, raw: bytes) -> bytes:
    port = runtime.server.server_address[1]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(raw)
        return sock.recv(65536)


@pytest.mark.parametrize("length", [b"\xb2", b"\xb9", b"\xb3", b"1_0", b"+2", b"-1"])
def test_a_content_length_of_other_digits_is_a_400(runtime: LocalRuntime, length: bytes) -> None:
    reply = _exchange(
        runtime,
        b"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + length + b"\r\n\r\n{}",
    )
    assert reply.startswith(b"HTTP/1.1 400"), reply
    assert b"application/problem+json" in reply
    assert b"Content-Length" in reply


def test_a_superscript_http_version_is_a_400(runtime: LocalRuntime) -> None:
    reply = _exchange(runtime, b"GET /healthz HTTP/\xb9.\xb9\r\nHost: x\r\n\r\n")
    assert reply.split(b" ", 2)[1] == b"400", reply


@pytest.mark.parametrize("tag", [SUP1, SUP2, SUP3])
def test_if_match_with_superscript_digits_is_a_412(client: Client, tag: str) -> None:
    location = client.request("POST", "/orders", SEED).headers["location"]
    reply = client.request("POST", f"{location}/confirm", headers={"if-match": f'"{tag}"'})
    assert reply.status == 412, reply.body
    assert client.request("GET", location).json()["version"] == 1


@pytest.mark.parametrize("limit", ["%C2%B2", "%C2%B9", "%D9%A1", "%EF%BC%91", "1_0"])
def test_limit_with_unicode_digits_is_a_400(client: Client, limit: str) -> None:
    client.request("POST", "/orders", SEED)
    reply = client.request("GET", f"/orders?customerId=c-1&limit={limit}")
    assert reply.status == 400, reply.body
    assert "limit" in reply.json()["detail"]


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--port", FW8 + FW0 + FW8 + FW0],
        ["serve", "--port", "8_080"],
        ["serve", "--max-body", AR1 + AR0 + AR0 + AR0],
        ["serve", "--read-timeout", AR5],
        ["serve", "--handler-timeout", "1_0"],
        ["events", "--limit", SUP2],
    ],
)
def test_cli_numbers_are_ascii(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    assert "error: argument" in capsys.readouterr().err


@pytest.mark.parametrize(("name", "value"), [("PORT", FW8 + FW0), ("MAX_BODY", "1_000")])
def test_env_numbers_are_ascii(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(f"ORDERS_LOCAL_{name}", value)
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["serve"])
    assert exit_info.value.code == 2
    assert f"ORDERS_LOCAL_{name}" in capsys.readouterr().err
