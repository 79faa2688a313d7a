"""An identity provider for tests: signing keys, tokens, and a JWKS served on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

AUDIENCE = "orders-api"
JWKS_PATH = "/.well-known/jwks.json"


class Key:
    """A private key with a kid; ``jwk`` is its public half as a JWKS lists it."""

    def __init__(self, kid: str, kind: str = "RSA", alg: str | None = None) -> None:
        self.kid = kid
        self.alg = alg or ("RS256" if kind == "RSA" else "ES256")
        if kind == "RSA":
            self.private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.public))
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.public))
        self.jwk.update(kid=kid, use="sig")

    @property
    def public(self) -> Any:
        return self.private.public_key()

    def public_pem(self) -> bytes:
        return self.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: dict[str, Any], *, alg: str | None = None, **header: Any) -> str:
        return jwt.encode(
            claims, self.private, algorithm=alg or self.alg, headers={"kid": self.kid, **header}
        )


def claims(issuer: str, sub: str = "alice", **extra: Any) -> dict[str, Any]:
    """Good claims for ``issuer``; ``extra`` adds or, set to None, removes one."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": issuer,
        "sub": sub,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 300,
    }
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    """A token PyJWT would refuse to make: ``alg`` none, or HS256 keyed with a public key."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    if secret is None:
        return signing_input + "."
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


class JwksServer:
    """Serves ``keys`` at /.well-known/jwks.json on 127.0.0.1 and counts the fetches.

    ``status`` other than 200 answers that status (a provider having an outage); ``stop``
    takes it off the network altogether.
    """

    def __init__(self, keys: list[Key]) -> None:
        self.keys = list(keys)
        self.status = 200
        self.fetches = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with outer._lock:
                    outer.fetches += 1
                    status, keys = outer.status, list(outer.keys)
                body = json.dumps({"keys": [k.jwk for k in keys]}).encode()
                if self.path != JWKS_PATH:
                    status, body = 404, b"{}"
                elif status != 200:
                    body = b'{"message":"unavailable"}'
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.issuer = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return self.issuer + JWKS_PATH

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextmanager
def jwks_server(keys: list[Key]) -> Iterator[JwksServer]:
    server = JwksServer(keys)
    try:
        yield server
    finally:
        server.stop()


class ManualClock:
    """A monotonic clock the test moves: refetch bounds without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
