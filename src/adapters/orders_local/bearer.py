"""``Authorization: Bearer`` JWTs verified here, for runtimes with no API Gateway in front.

:class:`JwtAuthenticator` implements :class:`orders_core.application.Authenticator`: it checks
the signature against the issuer's JWKS, then ``iss``, the audience, ``exp`` (required),
``nbf`` and ``iat`` (when present, with a small leeway) and ``sub`` (required), and gives the
principal of :func:`~orders_core.application.principal_from_claims`. It knows nothing of the
server that calls it, so the local server and a container (ASGI) front end share it.

What a caller is told, as RFC 6750 says: no bearer token is 401 with
``WWW-Authenticate: Bearer realm="orders"``; any token that does not verify is 401 with
``error="invalid_token"`` and a detail that names no check (only expiry is told apart, as
clients renew on it). The reason is logged, never the token. Keys we cannot fetch are our
outage, not the caller's fault: 503 :class:`AuthenticationUnavailable` with Retry-After.

The keys (:class:`_Keys`): fetched by :func:`_download` (a total deadline and a size cap;
PyJWKClient's fetch bounds neither), parsed by PyJWT's PyJWK, cached on our policy.
PyJWKClient's own rate limit on unknown ``kid`` refetches starts only after a
*successful* fetch, so with the endpoint down every request with a made-up ``kid`` (and,
once the set has expired, every request) would wait out a fetch timeout; its per-key cache
(``cache_keys``) never expires, so a key the issuer withdrew would stay trusted. Here: any
fetch, failed or not, waits ``refetch_interval`` (``retry_interval`` after a failure) since
the last attempt; the set is refetched after ``lifespan``; while refetches fail, the last
good set is used for up to ``max_stale`` more seconds, then it is 503.

The local server runs one loop thread, so a fetch holds every connection for at most
``timeout`` seconds; the bounds above make that rare (one fetch per ``lifespan`` in steady
state). PyJWT (the ``jwt`` extra) is imported only when an authenticator is built.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from orders_core.application import DEFAULT_ADMIN_SCOPE, Principal, principal_from_claims
from orders_core.errors import OrdersError, Unauthenticated

if TYPE_CHECKING:
    from jwt import PyJWK

log = logging.getLogger("orders_local.bearer")

CHALLENGE: Final = 'Bearer realm="orders"'
"""The challenge to a request with no bearer token (RFC 6750 3.1: no error code)."""
INVALID_TOKEN: Final = f'{CHALLENGE}, error="invalid_token"'
MAX_TOKEN: Final = 8 * 1024
"""An Authorization header longer than this is refused before any parsing."""
DEFAULT_ALGORITHMS: Final = ("RS256", "ES256")
KEY_TYPES: Final = {
    **dict.fromkeys(("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"), "RSA"),
    **dict.fromkeys(("ES256", "ES384", "ES512"), "EC"),
    "EdDSA": "OKP",
}
"""The asymmetric algorithms one may allow, and the JWK key type each needs. Never ``none``,
never HS*: a verifier that holds only public keys has no business with a shared secret."""
_BEARER: Final = re.compile(r"bearer +(\S*)\Z", re.IGNORECASE)
_JWS: Final = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\Z")
"""A JWS in compact form with a signature (no JWE, no unsigned token)."""
_MAX_KID: Final = 256


class AuthenticationUnavailable(OrdersError):
    """The issuer's signing keys cannot be had right now: 503, since the caller's token may
    well be good (a 401 would tell clients to drop it)."""

    status = 503
    slug = "authentication-unavailable"
    title = "Authentication unavailable"
    retry_after = 5


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _items(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


@dataclass(frozen=True)
class BearerConfig:
    """What tokens this runtime accepts and where their keys come from."""

    issuer: str
    audiences: tuple[str, ...]
    """Any one of them in ``aud`` (or ``client_id`` without ``aud``, as API Gateway's JWT
    authorizer accepts Cognito access tokens)."""
    jwks_url: str = ""
    """Default ``<issuer>/.well-known/jwks.json`` (Cognito's and Auth0's; no OIDC discovery,
    so no second document to fetch and trust). Must be https, or http to a loopback host."""
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    admin_scope: str = DEFAULT_ADMIN_SCOPE
    leeway: float = 30.0
    """Seconds of clock skew allowed on ``exp``, ``nbf`` and ``iat``."""
    timeout: float = 3.0
    """Seconds one JWKS fetch may take."""
    lifespan: float = 300.0
    refetch_interval: float = 30.0
    retry_interval: float = 5.0
    max_stale: float = 3600.0

    def __post_init__(self) -> None:
        if not self.issuer:
            raise ValueError("a JWT issuer is required")
        if not self.audiences or not all(self.audiences):
            raise ValueError(
                f"JWT issuer {self.issuer} is set but no audience: set --jwt-audience "
                "(ORDERS_JWT_AUDIENCE) to the audience (or client id) your tokens carry"
            )
        if not self.algorithms:
            raise ValueError("allow at least one JWT algorithm")
        refused = [a for a in self.algorithms if a not in KEY_TYPES]
        if refused:
            raise ValueError(
                f"JWT algorithm(s) {', '.join(refused)} not allowed; choose from "
                f"{', '.join(KEY_TYPES)} (asymmetric only: no none, no HS*)"
            )
        url = self.jwks_url or self.issuer.rstrip("/") + "/.well-known/jwks.json"
        object.__setattr__(self, "jwks_url", url)
        parts = urlsplit(url)
        loopback_http = parts.scheme == "http" and _loopback(parts.hostname or "")
        if not (parts.scheme == "https" and parts.hostname) and not loopback_http:
            raise ValueError(
                f"JWKS URL {url} must be https (plain http only to a loopback address); "
                "set --jwks-url (ORDERS_JWKS_URL)"
            )

    @classmethod
    def parse(
        cls,
        *,
        issuer: str,
        audience: str,
        jwks_url: str = "",
        algorithms: str = ",".join(DEFAULT_ALGORITHMS),
        admin_scope: str = DEFAULT_ADMIN_SCOPE,
    ) -> BearerConfig:
        """From option or environment text: audiences and algorithms comma-separated."""
        return cls(
            issuer=issuer.strip(),
            audiences=_items(audience),
            jwks_url=jwks_url.strip(),
            algorithms=_items(algorithms),
            admin_scope=admin_scope.strip() or DEFAULT_ADMIN_SCOPE,
        )

    def describe(self) -> str:
        return (
            f"bearer JWTs, issuer {self.issuer}, audience {', '.join(self.audiences)}, "
            f"keys {self.jwks_url}"
        )


class _Keys:
    """The issuer's signing keys by ``kid``, fetched on the bounds the module describes."""

    def __init__(self, config: BearerConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self._clock = clock
        self._keys: dict[str, tuple[PyJWK, str | None]] = {}
        """By ``kid``: the key, and the ``alg`` its JWK declares (if any)."""
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._failed = False
        self._lock = threading.Lock()  # concurrent callers share one fetch

    def get(self, kid: str) -> tuple[PyJWK, str | None] | None:
        """The key named ``kid`` and its declared ``alg``, or None when the issuer has no
        key by that name; raises :class:`AuthenticationUnavailable` when no key set is
        usable."""
        with self._lock:
            now = self._clock()
            fetched = self._fetched_at
            expired = fetched is None or now - fetched >= self.config.lifespan
            if expired or kid not in self._keys:  # an unknown kid: perhaps rotated in
                self._refresh(now)
            fetched = self._fetched_at
            if fetched is None or now - fetched >= self.config.lifespan + self.config.max_stale:
                raise AuthenticationUnavailable(
                    "the token issuer's signing keys cannot be fetched; try again shortly"
                )
            return self._keys.get(kid)

    def warm(self) -> bool:
        """Fetch now (at start), so the first request does not wait; whether it worked."""
        with self._lock:
            self._refresh(self._clock())
            return not self._failed

    def _refresh(self, now: float) -> None:
        wait = self.config.retry_interval if self._failed else self.config.refetch_interval
        if self._attempted_at is not None and now - self._attempted_at < wait:
            return
        self._attempted_at = now
        try:
            keys = self._fetch()
        except Exception as exc:  # any failure of the key source is an outage to us
            self._failed = True
            log.warning(
                "cannot fetch JWT signing keys from %s (%s)",
                self.config.jwks_url,
                type(exc).__name__,
            )
            return
        self._keys, self._fetched_at, self._failed = keys, now, False

    def _fetch(self) -> dict[str, tuple[PyJWK, str | None]]:
        from jwt import PyJWK, PyJWTError

        data = _download(self.config.jwks_url, self.config.timeout)
        keys: dict[str, tuple[PyJWK, str | None]] = {}
        for jwk in data.get("keys", []) if isinstance(data, dict) else []:
            kid = jwk.get("kid") if isinstance(jwk, dict) else None
            if not isinstance(kid, str) or jwk.get("use", "sig") != "sig":
                continue
            try:
                keys[kid] = (PyJWK(jwk), jwk.get("alg"))
            except PyJWTError:  # a key type or curve PyJWT cannot use: not ours to use
                continue
        if not keys:
            raise ValueError("the JWKS has no usable signing key with a kid")
        return keys


MAX_JWKS: Final = 1024 * 1024
"""Bytes of a key set read at most: a real JWKS is a few KiB."""


def _download(url: str, timeout: float) -> Any:
    """The JWKS at ``url``, parsed, within ``timeout`` seconds in all and :data:`MAX_JWKS`
    bytes. urllib's timeout bounds each socket operation only: an endpoint that trickles
    its headers or body a byte at a time would hold the fetch, and ``_Keys``'s lock (so
    every request being authenticated), for as long as it liked. The fetch runs on a
    thread of its own, and one that has not answered in time is left to finish alone.
    Redirects are refused (a key set is fetched from where it was configured)."""
    import json
    import urllib.error
    import urllib.request

    class NoRedirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None  # urllib then raises the 3xx as an HTTPError

    result: list[Any] = []

    def fetch() -> None:
        try:
            opener = urllib.request.build_opener(NoRedirects())
            # BearerConfig admits https, or http to loopback only: no file: or other scheme
            request = urllib.request.Request(url, headers={"user-agent": "orders-core"})  # noqa: S310
            with opener.open(request, timeout=timeout) as response:
                body = response.read(MAX_JWKS + 1)
            if len(body) > MAX_JWKS:
                raise ValueError(f"the JWKS is over {MAX_JWKS} bytes")
            result.append(json.loads(body))
        except BaseException as exc:  # handed to the caller, which counts it an outage
            if isinstance(exc, urllib.error.HTTPError):
                exc.close()  # it holds the answer's socket open
            result.append(exc)

    thread = threading.Thread(target=fetch, name="orders-jwks-fetch", daemon=True)
    thread.start()
    thread.join(timeout)
    if not result:
        raise TimeoutError(f"the JWKS did not arrive within {timeout:g} s")
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


class JwtAuthenticator:
    """Verifies a request's bearer JWT and returns its principal (see the module)."""

    def __init__(self, config: BearerConfig, *, clock: Callable[[], float] = time.monotonic):
        try:
            import jwt  # noqa: F401  (fail at start, not at the first request)
        except ImportError:  # pragma: no cover - depends on the install
            raise ValueError(
                "JWT authentication needs PyJWT: pip install 'orders-core[jwt]'"
            ) from None
        self.config = config
        self.keys = _Keys(config, clock)

    def warm(self) -> bool:
        return self.keys.warm()

    def __call__(self, headers: Mapping[str, str]) -> Principal:
        claims = self.claims(headers)
        principal = principal_from_claims(claims, admin_scope=self.config.admin_scope)
        if principal is None:
            raise self._refuse("no subject")
        return principal

    def claims(self, headers: Mapping[str, str]) -> dict[str, Any]:
        """The claims of the request's bearer token, once every check above passed: what the
        principal is made of, for adapters that judge further claims (the Pub/Sub push
        adapter checks ``email``). Raises as :meth:`__call__` does."""
        raw = headers.get("authorization", "")
        if len(raw) > MAX_TOKEN:
            raise self._refuse("oversized token")
        found = _BEARER.match(raw.strip())
        if found is None:
            raise Unauthenticated("this API needs a bearer token (Authorization: Bearer <JWT>)")
        token = found.group(1)
        if not _JWS.match(token):
            raise self._refuse("not a signed JWT in compact form")
        return self._verify(token)

    def _verify(self, token: str) -> dict[str, Any]:
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise self._refuse("unreadable header") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in self.config.algorithms:
            raise self._refuse(f"algorithm {str(alg)[:16]!r} not allowed")
        if not isinstance(kid, str) or not 0 < len(kid) <= _MAX_KID:
            raise self._refuse("no usable kid")
        found = self.keys.get(kid)
        if found is None:
            raise self._refuse("unknown kid")
        key, declared = found
        if key.key_type != KEY_TYPES[alg] or declared not in (None, alg):
            raise self._refuse(f"key {kid[:64]!r} is not for {alg}")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                issuer=self.config.issuer,
                leeway=self.config.leeway,
                options={"require": ["exp", "iss", "sub"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise self._refuse("expired", "the bearer token has expired") from None
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise self._refuse(type(exc).__name__) from None
        if not self._audience_matches(claims):
            raise self._refuse("wrong audience")
        return claims

    def _audience_matches(self, claims: Mapping[str, Any]) -> bool:
        granted = claims["aud"] if "aud" in claims else claims.get("client_id")
        if isinstance(granted, str):
            granted = [granted]
        if not isinstance(granted, list):
            return False
        return any(isinstance(a, str) and a in self.config.audiences for a in granted)

    @staticmethod
    def _refuse(reason: str, detail: str = "the bearer token is not valid") -> Unauthenticated:
        log.info("bearer token refused: %s", reason)
        return Unauthenticated(detail, INVALID_TOKEN)
