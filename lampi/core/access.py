"""S3's access settings of a bucket, stored beside Swift's container ACLs in the
container's hidden metadata, and the parts of the shared access decision
(``lampi.http.authz.decide``) that read them. See docs/architecture.md, "Access
control: one namespace".

* ``sys:s3-acp``: the S3 grants of the bucket that Swift's ACLs cannot hold, JSON
  ``{"READ": [...], "READ_ACP": [...], "WRITE_ACP": [...], "FULL_CONTROL": [...],
  "WRITE": [".r:*"], "v": 2}`` with grantees spelled as in Swift ACLs (``.r:*`` =
  AllUsers, ``*:*`` = AuthenticatedUsers, ``<project>:*``). S3 READ on a bucket lists
  it, and only lists it: its objects need their own ACLs (S3's semantics), whereas a
  Swift read ACL (``.r:*``, ``<project>:*``) also reads every object (Swift's). S3 WRITE
  grants live in Swift's write ACL (the same meaning in both APIs); ``"WRITE":
  [".r:*"]`` marks AllUsers WRITE (anonymous S3 writes, which Swift cannot express).
  ``"v": 2``: the grant list is exact, the owner's own grant included (a PutBucketAcl
  without grants revokes them all); older entries (no ``v``) imply the owner's
  FULL_CONTROL.
* ``sys:s3-policy``: the bucket policy document as put (``lampi.core.policy``).
* ``sys:s3-pab``: the PublicAccessBlock configuration, JSON of four booleans.
* ``sys:s3-ownership``: the ObjectOwnership setting (BucketOwnerEnforced,
  BucketOwnerPreferred, ObjectWriter).
* Object system metadata ``s3-owner``: the project that wrote the object through S3
  when that is not the bucket's project (S3's object owner); absent: the bucket's.
"""

from __future__ import annotations

import json

from lampi.core.authz import (
    ALL_USERS,
    AUTHENTICATED_USERS,
    READ_ACL_KEY,
    Identity,
    grantee_matches,
    parse_acl,
    parse_object_acl,
    referrer_allowed,
)

ACP_KEY = "sys:s3-acp"
POLICY_KEY = "sys:s3-policy"
PAB_KEY = "sys:s3-pab"
OWNERSHIP_KEY = "sys:s3-ownership"
OBJECT_OWNER_KEY = "s3-owner"

PAB_FIELDS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
OWNERSHIP_VALUES = ("BucketOwnerEnforced", "BucketOwnerPreferred", "ObjectWriter")
ACP_PERMISSIONS = ("FULL_CONTROL", "WRITE", "WRITE_ACP", "READ", "READ_ACP")


def bucket_acp(meta: dict[str, str]) -> dict[str, list[str]]:
    """The stored ``sys:s3-acp`` as {permission: [grantee, ...]} (absent or bad: empty);
    ``"v"`` is kept as a key of its own (``exact``)."""
    try:
        data = json.loads(meta.get(ACP_KEY) or "{}")
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    out: dict[str, list[str]] = {k: [g for g in v if isinstance(g, str)] for k, v in data.items()
                                 if k in ACP_PERMISSIONS and isinstance(v, list)}
    if data.get("v") == 2:
        out["v"] = ["2"]
    return out


def exact(acl: dict[str, list[str]]) -> bool:
    """Does this stored ACL list the owner's own grants (version 2)?"""
    return acl.get("v") == ["2"]


def public_access_block(meta: dict[str, str]) -> dict[str, bool]:
    """The bucket's PublicAccessBlock (every field False when none is set)."""
    try:
        data = json.loads(meta.get(PAB_KEY) or "{}")
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    return {f: data.get(f) is True for f in PAB_FIELDS}


def ignore_public_acls(meta: dict[str, str]) -> bool:
    return PAB_KEY in meta and public_access_block(meta)["IgnorePublicAcls"]


def is_public_grantee(g: str) -> bool:
    """AllUsers, AuthenticatedUsers, a Swift referrer item or ``*:*``: what AWS calls a
    public grant (PublicAccessBlock, GetBucketPolicyStatus)."""
    return g in (ALL_USERS, AUTHENTICATED_USERS) or g.startswith(".r:") or g == "*:*"


def ownership(meta: dict[str, str]) -> str | None:
    v = meta.get(OWNERSHIP_KEY)
    return v if v in OWNERSHIP_VALUES else None


def grants(acl: dict[str, list[str]], ident: Identity | None, permission: str, ignore_public: bool) -> bool:
    """Does ``acl`` give ``permission`` (or FULL_CONTROL) to ``ident`` (None: anonymous)?
    With ``ignore_public``, AllUsers / AuthenticatedUsers grants count for nothing."""
    groups = acl.get(permission, []) + acl.get("FULL_CONTROL", [])
    if ignore_public:
        groups = [g for g in groups if not is_public_grantee(g)]
    if ALL_USERS in groups:
        return True
    return ident is not None and grantee_matches(groups, ident)


def s3_list_allowed(meta: dict[str, str], ident: Identity | None) -> bool:
    """May ``ident`` (None: anonymous) list the bucket by its S3 READ grants?"""
    if ACP_KEY not in meta:
        return False
    return grants(bucket_acp(meta), ident, "READ", ignore_public_acls(meta))


def object_owner(sysmeta: dict[str, str], bucket_project: str) -> str:
    """The project owning an object (its writer through S3, else the bucket's)."""
    return sysmeta.get(OBJECT_OWNER_KEY) or bucket_project


def anonymous_read(meta: dict[str, str], referrer: str | None, listing: bool) -> bool:
    """May a request without credentials read this container's objects (or, with
    ``listing``, list it)? The one decision for public access, used by the Swift
    adapter (``/v1/AUTH_p/c/o``) and S3's anonymous requests (the ``/<c>/<o>``
    public links, public-list buckets): Swift's read ACL (referrers; ``.rlistings``
    to list), or for listing an S3 AllUsers READ grant; nothing when the bucket's
    PublicAccessBlock ignores public ACLs (``lampi.core.access``)."""
    if ignore_public_acls(meta):
        return False
    referrers, groups = parse_acl(meta.get(READ_ACL_KEY))
    if referrer_allowed(referrer, referrers) and (not listing or ".rlistings" in groups):
        return True
    return listing and s3_list_allowed(meta, None)


def object_read_allowed(sysmeta: dict[str, str], ident: Identity | None, ignore_public: bool = False) -> bool:
    """May ``ident`` (None: a request without credentials) read this object by its own
    ACL, or as its S3 owner? Checked after the container's ACL said no, by Swift
    (``/v1/...`` and the ``/<bucket>/<key>`` public links) and S3 alike
    (``lampi.http.authz.decide``). ``ignore_public``: a PublicAccessBlock's
    IgnorePublicAcls (AllUsers / AuthenticatedUsers grants count for nothing)."""
    if ident is not None and ident.project_id and sysmeta.get(OBJECT_OWNER_KEY) == ident.project_id:
        return True
    return grants(parse_object_acl(sysmeta), ident, "READ", ignore_public)
