"""Bearer JWTs through the real local server on 127.0.0.1, the JWKS served from loopback.

In-process runtimes (with a manual clock for the refetch bounds) and ``orders-local serve``
as a user starts it (options, environment, what it says at start).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orders_local.bearer import BearerConfig, JwtAuthenticator
from orders_local.runtime import LocalConfig, LocalRuntime
from tests.local.jwks import AUDIENCE, JwksServer, Key, ManualClock, claims, forged
from tests.local.support import Client, Reply, ServerProcess

A_KEY = Key("k-1")
EC_KEY = Key("k-ec", "EC")
NEW_KEY = Key("k-2")
FOREIGN = Key("k-1")  # the JWKS's kid, another private key
BODY = b'{"items":[{"id":"sku-1","qty":2}],"customerId":"c-1"}'
PROBLEM = "application/problem+json"


@pytest.fixture
def idp() -> Iterator[JwksServer]:
    server = JwksServer([A_KEY, EC_KEY])
    yield server
    server.stop()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def served(tmp_path: Path, idp: JwksServer, clock: ManualClock) -> Iterator[Client]:
    config = LocalConfig(
        db=tmp_path / "orders.db",
        port=0,
        sink="none",
        jwt=BearerConfig(issuer=idp.issuer, audiences=(AUDIENCE,)),
    )
    assert config.jwt is not None
    runtime = LocalRuntime(config, authenticate=JwtAuthenticator(config.jwt, clock=clock))
    runtime.start()
    client = Client(runtime.server.server_address[1])
    try:
        yield client
    finally:
        client.close()
        runtime.stop(timeout=5)


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def create(client: Client, token: str | None) -> Reply:
    return client.request("POST", "/orders", BODY, auth(token) if token else None)


def assert_401(reply: Reply, challenge: str) -> None:
    assert reply.status == 401
    assert reply.headers["www-authenticate"] == challenge
    assert reply.headers["content-type"] == PROBLEM
    problem = reply.json()
    assert problem["status"] == 401
    assert "Traceback" not in reply.body.decode()


def test_no_token_is_401_with_a_bearer_challenge(served: Client, idp: JwksServer) -> None:
    assert_401(create(served, None), 'Bearer realm="orders"')
    assert_401(served.request("GET", "/orders?customerId=c-1"), 'Bearer realm="orders"')
    assert_401(
        served.request("GET", "/orders/x", headers={"authorization": "Basic YTpi"}),
        ('Bearer realm="orders"'),
    )


def test_health_and_the_openapi_document_need_no_token(served: Client) -> None:
    assert served.request("GET", "/healthz").status == 200
    openapi = served.request("GET", "/openapi.json")
    assert (openapi.status, openapi.json()["openapi"][:2]) == (200, "3.")


def bad(issuer: str) -> dict[str, str]:
    import time

    return {
        "expired": A_KEY.sign(claims(issuer, exp=int(time.time()) - 120)),
        "wrong audience": A_KEY.sign(claims(issuer, aud="billing-api")),
        "wrong issuer": A_KEY.sign(claims("https://evil.example")),
        "a key not in the JWKS": FOREIGN.sign(claims(issuer)),
        "alg none": forged({"alg": "none", "kid": "k-1"}, claims(issuer), None),
        "HS256 keyed with the public key": forged(
            {"alg": "HS256", "kid": "k-1"}, claims(issuer), A_KEY.public_pem()
        ),
    }


@pytest.mark.parametrize("case", list(bad("http://127.0.0.1:1")))
def test_a_bad_token_is_401_invalid_token_and_creates_nothing(
    served: Client, idp: JwksServer, case: str
) -> None:
    reply = create(served, bad(idp.issuer)[case])
    assert_401(reply, 'Bearer realm="orders", error="invalid_token"')
    detail = reply.json()["detail"]
    assert detail in {"the bearer token is not valid", "the bearer token has expired"}
    good = A_KEY.sign(claims(idp.issuer))
    listing = served.request("GET", "/orders?customerId=c-1", headers=auth(good))
    assert listing.json()["orders"] == []


def test_orders_belong_to_the_token_subject(served: Client, idp: JwksServer) -> None:
    alice = A_KEY.sign(claims(idp.issuer, sub="alice"))
    bob = EC_KEY.sign(claims(idp.issuer, sub="bob"))
    admin = A_KEY.sign(claims(idp.issuer, sub="ops", scope="orders:admin"))
    created = create(served, alice)
    assert created.status == 201
    location = created.headers["location"]
    assert served.request("GET", location, headers=auth(alice)).status == 200
    assert served.request("GET", location, headers=auth(bob)).status == 404
    cancel = served.request("POST", f"{location}/cancel", b"{}", auth(bob))
    assert cancel.status == 404
    listing = "/orders?customerId=c-1"
    assert served.request("GET", listing, headers=auth(bob)).json()["orders"] == []
    assert served.request("GET", location, headers=auth(admin)).json()["status"] == "PENDING"
    (seen,) = served.request("GET", listing, headers=auth(admin)).json()["orders"]
    assert seen["orderId"] == created.json()["orderId"]


def test_a_rotated_key_is_taken_after_one_refetch_and_a_kid_flood_costs_one(
    served: Client, idp: JwksServer, clock: ManualClock
) -> None:
    assert idp.fetches == 1  # at start
    idp.keys = [NEW_KEY]
    clock.now += 31  # past the refetch interval since that fetch
    assert create(served, NEW_KEY.sign(claims(idp.issuer))).status == 201
    assert idp.fetches == 2
    for n in range(40):
        reply = create(served, A_KEY.sign(claims(idp.issuer), kid=f"random-{n}"))
        assert reply.status == 401
    assert idp.fetches == 2
    clock.now += 31
    for n in range(40):
        create(served, A_KEY.sign(claims(idp.issuer), kid=f"random-{n}"))
    assert idp.fetches == 3
    assert_401(
        create(served, A_KEY.sign(claims(idp.issuer))),
        ('Bearer realm="orders", error="invalid_token"'),
    )  # the withdrawn key


def test_a_jwks_outage_is_503_not_401(tmp_path: Path) -> None:
    idp = JwksServer([A_KEY])
    idp.stop()  # the provider is off the network before the runtime starts
    config = LocalConfig(
        db=tmp_path / "o.db",
        port=0,
        sink="none",
        jwt=BearerConfig(issuer=idp.issuer, audiences=(AUDIENCE,), timeout=1.0),
    )
    runtime = LocalRuntime(config)
    runtime.start()
    client = Client(runtime.server.server_address[1])
    try:
        reply = create(client, A_KEY.sign(claims(idp.issuer)))
        assert reply.status == 503
        assert reply.headers["content-type"] == PROBLEM
        assert reply.headers["retry-after"] == "5"
        assert "www-authenticate" not in reply.headers
        text = reply.body.decode()
        assert "Traceback" not in text
        assert "Connection" not in text
        assert "127.0.0.1" not in text
        assert reply.json()["type"].endswith(":authentication-unavailable")
        assert client.request("GET", "/healthz").status == 200
    finally:
        client.close()
        runtime.stop(timeout=5)


# -- orders-local serve ------------------------------------------------------------------


pytest_slow = pytest.mark.slow


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orders_local.cli", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
    )


@pytest_slow
def test_serve_verifies_tokens_configured_from_the_environment(
    tmp_path: Path, idp: JwksServer
) -> None:
    env = {"ORDERS_JWT_ISSUER": idp.issuer, "ORDERS_JWT_AUDIENCE": f"other,{AUDIENCE}"}
    server = ServerProcess("--db", str(tmp_path / "o.db"), "--sink", "none", env=env)
    try:
        started = "".join(server.stderr_lines)
        assert f"authentication: bearer JWTs, issuer {idp.issuer}" in started
        client = server.client()
        assert_401(create(client, None), 'Bearer realm="orders"')
        assert create(client, EC_KEY.sign(claims(idp.issuer))).status == 201
        client.close()
    finally:
        code, err = server.stop()
    assert code == 0, err


@pytest_slow
def test_serve_with_options_and_an_admin_scope_of_its_own(tmp_path: Path, idp: JwksServer) -> None:
    server = ServerProcess(
        "--db", str(tmp_path / "o.db"), "--sink", "none",
        "--jwt-issuer", idp.issuer, "--jwt-audience", AUDIENCE, "--jwks-url", idp.url,
        "--jwt-algorithms", "ES256", "--admin-scope", "ops",
    )  # fmt: skip
    try:
        client = server.client()
        assert create(client, A_KEY.sign(claims(idp.issuer))).status == 401  # RS256: not allowed
        created = create(client, EC_KEY.sign(claims(idp.issuer)))
        assert created.status == 201
        ops = EC_KEY.sign(claims(idp.issuer, sub="someone", scp=["ops"]))
        location = created.headers["location"]
        assert client.request("GET", location, headers=auth(ops)).status == 200
        client.close()
    finally:
        code, err = server.stop()
    assert code == 0, err


@pytest_slow
def test_serve_without_an_issuer_says_authentication_is_off(tmp_path: Path) -> None:
    server = ServerProcess("--db", str(tmp_path / "o.db"), "--sink", "none")
    try:
        assert "authentication: off (loopback development)" in "".join(server.stderr_lines)
        client = server.client()
        assert create(client, None).status == 201
        client.close()
    finally:
        server.stop()


@pytest_slow
@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--jwt-issuer", "https://id.example/"], {}, "no audience: set --jwt-audience"),
        ([], {"ORDERS_JWT_ISSUER": "https://id.example/"}, "no audience: set --jwt-audience"),
        (["--jwt-audience", AUDIENCE], {}, "need --jwt-issuer"),
        (
            ["--jwt-issuer", "https://id.example/", "--jwt-audience", "a", "--jwt-algorithms",
             "HS256"],
            {},
            "HS256 not allowed",
        ),
        (
            ["--jwt-issuer", "http://id.example/", "--jwt-audience", "a"],
            {},
            "must be https",
        ),
    ],
)  # fmt: skip
def test_serve_refuses_a_half_configured_authentication(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    result = cli("serve", "--port", "0", "--db", str(tmp_path / "o.db"), *args, env=env)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "o.db").exists()  # refused before anything started


@pytest_slow
def test_a_remote_bind_without_authentication_warns_that_it_is_off(tmp_path: Path) -> None:
    # The database path fails after the warning, so nothing listens on 0.0.0.0.
    result = cli("serve", "--host", "0.0.0.0", "--allow-remote", "--db", str(tmp_path))
    assert "with authentication off: anyone who can reach it" in result.stderr
    assert result.returncode == 1


@pytest_slow
def test_help_lists_the_authentication_options() -> None:
    out = cli("serve", "--help").stdout
    for option in ("--jwt-issuer", "--jwt-audience", "--jwks-url", "--jwt-algorithms"):
        assert option in out
    for variable in ("ORDERS_JWT_ISSUER", "ORDERS_JWT_AUDIENCE", "ORDERS_JWKS_URL"):
        assert variable in out
    assert "--admin-scope" in out
    assert "ORDERS_ADMIN_SCOPE" in out


# -- import cost -------------------------------------------------------------------------

SERVE_ONCE = """
import json, sys, threading
import orders_local.cli as cli
stop = threading.Event(); stop.set()
cli._stop_on_signals = lambda: stop  # start, answer nothing, stop
code = cli.main(["serve", "--port", "0", "--sink", "none", "--db", sys.argv[1], *sys.argv[2:]])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def serve_once(tmp_path: Path, *args: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", SERVE_ONCE, str(tmp_path / "o.db"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.splitlines()[-1])
    assert result["code"] == 0, out.stderr
    return set(result["modules"])


@pytest_slow
def test_serving_without_authentication_never_imports_pyjwt(
    tmp_path: Path, idp: JwksServer
) -> None:
    without = serve_once(tmp_path)
    assert "orders_local.uvicorn_server" in without
    assert not {m for m in without if m == "jwt" or m.startswith(("jwt.", "cryptography"))}
    with_auth = serve_once(tmp_path, "--jwt-issuer", idp.issuer, "--jwt-audience", AUDIENCE)
    assert "jwt" in with_auth  # the probe sees it when it is used
