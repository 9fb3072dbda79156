"""Swift access control: container ACLs, account ACLs, privileged headers.

Syntax and decisions follow OpenStack Swift's keystoneauth + tempauth middlewares
(swift/common/middleware/acl.py ``clean_acl``/``referrer_allowed``, keystoneauth
``authorize``, tempauth's ``X-Account-Access-Control``). The protocol-neutral parts
(parsing cleaned ACLs, matching grantees, the anonymous-read decision) live in
``lampi.core.authz`` so S3 can see the same model.

Order of the decision (``authorize``), once the container record is known:
  1. owner: a member/admin of the account's project, or the cloud admin → all;
     a reader of the project → read-only;
  2. account ACL (``X-Account-Access-Control``): admin → owner, read-write,
     read-only;
  3. container ACL: read ACL for GET/HEAD, write ACL for object PUT/POST/DELETE;
     grantees ``<project>:<user>`` (id, name or ``*``), referrers ``.r:`` for
     GET/HEAD of objects (and of the listing with ``.rlistings``).
Denied: 401 without credentials, 403 with.
"""

from __future__ import annotations

import json

from aiohttp import web

from lampi.core import errors, jsonbody
from lampi.core.authz import (
    ACCOUNT_ACL_KEY,
    ACCOUNT_ACL_LEVELS,
    OBJECT_ACL_KEY,
    READ_ACL_KEY,
    WRITE_ACL_KEY,
    Identity,
    Principal,
    account_access,
    grantee_matches,
    object_read_allowed,
    parse_account_acl,
    parse_acl,
    referrer_allowed,
)
from lampi.core.models import Container, ObjectRecord
from lampi.http.context import STORAGE

OWNER = "lampi.swift_owner"  # request key: True when the caller has swift_owner rights

# Swift's swift_owner_headers: hidden from (and ignored when sent by) non-owners.
PRIVILEGED_HEADERS = frozenset({
    "x-container-read", "x-container-write", "x-container-sync-key", "x-container-sync-to",
    "x-account-meta-temp-url-key", "x-account-meta-temp-url-key-2",
    "x-container-meta-temp-url-key", "x-container-meta-temp-url-key-2",
    "x-account-access-control",
})
# the same as metadata keys (lower-case, without the X-<kind>-Meta- prefix)
PRIVILEGED_META = frozenset({"temp-url-key", "temp-url-key-2"})

DEFAULT_DOMAIN_ID = "default"


def clean_acl(name: str, value: str) -> str:
    """swift.common.middleware.acl.clean_acl; a bad ACL → InvalidArgument (400) with
    Swift's message."""
    name = name.lower()
    values = []
    for raw in value.split(","):
        raw = raw.strip()
        if not raw:
            continue
        if ":" not in raw:
            values.append(raw)
            continue
        first, second = (v.strip() for v in raw.split(":", 1))
        if not first or first[0] != ".":
            values.append(raw)
        elif first in (".r", ".ref", ".referer", ".referrer"):
            if "write" in name:
                raise errors.InvalidArgument(f"Referrers not allowed in write ACL: {raw!r}")
            negate = False
            if second and second[0] == "-":
                negate = True
                second = second[1:].strip()
            if second and second != "*" and second[0] == "*":
                second = second[1:].strip()
            if not second or second == ".":
                raise errors.InvalidArgument(
                    f"No host/domain value after referrer designation in ACL: {raw!r}")
            values.append(".r:%s%s" % ("-" if negate else "", second))
        else:
            raise errors.InvalidArgument(f"Unknown designator {first!r} in ACL: {raw!r}")
    return ",".join(values)


