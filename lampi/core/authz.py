"""Who is asking, and may they? Protocol adapters build a Principal; the core decides."""

from __future__ import annotations

from dataclasses import dataclass, field

from lampi.core import errors


# -- roles, as Swift's keystoneauth reads them (role names compare case-insensitively) --
#
# operator roles (keystoneauth's ``operator_roles``; lampi's project members are
# operators, as Allas's are): full rights on the project's account, swift_owner
# included (ACLs, temp-URL keys); the reader role: GET/HEAD of the account
# (``project_reader_roles``); the reseller admin role (``reseller_admin_role``): every
# account; the service role (``SERVICE_service_roles``): with an operator's token, the
# project's ``SERVICE_`` account. Any other role makes a user a project member with no
# storage rights beyond what ACLs grant.

OPERATOR_ROLES = ("admin", "member", "swiftoperator")
READER_ROLES = ("reader",)
RESELLER_ADMIN_ROLE = "ResellerAdmin"
SERVICE_ROLE = "service"
# the roles every data dir has (lampi role create adds others)
BUILTIN_ROLES = ("admin", "member", "reader", SERVICE_ROLE, "swiftoperator", RESELLER_ADMIN_ROLE)

# A project's accounts: ``AUTH_<project_id>`` (its storage), and ``SERVICE_<project_id>``
# (data a service keeps for the project, reached only with the project's token and a
# service token, as keystoneauth's ``reseller_prefix = AUTH, SERVICE``). The storage
# core knows an account by a key: the project id for AUTH_, ``SERVICE_<id>`` for SERVICE_.
SERVICE_PREFIX = "SERVICE_"


def account_project(account_key: str) -> tuple[str, bool]:
    """(project id, is a service account) of a storage account key."""
    if account_key.startswith(SERVICE_PREFIX):
        return account_key[len(SERVICE_PREFIX):], True
    return account_key, False


def account_name(account_key: str) -> str:
    """The Swift account name of a storage account key (``AUTH_<id>``, ``SERVICE_<id>``)."""
    return account_key if account_key.startswith(SERVICE_PREFIX) else f"AUTH_{account_key}"


def _lower(roles: tuple[str, ...]) -> frozenset[str]:
    return frozenset(r.lower() for r in roles)


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    user_name: str
    project_id: str | None
    roles: tuple[str, ...] = ()
    is_cloud_admin: bool = False  # admin role in the designated admin project
    audit_id: str = ""
    expires_at: float = 0.0
    extra: dict[str, str] = field(default_factory=dict)
    # roles of a valid X-Service-Token sent beside the token (keystoneauth's service roles)
    service_roles: tuple[str, ...] = ()

    @property
    def is_operator(self) -> bool:
        """An operator role on its project: swift_owner of the project's account."""
        return not _lower(self.roles).isdisjoint(OPERATOR_ROLES)

    @property
    def can_write(self) -> bool:
        return self.is_operator

    @property
    def can_read(self) -> bool:
        return self.is_operator or not _lower(self.roles).isdisjoint(READER_ROLES)

    @property
    def is_reseller(self) -> bool:
        """Reaches every account as its owner: the reseller admin role (on any project),
        or lampi's cloud admin (the admin role on the admin project)."""
        return self.is_cloud_admin or RESELLER_ADMIN_ROLE.lower() in _lower(self.roles)

    @property
    def has_service_role(self) -> bool:
        return SERVICE_ROLE in _lower(self.service_roles)

    def owns(self, account_key: str) -> bool:
        """Is ``account_key`` one of this principal's project's accounts, with the rights
        it needs there: an operator role, and for a SERVICE_ account a service token too."""
        pid, service = account_project(account_key)
        return (self.project_id == pid and self.is_operator
                and (not service or self.has_service_role))

    def reads(self, account_key: str) -> bool:
        """May read ``account_key`` by its role alone (an owner, or a reader of it)."""
        pid, service = account_project(account_key)
        return (self.project_id == pid and self.can_read
                and (not service or self.has_service_role))


def authorize_account(principal: Principal | None, project_id: str, write: bool) -> None:
    """Raise unless ``principal`` may read (or write) the account ``project_id`` (an
    account key) by its roles alone."""
    if principal is None:
        raise errors.Unauthorized()
    if principal.is_reseller:
        return
    if not (principal.owns(project_id) if write else principal.reads(project_id)):
        raise errors.Forbidden()


# -- ACLs: one model, seen by Swift (X-Container-Read/Write, X-Account-Access-Control)
# -- and, later, by S3 (canned ACLs / grants map onto the same grantee strings) -------
#
# Container ACLs are Swift's strings, stored cleaned in container metadata under
# ``sys:x-container-read`` / ``sys:x-container-write``: referrer items ``.r:<host>``
# / ``.r:-<host>``, the ``.rlistings`` flag and grantees ``<project>:<user>`` where
# either side is an id, a name or ``*`` (keystoneauth's cross-tenant form).

READ_ACL_KEY = "sys:x-container-read"
WRITE_ACL_KEY = "sys:x-container-write"
ACCOUNT_ACL_KEY = "sys:access-control"  # account metadata: X-Account-Access-Control JSON
ACCOUNT_ACL_LEVELS = ("admin", "read-write", "read-only")


