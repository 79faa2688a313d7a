"""The JWT authenticator alone: what it accepts, what it refuses and says, when it fetches keys.

The JWKS comes from a loopback server (tests/local/jwks.py) that counts its fetches; a
manual clock moves the refetch bounds without sleeping.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from orders_core.application import Principal
from orders_core.errors import Unauthenticated
from orders_local.bearer import (
    CHALLENGE,
    INVALID_TOKEN,
    MAX_TOKEN,
    AuthenticationUnavailable,
    BearerConfig,
    JwtAuthenticator,
)
from tests.local.jwks import AUDIENCE, JwksServer, Key, ManualClock, claims, forged

RSA = Key("rsa-1")
EC = Key("ec-1", "EC")
STRANGER = Key("rsa-1")  # the JWKS's kid, another key
UNLISTED = Key("rsa-unlisted")


@pytest.fixture
def idp() -> Iterator[JwksServer]:
    server = JwksServer([RSA, EC])
    yield server
    server.stop()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def make(idp: JwksServer, clock: ManualClock | None = None, **config: Any) -> JwtAuthenticator:
    settings: dict[str, Any] = {"issuer": idp.issuer, "audiences": (AUDIENCE,), **config}
    return JwtAuthenticator(BearerConfig(**settings), clock=clock or ManualClock())


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def refused(auth: JwtAuthenticator, headers: dict[str, str]) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as caught:
        auth(headers)
    return caught.value


# -- configuration ---------------------------------------------------------------------


def test_an_issuer_without_an_audience_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="--jwt-audience"):
        BearerConfig.parse(issuer="https://id.example/", audience=" , ")


@pytest.mark.parametrize("algorithms", ["none", "HS256", "RS256,HS512", ""])
def test_only_asymmetric_algorithms_may_be_allowed(algorithms: str) -> None:
    with pytest.raises(ValueError, match="algorithm"):
        BearerConfig.parse(issuer="https://id.example/", audience="a", algorithms=algorithms)


def test_keys_come_over_https_or_from_loopback_only() -> None:
    with pytest.raises(ValueError, match="must be https"):
        BearerConfig.parse(issuer="http://id.example", audience="a")
    with pytest.raises(ValueError, match="must be https"):
        BearerConfig.parse(issuer="https://id.example", audience="a", jwks_url="file:///etc/x")
    local = BearerConfig.parse(issuer="http://127.0.0.1:9/", audience="a")
    assert local.jwks_url == "http://127.0.0.1:9/.well-known/jwks.json"


def test_options_are_parsed_from_comma_lists() -> None:
    config = BearerConfig.parse(
        issuer=" https://id.example/ ",
        audience="a, b",
        algorithms="ES256 , RS256",
        jwks_url="https://keys.example/k",
        admin_scope="",
    )
    assert config.issuer == "https://id.example/"
    assert (config.audiences, config.algorithms) == (("a", "b"), ("ES256", "RS256"))
    assert config.jwks_url == "https://keys.example/k"
    assert config.admin_scope == "orders:admin"


# -- the header ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers", [{}, {"authorization": ""}, {"authorization": "Basic YTpi"}, bearer("")]
)
def test_no_bearer_token_gets_the_bare_challenge(idp: JwksServer, headers: dict[str, str]) -> None:
    error = refused(make(idp), headers)
    assert error.challenge == CHALLENGE == 'Bearer realm="orders"'
    assert idp.fetches == 0


def test_the_scheme_is_case_insensitive(idp: JwksServer) -> None:
    token = RSA.sign(claims(idp.issuer))
    assert make(idp)({"authorization": f"bearer {token}"}) == Principal.jwt(idp.issuer, "alice")


def test_an_oversized_token_is_refused_before_it_is_parsed(idp: JwksServer) -> None:
    # Well signed and valid in every other way: only its size refuses it.
    token = RSA.sign(claims(idp.issuer, padding="x" * MAX_TOKEN))
    error = refused(make(idp), bearer(token))
    assert error.challenge == INVALID_TOKEN
    assert idp.fetches == 0
    small = RSA.sign(claims(idp.issuer, padding="x" * 100))
    assert make(idp)(bearer(small)).kind == "jwt"


# -- tokens ----------------------------------------------------------------------------


def test_a_good_token_gives_its_issuer_and_subject(idp: JwksServer) -> None:
    auth = make(idp)
    assert auth(bearer(RSA.sign(claims(idp.issuer)))) == Principal.jwt(idp.issuer, "alice")
    assert auth(bearer(EC.sign(claims(idp.issuer, sub="bob")))) == Principal.jwt(idp.issuer, "bob")
    assert idp.fetches == 1  # both keys came in one fetch


def bad_tokens(issuer: str) -> dict[str, str]:
    now = int(time.time())
    return {
        "expired": RSA.sign(claims(issuer, exp=now - 120)),
        "no exp": RSA.sign(claims(issuer, exp=None)),
        "not yet valid": RSA.sign(claims(issuer, nbf=now + 600)),
        "issued in the future": RSA.sign(claims(issuer, iat=now + 600)),
        "wrong audience": RSA.sign(claims(issuer, aud="another-api")),
        "no audience": RSA.sign(claims(issuer, aud=None)),
        "wrong issuer": RSA.sign(claims(issuer + "/evil")),
        "issuer prefix": RSA.sign(claims(issuer[:-1])),
        "no subject": RSA.sign(claims(issuer, sub=None)),
        "empty subject": RSA.sign(claims(issuer, sub="")),
        "another key, same kid": STRANGER.sign(claims(issuer)),
        "a key not in the JWKS": UNLISTED.sign(claims(issuer)),
        "no kid": jwt_without_kid(issuer),
        "kid not a string": forged({"alg": "RS256", "kid": ["rsa-1"]}, claims(issuer), b"x"),
        "alg none": forged({"alg": "none", "kid": RSA.kid}, claims(issuer), None),
        "alg none, signed": forged({"alg": "none", "kid": RSA.kid}, claims(issuer), b"x"),
        "HS256 keyed with the public key": forged(
            {"alg": "HS256", "kid": RSA.kid}, claims(issuer), RSA.public_pem()
        ),
        "RS384 not allowed": RSA.sign(claims(issuer), alg="RS384"),
        "tampered payload": tamper(RSA.sign(claims(issuer))),
        "garbage": "a.b.c",
    }


def jwt_without_kid(issuer: str) -> str:
    import jwt

    return jwt.encode(claims(issuer), RSA.private, algorithm="RS256")


def tamper(token: str) -> str:
    header, _, signature = token.split(".")
    other = RSA.sign(claims("x", sub="mallory")).split(".")[1]
    return f"{header}.{other}.{signature}"


@pytest.mark.parametrize("case", list(bad_tokens("http://127.0.0.1:1")))
def test_a_token_that_does_not_verify_is_invalid_token(
    idp: JwksServer, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    token = bad_tokens(idp.issuer)[case]
    with caplog.at_level(logging.INFO, logger="orders_local.bearer"):
        error = refused(make(idp), bearer(token))
    assert error.challenge == INVALID_TOKEN
    expected = "has expired" if case == "expired" else "is not valid"
    assert error.detail == f"the bearer token {expected}"
    assert "bearer token refused" in caplog.text
    assert token not in caplog.text


@pytest.mark.parametrize(
    "token",
    [
        "eyJhbGciOiJSUzI1NiIsImtpZCI6InJzYS0xIn0.eyJzdWIiOiJ4In0.",  # unsigned
        "eyJhbGciOiJSUzI1NiIsImtpZCI6InJzYS0xIn0.e30.e30.e30.e30",  # five parts: a JWE
        "eyJhbGciOiJSUzI1NiIsImtpZCI6InJzYS0xIn0.e30=.c2ln",  # padded base64
    ],
)
def test_what_is_not_a_signed_compact_jwt_is_refused_without_fetching_keys(
    idp: JwksServer, token: str
) -> None:
    assert refused(make(idp), bearer(token)).challenge == INVALID_TOKEN
    assert idp.fetches == 0


def test_clock_skew_within_the_leeway_is_forgiven(idp: JwksServer) -> None:
    now = int(time.time())
    auth = make(idp, leeway=30.0)
    assert auth(bearer(RSA.sign(claims(idp.issuer, exp=now - 10)))).kind == "jwt"
    assert auth(bearer(RSA.sign(claims(idp.issuer, nbf=now + 10, iat=now + 10)))).kind == "jwt"
    assert refused(auth, bearer(RSA.sign(claims(idp.issuer, exp=now - 45)))).challenge


def test_encryption_keys_in_the_jwks_are_not_used_for_signatures(idp: JwksServer) -> None:
    encrypting = Key("rsa-enc")
    encrypting.jwk["use"] = "enc"
    idp.keys.append(encrypting)
    auth = make(idp)
    assert refused(auth, bearer(encrypting.sign(claims(idp.issuer)))).challenge == INVALID_TOKEN
    assert auth(bearer(RSA.sign(claims(idp.issuer)))).kind == "jwt"


def test_a_key_is_used_only_for_the_algorithm_its_jwk_declares(idp: JwksServer) -> None:
    pinned = Key("rsa-pinned")
    pinned.jwk["alg"] = "RS256"
    idp.keys.append(pinned)
    auth = make(idp, algorithms=("RS256", "RS384"))
    assert auth(bearer(pinned.sign(claims(idp.issuer)))).kind == "jwt"
    assert auth(bearer(RSA.sign(claims(idp.issuer), alg="RS384"))).kind == "jwt"  # no alg
    error = refused(auth, bearer(pinned.sign(claims(idp.issuer), alg="RS384")))
    assert error.challenge == INVALID_TOKEN


def test_client_id_stands_in_for_a_missing_aud_and_aud_may_be_a_list(idp: JwksServer) -> None:
    auth = make(idp)
    cognito_access = claims(idp.issuer, aud=None, client_id=AUDIENCE)
    assert auth(bearer(RSA.sign(cognito_access))).kind == "jwt"
    assert auth(bearer(RSA.sign(claims(idp.issuer, aud=["x", AUDIENCE])))).kind == "jwt"
    # aud wins when present: a matching client_id does not rescue a foreign aud.
    foreign = claims(idp.issuer, aud="another-api", client_id=AUDIENCE)
    assert refused(auth, bearer(RSA.sign(foreign))).challenge == INVALID_TOKEN
    empty = claims(idp.issuer, aud=[], client_id=AUDIENCE)
    assert refused(auth, bearer(RSA.sign(empty))).challenge == INVALID_TOKEN


@pytest.mark.parametrize(
    ("scopes", "admin"),
    [
        ({"scope": "orders:read orders:admin"}, True),
        ({"scp": ["orders:admin"]}, True),
        ({"scope": "orders:read"}, False),
        ({"scope": "orders:administrator"}, False),
        ({}, False),
    ],
)
def test_the_admin_scope_makes_an_admin(
    idp: JwksServer, scopes: dict[str, Any], admin: bool
) -> None:
    principal = make(idp)(bearer(RSA.sign(claims(idp.issuer, **scopes))))
    assert principal.admin is admin


def test_the_admin_scope_is_configurable(idp: JwksServer) -> None:
    auth = make(idp, admin_scope="ops")
    assert auth(bearer(RSA.sign(claims(idp.issuer, scope="ops")))).admin
    assert not auth(bearer(RSA.sign(claims(idp.issuer, scope="orders:admin")))).admin


# -- keys: rotation, bounds, outages -----------------------------------------------------


def test_an_unknown_kid_refetches_once_per_interval_however_many_arrive(
    idp: JwksServer, clock: ManualClock
) -> None:
    auth = make(idp, clock, refetch_interval=30.0)
    assert auth.warm()
    assert idp.fetches == 1
    newcomer = Key("rsa-2")
    idp.keys = [newcomer]  # rotation: the old key is withdrawn, a new one published
    clock.now += 31
    assert auth(bearer(newcomer.sign(claims(idp.issuer)))).kind == "jwt"
    assert idp.fetches == 2
    for n in range(50):  # made-up kids, within the interval
        refused(auth, bearer(forged_kid(idp.issuer, n)))
    assert idp.fetches == 2
    clock.now += 31
    for n in range(50):
        refused(auth, bearer(forged_kid(idp.issuer, n)))
    assert idp.fetches == 3
    # The withdrawn key is no longer trusted.
    assert refused(auth, bearer(RSA.sign(claims(idp.issuer)))).challenge == INVALID_TOKEN


def forged_kid(issuer: str, n: int) -> str:
    return RSA.sign(claims(issuer), kid=f"made-up-{n}")


def test_the_key_set_is_refetched_after_its_lifespan(idp: JwksServer, clock: ManualClock) -> None:
    auth = make(idp, clock, lifespan=300.0)
    token = RSA.sign(claims(idp.issuer))
    auth(bearer(token))
    clock.now += 299
    auth(bearer(token))
    assert idp.fetches == 1
    clock.now += 2
    auth(bearer(token))
    assert idp.fetches == 2


def test_an_outage_keeps_the_last_keys_for_max_stale_then_is_503(
    idp: JwksServer, clock: ManualClock
) -> None:
    auth = make(idp, clock, lifespan=300.0, retry_interval=5.0, max_stale=600.0)
    token = RSA.sign(claims(idp.issuer))
    auth(bearer(token))
    idp.status = 500
    clock.now += 301  # expired: a refetch fails, the stale set still answers
    assert auth(bearer(token)).kind == "jwt"
    assert idp.fetches == 2
    for _ in range(20):  # failed fetches are retried once per retry_interval, no more
        auth(bearer(token))
    assert idp.fetches == 2
    clock.now += 5
    auth(bearer(token))
    assert idp.fetches == 3
    clock.now += 600  # past max_stale
    with pytest.raises(AuthenticationUnavailable) as caught:
        auth(bearer(token))
    assert caught.value.status == 503
    idp.status = 200
    clock.now += 5
    assert auth(bearer(token)).kind == "jwt"  # back as soon as the endpoint is


def test_keys_never_fetched_are_503_and_retried_on_the_retry_interval(
    idp: JwksServer, clock: ManualClock
) -> None:
    idp.status = 503
    auth = make(idp, clock, retry_interval=5.0)
    assert not auth.warm()
    token = RSA.sign(claims(idp.issuer))
    for _ in range(10):
        with pytest.raises(AuthenticationUnavailable):
            auth(bearer(token))
    assert idp.fetches == 1
    idp.status = 200
    clock.now += 5
    assert auth(bearer(token)).kind == "jwt"
    assert idp.fetches == 2


def test_a_jwks_endpoint_that_never_answers_costs_at_most_the_timeout() -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        issuer = f"http://127.0.0.1:{silent.getsockname()[1]}"
        auth = JwtAuthenticator(
            BearerConfig(issuer=issuer, audiences=(AUDIENCE,), timeout=0.5), clock=ManualClock()
        )
        started = time.monotonic()
        with pytest.raises(AuthenticationUnavailable):
            auth(bearer(RSA.sign(claims(issuer))))
        assert time.monotonic() - started < 3.0
        started = time.monotonic()
        with pytest.raises(AuthenticationUnavailable):  # within retry_interval: no wait
            auth(bearer(RSA.sign(claims(issuer))))
        assert time.monotonic() - started < 0.2


def test_a_jwks_that_is_not_a_key_set_is_an_outage(idp: JwksServer, clock: ManualClock) -> None:
    idp.keys = []
    auth = make(idp, clock)
    with pytest.raises(AuthenticationUnavailable):
        auth(bearer(RSA.sign(claims(idp.issuer))))
