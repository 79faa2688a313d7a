"""What the orders-core stack is built from: settings read from CDK context, checked before
any resource exists.

Settings come from CDK context (``-c name=value``), each with a default:

=======================  =====================  =========================================
context key              default                meaning
=======================  =====================  =========================================
``stage``                ``dev``                name suffix and ``stage`` tag
``memory``               ``512``                MB for every function (CPU scales with it)
``architecture``         ``arm64``              ``arm64`` (cheaper per ms) or ``x86_64``
``reservedConcurrency``  (none)                 cap on the HTTP function's concurrency
``provisioned``          ``0``                  provisioned concurrency on the HTTP alias
                                                (off by default; for sustained load)
``bundle``               dist/orders-lambda-    the zip from ``python -m deploy.aws.bundle``
                         <arch>.zip
``auth``                 ``jwt``                ``jwt``, ``iam`` (SigV4) or ``none`` (loud)
``jwtIssuer``            (required for jwt)     OIDC issuer URL, e.g. a Cognito user pool's
``jwtAudience``          (required for jwt)     accepted ``aud``/``client_id`` values,
                                                comma-separated (an app client id)
``throttleRate``         ``100``                default stage's steady requests per second
``throttleBurst``        ``200``                default stage's burst
``adminScope``           ``orders:admin``       JWT scope that may act on any order
``adminRoleArns``        (none)                 IAM role/user ARNs treated as admin,
                                                comma-separated
=======================  =====================  =========================================

Every route but ``GET /healthz`` and ``GET /openapi.json`` carries the authorizer, and so
does ``$default``: unmatched requests reach the function, which answers problem+json like
every other adapter (docs/decisions/0012-default-route.md).

Deploy-time parameters: ``BudgetAmount`` (USD per month) and ``AlertEmail``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

AUTH_MODES: Final = ("jwt", "iam", "none")
DEFAULT_ADMIN_SCOPE: Final = "orders:admin"


class SettingsError(ValueError):
    """Context that cannot make a safe stack; the message says what to pass."""


def _listed(value: Any) -> tuple[str, ...]:
    """A list from context: a JSON list (cdk.json) or a comma-separated string (``-c``)."""
    items = value if isinstance(value, list | tuple) else str(value or "").split(",")
    return tuple(str(v).strip() for v in items if str(v).strip())


@dataclass(frozen=True)
class StackSettings:
    stage: str = "dev"
    memory: int = 512
    architecture: str = "arm64"
    reserved_concurrency: int | None = None
    provisioned: int = 0
    auth: str = "jwt"
    jwt_issuer: str = ""
    jwt_audience: tuple[str, ...] = field(default_factory=tuple)
    throttle_rate: int = 100
    throttle_burst: int = 200
    admin_scope: str = DEFAULT_ADMIN_SCOPE
    admin_role_arns: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.auth not in AUTH_MODES:
            raise SettingsError(f"auth={self.auth!r}: use one of {', '.join(AUTH_MODES)}")
        if self.auth == "jwt" and not (self.jwt_issuer and self.jwt_audience):
            missing = [
                name
                for name, value in (
                    ("jwtIssuer", self.jwt_issuer),
                    ("jwtAudience", self.jwt_audience),
                )
                if not value
            ]
            raise SettingsError(
                f"the JWT authorizer needs {' and '.join(missing)}: pass "
                "-c jwtIssuer=https://<your OIDC issuer> -c jwtAudience=<app client id> "
                "(or -c auth=iam for SigV4, or -c auth=none for an API without authentication)"
            )
        if self.throttle_rate < 1 or self.throttle_burst < 1:
            raise SettingsError("throttleRate and throttleBurst must be positive")

    @classmethod
    def from_context(cls, node: Any) -> StackSettings:
        def get(key: str, default: Any) -> Any:
            value = node.try_get_context(key)
            return default if value is None else value

        reserved = get("reservedConcurrency", None)
        try:
            return cls(
                stage=str(get("stage", "dev")),
                memory=int(get("memory", 512)),
                architecture=str(get("architecture", "arm64")),
                reserved_concurrency=None if reserved is None else int(reserved),
                provisioned=int(get("provisioned", 0)),
                auth=str(get("auth", "jwt")),
                jwt_issuer=str(get("jwtIssuer", "")),
                jwt_audience=_listed(get("jwtAudience", "")),
                throttle_rate=int(get("throttleRate", 100)),
                throttle_burst=int(get("throttleBurst", 200)),
                admin_scope=str(get("adminScope", DEFAULT_ADMIN_SCOPE)),
                admin_role_arns=_listed(get("adminRoleArns", "")),
            )
        except (TypeError, ValueError) as error:
            if isinstance(error, SettingsError):
                raise
            raise SettingsError(f"bad context value: {error}") from None