@dataclass(frozen=True, slots=True)
class Identity:
    """A principal's ids and names, as ACL grantees name them."""

    user_id: str
    user_name: str
    project_id: str
    project_name: str
    # the accounts the principal operates, as tempauth's groups of an account's admins
    # name them (``AUTH_<project_id>``, the project's id and, within domain Default, its
    # name): a bare grantee naming one of them matches
    accounts: tuple[str, ...] = ()


def parse_acl(acl: str | None) -> tuple[list[str], list[str]]:
    """A cleaned ACL string → (referrer designations without ``.r:``, other items)."""
    referrers: list[str] = []
    groups: list[str] = []
    for item in (acl or "").split(","):
        if item.startswith(".r:"):
            referrers.append(item[3:])
        elif item:
            groups.append(item)
    return referrers, groups


def referrer_allowed(referrer: str | None, referrers: list[str]) -> bool:
    """swift.common.middleware.acl.referrer_allowed: items apply in order, ``-`` denies."""
    from urllib.parse import urlparse

    allow = False
    if referrers:
        try:
            rhost = urlparse(referrer or "").hostname or "unknown"
        except ValueError:
            rhost = "unknown"
        for mhost in referrers:
            if not mhost:
                continue
            if mhost[0] == "-":
                mhost = mhost[1:]
                if mhost and (mhost == rhost or (mhost[0] == "." and rhost.endswith(mhost))):
                    allow = False
            elif mhost == "*" or mhost == rhost or (mhost[0] == "." and rhost.endswith(mhost)):
                allow = True
    return allow


def grantee_matches(groups: list[str], ident: Identity, allow_names: bool = True) -> bool:
    """keystoneauth's _authorize_cross_tenant: ``<project>:<user>`` by id, name or ``*``;
    and tempauth's account groups: a bare ``AUTH_<project_id>``, project id or name names
    that project's operators (``Identity.accounts``)."""
    projects = [ident.project_id, "*"] + ([ident.project_name] if allow_names and ident.project_name else [])
    users = [ident.user_id, "*"] + ([ident.user_name] if allow_names and ident.user_name else [])
    wanted = set(groups)
    if any(a in wanted for a in ident.accounts):
        return True
    return any(f"{p}:{u}" in wanted for p in projects for u in users)


def is_public(meta: dict[str, str]) -> bool:
    """Swift's read ACL lets anyone read, whatever the Referer (``.r:*`` and no
    denial of the unknown host): what S3 shows as AllUsers READ."""
    referrers, _ = parse_acl(meta.get(READ_ACL_KEY))
    return referrer_allowed(None, referrers)


def parse_account_acl(text: str | None) -> dict[str, list[str]]:
    """Stored X-Account-Access-Control JSON → {level: [grantee, ...]} (bad → empty)."""
    import json

    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: [g for g in v if isinstance(g, str)] for k, v in data.items()
            if k in ACCOUNT_ACL_LEVELS and isinstance(v, list)}


def account_access(acl: dict[str, list[str]], ident: Identity) -> str | None:
    """The highest level ``acl`` grants ``ident``: admin, read-write, read-only or None."""
    for level in ACCOUNT_ACL_LEVELS:
        if grantee_matches(acl.get(level, []), ident):
            return level
    return None


# -- S3 object ACLs -------------------------------------------------------------------
#
# An object's S3 ACL lives in its system metadata under ``s3-acl`` (hidden from Swift,
# kept by a Swift POST, dropped by a new PUT, as every ``s3-`` key): JSON
# ``{"READ": [grantee, ...], "READ_ACP": [...], "WRITE_ACP": [...], "FULL_CONTROL": [...]}``
# with grantees spelled as in container ACLs, so the two are one model: ``.r:*`` is
# S3's AllUsers, ``*:*`` AuthenticatedUsers, ``<project_id>:*`` a CanonicalUser (a
# project). The container's X-Container-Read/-Write are the bucket's ACL.

OBJECT_ACL_KEY = "s3-acl"
ALL_USERS = ".r:*"
AUTHENTICATED_USERS = "*:*"
S3_PERMISSIONS = ("FULL_CONTROL", "WRITE", "WRITE_ACP", "READ", "READ_ACP")


def parse_object_acl(sysmeta: dict[str, str]) -> dict[str, list[str]]:
    """The stored object ACL → {permission: [grantee, ...]} (absent or bad → empty)."""
    import json

    raw = sysmeta.get(OBJECT_ACL_KEY)
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: [g for g in v if isinstance(g, str)] for k, v in data.items()
            if k in S3_PERMISSIONS and isinstance(v, list)}


def acl_grants(acl: dict[str, list[str]], ident: Identity | None, permission: str) -> bool:
    """Does ``acl`` give ``permission`` (or FULL_CONTROL) to ``ident`` (None: anonymous)?"""
    groups = acl.get(permission, []) + acl.get("FULL_CONTROL", [])
    if ALL_USERS in groups:
        return True
    return ident is not None and grantee_matches(groups, ident)


