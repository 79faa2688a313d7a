"""A JWKS fetch is bounded in time as a whole (a trickling body) and in size. PyJWKClient's
``timeout`` is urllib's per-socket-operation timeout and its fetch ``json.load``s the whole
response: a key endpoint sending one byte just inside the timeout held the fetch (and
``_Keys``'s lock, so every request being authenticated) as long as it liked, and a body of
any size was read into memory and parsed (helper-44's review)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from orders_local.bearer import AuthenticationUnavailable, BearerConfig, JwtAuthenticator
from tests.local.jwks import AUDIENCE, JWKS_PATH, Key, ManualClock, claims

KEY = Key("k-1")
BODY = json.dumps({"keys": [KEY.jwk]}).encode()
TRICKLE_BYTES = 30  # one every 0.2 s: 6 s in all, each gap well inside a 0.5 s timeout
PADDING = 16 * 1024 * 1024  # a real JWKS is a few KiB


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/trickle" + JWKS_PATH:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(BODY)))
            self.end_headers()
            for byte in BODY[:TRICKLE_BYTES]:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.2)
            self.wfile.write(BODY[TRICKLE_BYTES:])
        else:  # /huge: the good key set, padded with one enormous member
            data = BODY[:-1] + b',"padding":"' + b"x" * PADDING + b'"}'
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def keys_host() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02})
    thread.daemon = True
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _authenticator(issuer: str, path: str) -> JwtAuthenticator:
    config = BearerConfig(
        issuer=issuer, audiences=(AUDIENCE,), jwks_url=issuer + path + JWKS_PATH, timeout=0.5
    )
    return JwtAuthenticator(config, clock=ManualClock())


def test_a_trickling_jwks_costs_at_most_about_the_timeout(keys_host: str) -> None:
    auth = _authenticator(keys_host, "/trickle")
    token = KEY.sign(claims(keys_host))
    started = time.monotonic()
    # Giving up is the right answer; taking 6 s (12x the timeout) is not.
    with contextlib.suppress(AuthenticationUnavailable):
        auth({"authorization": f"Bearer {token}"})
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, f"one JWKS fetch held authentication for {elapsed:.1f}s (timeout 0.5s)"


def test_an_oversized_jwks_is_not_read_whole(keys_host: str) -> None:
    auth = _authenticator(keys_host, "/huge")
    token = KEY.sign(claims(keys_host))
    with pytest.raises(AuthenticationUnavailable):  # 16 MiB of "key set" is not one
        auth({"authorization": f"Bearer {token}"})
