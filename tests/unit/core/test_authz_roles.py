"""What a token's roles give on a project's storage (lampi.core.authz), as Swift's
keystoneauth reads them; the functional tests check the same through real clients."""

from __future__ import annotations

import pytest

from lampi.core import errors
from lampi.core.authz import Principal, account_name, account_project, authorize_account
from lampi.core.identity import implied_roles

P = "0123456789abcdef0123456789abcdef"


def principal(*roles: str, service: tuple[str, ...] = (), project: str = P) -> Principal:
    return Principal(user_id="u", user_name="", project_id=project, roles=roles, service_roles=service)


def test_implied_roles_keep_other_roles() -> None:
    assert implied_roles(("admin",)) == ("admin", "member", "reader")
    assert implied_roles(("member", "anotherrole")) == ("member", "reader", "anotherrole")
    assert implied_roles(("ResellerAdmin", "service")) == ("ResellerAdmin", "service")
    assert implied_roles(("Admin",)) == ("admin", "member", "reader")  # names compare case-insensitively


@pytest.mark.parametrize("roles,owns,reads", [
    (("admin",), True, True),
    (("member",), True, True),
    (("SwiftOperator",), True, True),
    (("reader",), False, True),
    (("anotherrole",), False, False),
    (("service",), False, False),
])
def test_roles_on_the_own_account(roles: tuple[str, ...], owns: bool, reads: bool) -> None:
    p = principal(*roles)
    assert (p.owns(P), p.reads(P)) == (owns, reads)
    assert not p.owns("f" * 32) and not p.reads("f" * 32)  # another project's account
    assert not p.is_reseller


def test_service_account_needs_the_service_role_in_the_service_token() -> None:
    key = "SERVICE_" + P
    assert account_project(key) == (P, True) and account_name(key) == key
    assert account_project(P) == (P, False) and account_name(P) == "AUTH_" + P
    assert not principal("admin").owns(key)
    assert not principal("admin", service=("member",)).owns(key)
    assert principal("admin", service=("service",)).owns(key)
    assert principal("reader", service=("Service",)).reads(key)
    assert not principal("reader", service=("service",)).owns(key)
    assert not principal("service", service=("service",)).reads(key)  # no role on the account's project


def test_reseller_admin_reaches_every_account() -> None:
    ra = principal("ResellerAdmin", project="f" * 32)
    assert ra.is_reseller and not ra.owns(P)
    authorize_account(ra, P, write=True)
    authorize_account(ra, "SERVICE_" + P, write=True)
    with pytest.raises(errors.Forbidden):
        authorize_account(principal("anotherrole"), P, write=False)
    with pytest.raises(errors.Forbidden):
        authorize_account(principal("reader"), P, write=True)
    with pytest.raises(errors.Unauthorized):
        authorize_account(None, P, write=False)
