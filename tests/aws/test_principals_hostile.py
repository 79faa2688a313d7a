"""An admin session ARN in ORDERS_ADMIN_ROLE_ARNS makes that session admin, not every
session of its role: sessions of one role are distinct principals (helper-43's review)."""

from __future__ import annotations

from orders_aws.shapes import AuthSettings, principal_from
from tests.aws.samples import apigw_v2, iam_authorizer

SSO = "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Ops_0123456789abcdef/{}"
ALICE = SSO.format("alice@example.com")
BOB = SSO.format("bob@example.com")


def test_an_admin_session_arn_makes_only_that_session_admin() -> None:
    """Sessions of one role are distinct principals (AuthSettings.shared_roles' doc: "people
    behind one SSO permission set or one role must not share orders"), yet listing one
    person's session ARN (what `aws sts get-caller-identity` prints) in
    ORDERS_ADMIN_ROLE_ARNS makes every session of the role an admin of every order."""
    auth = AuthSettings(admin_arns=frozenset({ALICE}))
    alice = principal_from(apigw_v2("GET", "/orders", authorizer=iam_authorizer(ALICE)), auth)
    bob = principal_from(apigw_v2("GET", "/orders", authorizer=iam_authorizer(BOB)), auth)
    assert alice.admin
    assert alice != bob
    assert not bob.admin
