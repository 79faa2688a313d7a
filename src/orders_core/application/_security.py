"""Who asks, and what they may touch: principals, the ownership rule, admin rights.

Every driving adapter derives one :class:`Principal` per request or record (see
docs/decisions/0011-principals-and-ownership.md):

==============  ===================================================  =====================
kind            from                                                 name
==============  ===================================================  =====================
``anonymous``   a runtime with authentication explicitly off         (empty)
``jwt``         a verified JWT (API Gateway's authorizer or ours)     issuer and subject
``iam``         API Gateway's IAM authorizer (SigV4)                 the caller's ARN
``authorizer``  an API Gateway Lambda authorizer's context           a configured key
``service``     a queue or bus that delivered a command              its ARN or name
==============  ===================================================  =====================

:attr:`Principal.id` is ``<kind>:<name>``; kinds contain no ``:``, so principals of different
kinds can never share an id whatever their names hold. An order records the id of the
principal that created it; :meth:`Principal.may_access` is the one ownership rule every
reader and transition applies (others get 404, as if the order did not exist).

The anonymous principal exists only where authentication is explicitly off (a loopback
development runtime, an ``auth=none`` deployment): there nobody is told apart, so it sees
every order, as it did before principals existed. Service principals share one idempotency
scope (:attr:`Principal.key_scope`): a CloudEvent that arrives through the queue and again
through the bus is one command.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final, Protocol

from orders_core._immutable import immutable

KINDS: Final = frozenset({"anonymous", "jwt", "iam", "authorizer", "service"})
DEFAULT_ADMIN_SCOPE: Final = "orders:admin"


@immutable()
class Principal:
    """The caller of one command. ``admin`` grants access to every order."""

    kind: str
    name: str = ""
    admin: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown principal kind {self.kind!r}")

    @property
    def id(self) -> str:
        """What an order stores as its owner and idempotency keys are scoped by."""
        return f"{self.kind}:{self.name}"

    @property
    def key_scope(self) -> str:
        """What idempotency keys are scoped by: the id, except that every service shares one
        scope (a CloudEvent's identity is its own, whichever queue or bus delivered it)."""
        return "service:" if self.kind == "service" else self.id

    def may_access(self, owner: str) -> bool:
        """The ownership rule: an order is its creator's, an admin's and any service's
        (commands from a queue or bus are authorized by IAM on that queue or bus)."""
        return owner == self.id or self.lists_everything

    @property
    def lists_everything(self) -> bool:
        """Whether listings skip the owner filter: admins, services, and the anonymous
        principal of a runtime that authenticates nobody."""
        return self.admin or self.kind in ("service", "anonymous")

    @classmethod
    def jwt(cls, issuer: str, subject: str, *, admin: bool = False) -> Principal:
        # The issuer is length-prefixed: "a|b" + "c" and "a" + "b|c" stay two principals.
        return cls("jwt", f"{len(issuer)}:{issuer}|{subject}", admin)

    @classmethod
    def iam(cls, arn: str, *, admin: bool = False) -> Principal:
        return cls("iam", arn, admin)

    @classmethod
    def authorizer(cls, value: str, *, admin: bool = False) -> Principal:
        return cls("authorizer", value, admin)

    @classmethod
    def service(cls, identity: str) -> Principal:
        return cls("service", identity)


ANONYMOUS: Final = Principal("anonymous")
"""Every caller of a runtime running without authentication; they share one scope."""


class Authenticator(Protocol):
    """Turns a request's headers into its principal, for runtimes that verify credentials
    themselves (the local and container runtimes; API Gateway does it for Lambda).

    Raises :class:`~orders_core.errors.Unauthenticated` (401) for missing or bad
    credentials. Header names are lower-case.
    """

    def __call__(self, headers: Mapping[str, str]) -> Principal: ...


def scopes_of(claims: Mapping[str, Any]) -> frozenset[str]:
    """OAuth scopes in JWT claims: ``scope`` (RFC 8693, space-separated) or ``scp`` (a list,
    as Okta and Azure AD issue it, or a string)."""
    found: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):  # RFC 6749 3.3: separated by spaces, and only spaces
            found.update(part for part in value.split(" ") if part)
        elif isinstance(value, list | tuple):
            found.update(v for v in value if isinstance(v, str))
    return frozenset(found)


def principal_from_claims(
    claims: Mapping[str, Any], *, admin_scope: str = DEFAULT_ADMIN_SCOPE
) -> Principal | None:
    """The principal of verified JWT claims, or None when they name no subject."""
    subject, issuer = claims.get("sub"), claims.get("iss", "")
    if not isinstance(subject, str) or not subject or not isinstance(issuer, str):
        return None
    return Principal.jwt(issuer, subject, admin=admin_scope in scopes_of(claims))


def admin_arns(value: str | Iterable[str]) -> frozenset[str]:
    """A configured list of IAM ARNs (comma-separated in the environment)."""
    items = value.split(",") if isinstance(value, str) else value
    return frozenset(item.strip() for item in items if item.strip())