def clean_account_acl(value: str) -> str | None:
    """tempauth's checks of X-Account-Access-Control; the JSON to store (None: remove)."""
    if not value.strip():
        return None
    try:
        data = jsonbody.loads(value)
    except ValueError:
        raise errors.InvalidArgument(f"Syntax error in input ({value!r})") from None
    if not isinstance(data, dict):
        raise errors.InvalidArgument(f"Syntax error in input ({value!r})")
    for key, grantees in data.items():
        if key not in ACCOUNT_ACL_LEVELS:
            raise errors.InvalidArgument(f"Key {key!r} not recognized")
        if not isinstance(grantees, list):
            raise errors.InvalidArgument(f"Value for key {key!r} must be a list")
        if not all(isinstance(g, str) for g in grantees):
            raise errors.InvalidArgument(f"Elements of {key!r} list must be strings")
    # format_acl(version=2): compact, empty levels dropped
    return json.dumps({k: v for k, v in data.items() if v}, separators=(",", ":"))


def block_public_acls(meta: dict[str, str], updates: dict[str, str | None]) -> None:
    """The bucket's S3 PublicAccessBlock (BlockPublicAcls) refuses a Swift ACL that
    grants the public (a referrer item, ``*:*``): 403, nothing changed."""
    from lampi.core import access

    if not (access.PAB_KEY in meta and access.public_access_block(meta)["BlockPublicAcls"]):
        return
    for key in (READ_ACL_KEY, WRITE_ACL_KEY):
        referrers, groups = parse_acl(updates.get(key))
        if any(r and not r.startswith("-") for r in referrers) or "*:*" in groups:
            raise errors.Forbidden("Public ACLs are blocked by the bucket's PublicAccessBlock.")


def container_acl_updates(request: web.Request) -> dict[str, str | None]:
    """X-Container-Read/-Write (and X-Remove-Container-Read/-Write) of a container
    PUT/POST, cleaned (400 on a bad ACL)."""
    out: dict[str, str | None] = {}
    for h, key in (("x-container-read", READ_ACL_KEY), ("x-container-write", WRITE_ACL_KEY)):
        if h in request.headers:
            out[key] = clean_acl(h, request.headers[h]) or None
        if "x-remove-" + h[2:] in request.headers:
            out[key] = None
    return out


async def identity_of(request: web.Request, principal: Principal) -> Identity:
    """Ids and names of the caller; names only when user and project are in the
    default domain (keystoneauth's _is_name_allowed_in_acl)."""
    meta = request.app[STORAGE].meta
    user = await meta.get_user(principal.user_id)
    project = await meta.get_project(principal.project_id) if principal.project_id else None
    names_ok = (user is not None and user.domain_id == DEFAULT_DOMAIN_ID
                and project is not None and project.domain_id == DEFAULT_DOMAIN_ID)
    return Identity(
        user_id=principal.user_id,
        user_name=user.name if names_ok and user else "",
        project_id=principal.project_id or "",
        project_name=project.name if names_ok and project else "",
    )


_CONTAINERS = "lampi.swift.acl.containers"  # request key: container records read while deciding


async def container_record(request: web.Request, name: str) -> Container | None:
    """The container ``name`` as this request first read it (one lookup per request for
    the decision and the handler; None: none)."""
    seen: dict[str, Container | None] = request.setdefault(_CONTAINERS, {})
    if name not in seen:
        seen[name] = await request.app[STORAGE].meta.get_container(name)
    return seen[name]


def remember(request: web.Request, c: Container) -> None:
    """Seed the request's memo with a container record the caller already read."""
    request.setdefault(_CONTAINERS, {})[c.name] = c


async def container_of(request: web.Request, project_id: str, name: str) -> Container:
    """``Storage.container`` through the request's memo: the container of account
    ``project_id`` or ContainerNotFound."""
    c = await container_record(request, name)
    if c is None or c.project_id != project_id:
        raise errors.ContainerNotFound()
    return c


def _deny(principal: Principal | None) -> errors.DomainError:
    return errors.Unauthorized() if principal is None else errors.Forbidden()


