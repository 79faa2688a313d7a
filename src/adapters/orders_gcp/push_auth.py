"""Who pushed: the OIDC token Pub/Sub (or Eventarc) attaches to each push, verified.

A push subscription with authentication signs every request as its service account: a
Google ID token in ``Authorization: Bearer``, whose ``iss`` is ``https://accounts.google.com``,
``aud`` the audience set on the subscription (by default the endpoint URL), ``email`` the
service account and ``email_verified`` true. :class:`PushAuthenticator` checks all of it
with the runtime's own JWT verifier (:class:`orders_local.bearer.JwtAuthenticator`: the
signature against Google's JWKS, ``exp``, ``iss``, ``aud``), then that ``email`` is one of the
configured push service accounts: a valid token of any other account is refused (403), as
Google's documentation insists (signature and audience alone admit every Google account).

The principal is that service account, as a *service* principal: like the SQS queue or the
EventBridge bus, IAM decided who may publish to the topic, and a command keeps one identity
(its CloudEvent source and id) whichever transport delivered it.

On Cloud Run with IAM authentication on, the platform verifies the token and strips its
signature before the container sees it: there :class:`PlatformVerifiedPush` checks the
claims Cloud Run has verified. :class:`PushAuthenticator` is for an endpoint that leaves
invocation to the application (Cloud Run's ``invoker_iam_disabled``, any other host);
deploy/gcp/README.md compares the two postures.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from orders_core.application import Principal
from orders_core.errors import OrdersError, Unauthenticated

log = logging.getLogger("orders_gcp.push")

GOOGLE_ISSUER: Final = "https://accounts.google.com"
GOOGLE_JWKS_URL: Final = "https://www.googleapis.com/oauth2/v3/certs"
"""Google's signing keys for ID tokens, as a JWKS (the OIDC discovery document's jwks_uri)."""


class NotThePushAccount(OrdersError):
    """A valid token, of an account that is not this endpoint's push service account."""

    status = 403
    slug = "forbidden"
    title = "Forbidden"


@dataclass(frozen=True)
class PushAuthConfig:
    """What a push must prove: the audience it was minted for and the accounts allowed."""

    audience: str
    service_accounts: tuple[str, ...]
    issuer: str = GOOGLE_ISSUER
    jwks_url: str = GOOGLE_JWKS_URL

    def __post_init__(self) -> None:
        if not self.audience:
            raise ValueError("push authentication needs the audience set on the subscription")
        if not self.service_accounts or not all(self.service_accounts):
            raise ValueError("push authentication needs the push service account's email")

    @classmethod
    def parse(cls, *, audience: str, service_accounts: str, **rest: str) -> PushAuthConfig:
        """From environment text: service accounts comma-separated."""
        accounts = tuple(a.strip() for a in service_accounts.split(",") if a.strip())
        return cls(audience.strip(), accounts, **{k: v for k, v in rest.items() if v})


def principal_of(account: str) -> Principal:
    """The service principal of a push service account."""
    return Principal.service(f"serviceAccount:{account}")


class PushAuthenticator:
    """An :class:`~orders_core.application.Authenticator` for push requests."""

    def __init__(
        self, config: PushAuthConfig, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        from orders_local.bearer import BearerConfig, JwtAuthenticator

        self.config = config
        self.jwt = JwtAuthenticator(
            BearerConfig(
                issuer=config.issuer,
                audiences=(config.audience,),
                jwks_url=config.jwks_url,
                algorithms=("RS256",),  # what Google signs ID tokens with
            ),
            clock=clock,
        )

    def warm(self) -> bool:
        return self.jwt.warm()

    def __call__(self, headers: Mapping[str, str]) -> Principal:
        claims = self.jwt.claims(headers)
        email = claims.get("email")
        if claims.get("email_verified") is not True or email not in self.config.service_accounts:
            log.info("push token refused: not a push service account of this endpoint")
            raise NotThePushAccount("this token's account may not push to this endpoint")
        assert isinstance(email, str)
        return principal_of(email)


class PlatformVerifiedPush:
    """For a Cloud Run service that keeps IAM invocation on (deploy/gcp's default).

    There Cloud Run itself verifies the push's token (Google's signature, the audience, and
    that its account holds ``roles/run.invoker``) and hands the container the token with its
    signature removed. The token it verified is ``X-Serverless-Authorization`` when a
    request has one (then ``Authorization`` reaches the app unverified: any invoker could
    write push claims there), else ``Authorization``. So the claims are checked here, not
    the signature: ``iss``, ``aud``, ``exp``, ``email`` one of the push service accounts and
    ``email_verified``. Use it ONLY behind Cloud Run IAM: anywhere else an unsigned token
    proves nothing.
    """

    def __init__(
        self,
        config: PushAuthConfig,
        *,
        clock: Callable[[], float] = time.time,
        leeway: float = 30.0,
    ) -> None:
        self.config = config
        self._clock = clock
        self.leeway = leeway

    def __call__(self, headers: Mapping[str, str]) -> Principal:
        # The token Cloud Run verified: X-Serverless-Authorization whenever it is there
        # (Cloud Run then checks it alone and hands Authorization on unverified, for the
        # app's own API tokens: deploy/gcp/README.md); else Authorization, as a push sends.
        verified = headers.get("x-serverless-authorization")
        claims = self._claims(headers.get("authorization", "") if verified is None else verified)
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        expires = claims.get("exp")
        if (
            claims.get("iss")
            not in (self.config.issuer, self.config.issuer.removeprefix("https://"))
            or self.config.audience not in audiences
            or not isinstance(expires, int | float)
            or expires < self._clock() - self.leeway
        ):
            raise _invalid("claims do not match this endpoint")
        email = claims.get("email")
        if claims.get("email_verified") is not True or email not in self.config.service_accounts:
            log.info("push token refused: not a push service account of this endpoint")
            raise NotThePushAccount("this token's account may not push to this endpoint")
        assert isinstance(email, str)
        return principal_of(email)

    @staticmethod
    def _claims(raw: str) -> dict[str, Any]:
        from orders_local.bearer import MAX_TOKEN

        scheme, _, token = raw.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("a push carries the token Pub/Sub signs (Authorization: Bearer)")
        parts = token.strip().split(".")
        if len(raw) > MAX_TOKEN or len(parts) not in (2, 3):
            raise _invalid("not a JWT")
        try:
            claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        except (ValueError, UnicodeError):
            raise _invalid("unreadable claims") from None
        if not isinstance(claims, dict):
            raise _invalid("unreadable claims")
        return claims


def _invalid(reason: str) -> Unauthenticated:
    from orders_local.bearer import INVALID_TOKEN

    log.info("push token refused: %s", reason)
    return Unauthenticated("the push token is not valid", INVALID_TOKEN)
