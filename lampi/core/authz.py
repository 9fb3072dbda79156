"""Who is asking, and may they? Protocol adapters build a Principal; the core decides."""

from __future__ import annotations

from dataclasses import dataclass, field

from lampi.core import errors


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

    @property
    def can_write(self) -> bool:
        return "admin" in self.roles or "member" in self.roles

    @property
    def can_read(self) -> bool:
        return bool({"admin", "member", "reader"} & set(self.roles))


def authorize_account(principal: Principal | None, project_id: str, write: bool) -> None:
    """Raise unless ``principal`` may read (or write) the account of ``project_id``."""
    if principal is None:
        raise errors.Unauthorized()
    if principal.is_cloud_admin:
        return
    if principal.project_id != project_id:
        raise errors.Forbidden()
    if write and not principal.can_write:
        raise errors.Forbidden()
    if not principal.can_read:
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
    """keystoneauth's _authorize_cross_tenant: ``<project>:<user>`` by id, name or ``*``."""
    projects = [ident.project_id, "*"] + ([ident.project_name] if allow_names and ident.project_name else [])
    users = [ident.user_id, "*"] + ([ident.user_name] if allow_names and ident.user_name else [])
    wanted = set(groups)
    return any(f"{p}:{u}" in wanted for p in projects for u in users)


def anonymous_read(meta: dict[str, str], referrer: str | None, listing: bool) -> bool:
    """May a request without credentials read this container's objects (or, with
    ``listing``, list it)? The one decision for public access, used by the Swift
    adapter (``/v1/AUTH_p/c/o``) and S3's anonymous requests (the ``/<c>/<o>``
    public links, public-list buckets): Swift's read ACL (referrers; ``.rlistings``
    to list), or for listing an S3 AllUsers READ grant; nothing when the bucket's
    PublicAccessBlock ignores public ACLs (``lampi.core.access``)."""
    from lampi.core import access

    if access.ignore_public_acls(meta):
        return False
    referrers, groups = parse_acl(meta.get(READ_ACL_KEY))
    if referrer_allowed(referrer, referrers) and (not listing or ".rlistings" in groups):
        return True
    return listing and access.s3_list_allowed(meta, None)


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


def object_read_allowed(sysmeta: dict[str, str], ident: Identity | None, ignore_public: bool = False) -> bool:
    """May ``ident`` (None: a request without credentials) read this object by its own
    ACL, or as its S3 owner? Checked after the container's ACL said no, by Swift
    (``/v1/...`` and the ``/<bucket>/<key>`` public links) and S3 alike
    (``lampi.swift.acl.decide``). ``ignore_public``: a PublicAccessBlock's
    IgnorePublicAcls (AllUsers / AuthenticatedUsers grants count for nothing)."""
    from lampi.core import access

    if ident is not None and ident.project_id and sysmeta.get(access.OBJECT_OWNER_KEY) == ident.project_id:
        return True
    return access.grants(parse_object_acl(sysmeta), ident, "READ", ignore_public)