async def authorize(
    request: web.Request, principal: Principal | None, project_id: str,
    container: str | None, obj: str | None,
) -> None:
    """Raise Unauthorized/Forbidden unless the request is allowed; sets
    ``request[OWNER]``."""
    request[OWNER] = False
    # COPY reads its source here; the destination is checked as a write where the
    # copy is made (lampi.swift.objects), as Swift's copy middleware splits it into a
    # GET of the source and a PUT of the destination, each authorized
    request[OWNER] = await decide(request, principal, project_id, container, obj,
                                  read=request.method in ("GET", "HEAD") or (request.method == "COPY" and bool(obj)))


async def decide(
    request: web.Request, principal: Principal | None, project_id: str,
    container: str | None, obj: str | None, *, read: bool, bucket_policy: bool = True,
    record: ObjectRecord | None = None,
) -> bool:
    """The ACL decision for ``principal`` reading (``read``) or writing ``container``
    (or its object ``obj``) of account ``project_id``: True with swift_owner rights,
    False when merely allowed; raises Unauthorized/Forbidden when denied. Also used
    for the sub-requests Swift makes with the caller's authority: large-object
    segment containers, copy sources and destinations in other accounts.

    The bucket's S3 policy (``lampi.core.policy``) comes first, as S3 and Ceph RGW
    evaluate it: an explicit Deny refuses whatever the ACLs say (the cloud admin
    aside), an Allow grants what the ACLs would refuse. S3 requests evaluate it
    themselves with S3's request context (``lampi.s3.policy``) and pass
    ``bucket_policy=False``. ``record``: the object version whose own ACL and owner
    decide a read (S3's ``versionId``), instead of the current object."""
    if principal is not None and principal.is_cloud_admin:
        return True
    verdict = None
    if bucket_policy and container is not None:
        verdict = await _policy_verdict(request, principal, project_id, container, obj, read)
        if verdict == "Deny":
            raise _deny(principal)
    try:
        return await _decide_acls(request, principal, project_id, container, obj, read=read, record=record)
    except (errors.Unauthorized, errors.Forbidden):
        if verdict == "Allow":
            return False
        raise


async def _policy_verdict(
    request: web.Request, principal: Principal | None, project_id: str, container: str, obj: str | None,
    read: bool,
) -> str | None:
    """The bucket policy's verdict on a Swift request (or sub-request): GET/HEAD of an
    object is s3:GetObject, PUT/POST/COPY s3:PutObject, DELETE s3:DeleteObject; a
    container listing s3:ListBucket, its DELETE s3:DeleteBucket. None: no policy, or
    nothing it speaks of."""
    from lampi.core import access
    from lampi.core import policy as P
    from lampi.http.peer import policy_env

    c = await container_record(request, container)
    if c is None or c.project_id != project_id or access.POLICY_KEY not in c.meta:
        return None
    pol = P.stored(c.meta[access.POLICY_KEY], container)
    if pol is None:
        return None
    if obj is not None:
        action = "s3:GetObject" if read else "s3:DeleteObject" if request.method == "DELETE" else "s3:PutObject"
        resource = f"{container}/{obj}"
    elif read:
        action, resource = "s3:ListBucket", container
    elif request.method == "DELETE":
        action, resource = "s3:DeleteBucket", container
    else:
        return None
    who = P.ANONYMOUS
    if principal is not None and principal.project_id:
        ident = await identity_of(request, principal)
        who = P.Who(ident.project_id, ident.project_name, ident.user_id, ident.user_name)
    env = policy_env(request, who.user_id, principal.user_name if principal is not None else "")
    verdict = pol.evaluate(action, resource, who, env)
    if verdict == "Allow" and access.public_access_block(c.meta)["RestrictPublicBuckets"] \
            and pol.is_public() and who.project_id != c.project_id:
        return None  # RestrictPublicBuckets: a public policy serves the owner's project only
    return verdict


