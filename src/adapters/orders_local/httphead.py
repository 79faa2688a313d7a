"""A strict, fast parser for an HTTP/1.x request head (request line and header fields).

Why not the standard library's: ``BaseHTTPRequestHandler`` parses headers with the ``email``
package, which took ~34% of the server's CPU per ``POST /orders`` here (py-spy, GIL-holding
samples, one keep-alive connection). This parser does only what RFC 9112 asks of a server
and refuses what request-smuggling and header-injection attacks rely on:

* header names must be tokens, with no whitespace before the colon (400);
* obsolete line folding (a line starting with whitespace) is refused (400);
* ``Content-Length`` must be ASCII digits, and repeated copies must agree (400);
* at most 100 fields of at most 64 KiB each (431), like the standard library.

The socket, threads and response writing stay the standard library's.
"""

from __future__ import annotations

import re
from typing import Final, Protocol

MAX_LINE: Final = 65536
MAX_HEADERS: Final = 100
_TOKEN: Final = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_VERSION: Final = re.compile(r"^HTTP/([0-9])\.([0-9])$")


class HeadError(Exception):
    """The head is unacceptable; ``status`` is the answer (400, 431, 505)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Readable(Protocol):
    def readline(self, size: int = -1, /) -> bytes: ...


def parse_request_line(raw: bytes) -> tuple[str, str, str]:
    """``(method, target, version)``; HTTP/0.9 and anything but 1.0/1.1 are refused."""
    line = raw.decode("iso-8859-1").rstrip("\r\n")
    words = line.split(" ")
    if len(words) != 3 or not all(words):
        raise HeadError(400, "bad request line")
    method, target, version = words
    match = _VERSION.match(version)
    if match is None:
        raise HeadError(400, "bad HTTP version")
    if match.group(1) != "1":
        raise HeadError(505, "only HTTP/1.0 and HTTP/1.1 are supported")
    if not _TOKEN.match(method.encode("iso-8859-1")):
        raise HeadError(400, "bad method")
    if not target.startswith("/"):
        raise HeadError(400, "the request target must be an absolute path")
    # As the standard library does: '//host' would read as a network path to a browser.
    if target.startswith("//"):
        target = "/" + target.lstrip("/")
    return method, target, version


def read_headers(stream: Readable) -> dict[str, str]:
    """Header fields up to the blank line, names lower-cased; repeats joined with ', '."""
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        line = stream.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise HeadError(431, "header line too long")
        if line in (b"\r\n", b"\n", b""):
            return headers
        if line[:1] in (b" ", b"\t"):
            raise HeadError(400, "obsolete header line folding is not accepted")
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.match(name):
            raise HeadError(400, "bad header field")
        key = name.decode("ascii").lower()
        text = value.strip(b" \t\r\n").decode("iso-8859-1")
        if key in headers:
            if key == "content-length":
                if headers[key] != text:
                    raise HeadError(400, "conflicting Content-Length fields")
                continue
            headers[key] = f"{headers[key]}, {text}"
        else:
            headers[key] = text
    raise HeadError(431, "too many header fields")
