"""``scope`` is split on the space RFC 6749 3.3 and RFC 8693 4.2 delimit scope tokens with,
and on nothing else. ``str.split()`` also split on NBSP, EM SPACE, U+001C-U+001F, U+0085:
a token whose ``scope`` held one opaque name like ``"reports\u00a0orders:admin"`` (from an
IdP that lets scope names be chosen) was read as holding ``orders:admin``, admin over every
tenant's orders and the console (helper-44's review)."""

from __future__ import annotations

import pytest

from orders_core.application import principal_from_claims, scopes_of

ISSUER = "https://issuer.test/"


@pytest.mark.parametrize(
    "scope",
    [
        "reports\u00a0orders:admin",  # NO-BREAK SPACE
        "reports\u2003orders:admin",  # EM SPACE
        "reports\x1forders:admin",  # UNIT SEPARATOR
        "reports\x85orders:admin",  # NEXT LINE
    ],
)
def test_a_scope_token_with_other_whitespace_is_not_the_admin_scope(scope: str) -> None:
    claims = {"iss": ISSUER, "sub": "mallory", "scope": scope}
    assert "orders:admin" not in scopes_of(claims)
    principal = principal_from_claims(claims)
    assert principal is not None
    assert not principal.admin


def test_space_delimited_scopes_still_work() -> None:
    principal = principal_from_claims({"iss": ISSUER, "sub": "ops", "scope": "x orders:admin"})
    assert principal is not None
    assert principal.admin