async def _decide_acls(
    request: web.Request, principal: Principal | None, project_id: str,
    container: str | None, obj: str | None, *, read: bool, record: ObjectRecord | None = None,
) -> bool:
    """``decide`` by roles and ACLs: account ACLs, Swift's container ACLs, the S3 grants
    kept beside them (S3 READ lists a bucket; objects have their own ACLs and owner)."""
    from lampi.core import access

    if principal is not None:
        if principal.is_cloud_admin or (principal.project_id == project_id and principal.can_write):
            return True
        if principal.project_id == project_id and principal.can_read and read:
            return False  # the reader role: read-only in its own project
    ident: Identity | None = None
    if principal is not None and principal.project_id:
        acct = await request.app[STORAGE].account(project_id)
        acl = parse_account_acl(acct.meta.get(ACCOUNT_ACL_KEY))
        if acl:
            ident = await identity_of(request, principal)
            level = account_access(acl, ident)
            if level == "admin":
                return True
            if level == "read-write" and (read or container is not None):
                return False  # tempauth: read-write may not change the account itself
            if level == "read-only" and read:
                return False
    if container is None:
        raise _deny(principal)
    c = await container_record(request, container)
    if c is None or c.project_id != project_id:
        raise _deny(principal)  # as Swift: no container info → no ACL → denied
    if obj is None and not read:
        raise _deny(principal)  # container PUT/POST/DELETE: owners only
    referrers, groups = parse_acl(c.meta.get(READ_ACL_KEY if read else WRITE_ACL_KEY))
    ignore_public = access.ignore_public_acls(c.meta)  # PublicAccessBlock: public grants count for nothing
    if ignore_public:
        referrers, groups = [], [g for g in groups if not access.is_public_grantee(g)]
    if principal is not None and groups and principal.project_id:
        if ident is None:
            ident = await identity_of(request, principal)
        if grantee_matches(groups, ident):
            return False
        # keystoneauth: in its own project, a user whose role is named in the ACL
        if principal.project_id == project_id and set(principal.roles) & set(groups):
            return False
    if read and referrer_allowed(request.headers.get("Referer"), referrers):
        if obj is not None or ".rlistings" in groups:
            return False
    if read and obj is None and access.ACP_KEY in c.meta:
        # S3 READ on the bucket: listing only (lampi.core.access)
        if ident is None and principal is not None and principal.project_id:
            ident = await identity_of(request, principal)
        if access.s3_list_allowed(c.meta, ident):
            return False
    if read and obj:
        # the object's own S3 ACL (public-read, a grant to a project) and S3 owner: one
        # model for Swift, the /<bucket>/<key> public links and S3 (lampi.core.authz)
        import time

        rec = record if record is not None else await request.app[STORAGE].meta.get_object(container, obj,
                                                                                              time.time())
        if rec is not None and (OBJECT_ACL_KEY in rec.sysmeta or access.OBJECT_OWNER_KEY in rec.sysmeta):
            if ident is None and principal is not None and principal.project_id:
                ident = await identity_of(request, principal)
            if object_read_allowed(rec.sysmeta, ident, ignore_public):
                return False
    raise _deny(principal)


async def check_subrequest(
    request: web.Request, project_id: str, container: str, obj: str | None, *, read: bool = True,
) -> None:
    """Allow or refuse (401/403) what Swift does in a sub-request carrying the caller's
    authority: reading a large object's segments or a DLO's listing (``obj`` None),
    following a symlink, reading a copy's source, writing a copy's destination in
    another account. A temp URL allows its own account (account key) or only its own
    container (container key), as tempurl's authorize_same_account /
    authorize_same_container."""
    from lampi.http.context import PRINCIPAL, PROJECT
    from lampi.swift.tempurl import SCOPE

    scope = request.get(SCOPE)
    if scope is not None:
        if (scope[0] == "account" and project_id == request.get(PROJECT)) or container == scope[1]:
            return
        raise errors.Unauthorized()
    await decide(request, request.get(PRINCIPAL), project_id, container, obj, read=read)


def strip_privileged(headers: dict[str, str], owner: bool) -> dict[str, str]:
    """Remove swift_owner headers from a response for non-owners."""
    if owner:
        return headers
    return {k: v for k, v in headers.items() if k.lower() not in PRIVILEGED_HEADERS}
