"""The access decision for a request, made the same way for both front-ends: a Swift
request, the sub-requests Swift makes with the caller's authority (large-object
segments, symlink targets, copy sources and destinations) and S3's requests
(``lampi.s3.acl``) all ask ``decide``. The rules themselves (roles, ACL grammar and
grantees, S3's grants, bucket policies) are core's: ``lampi.core.authz``,
``lampi.core.access``, ``lampi.core.policy``; this module applies them to a request
(its caller, method and Referer, the container records it reads, once each).

Order of the decision, once the container record is known:
  1. owner (swift_owner): the reseller admin role or lampi's cloud admin → every
     account; an operator role (admin, member, swiftoperator) on the account's
     project → its ``AUTH_`` account, and with a service token carrying the service
     role its ``SERVICE_`` account (lampi.core.authz, keystoneauth's roles);
  2. account ACL (``X-Account-Access-Control``): admin → owner, read-write,
     read-only;
  3. the reader role on the account's project → read-only;
  4. container ACL: read ACL for GET/HEAD, write ACL for object PUT/POST/DELETE;
     grantees ``<project>:<user>`` (id, name or ``*``), a bare ``AUTH_<project_id>``,
     project id or name (that project's operators: tempauth's account groups of an
     account's admins), a role of the caller's own project, referrers
     ``.r:`` for GET/HEAD of objects (and of the listing with ``.rlistings``).
Any other role gives nothing of its own. Denied: 401 without credentials, 403 with.
"""

from __future__ import annotations

import time

from aiohttp import web

from lampi.core import access, errors
from lampi.core import manifest as M
from lampi.core import policy as P
from lampi.core.authz import (
    ACCOUNT_ACL_KEY,
    OBJECT_ACL_KEY,
    READ_ACL_KEY,
    WRITE_ACL_KEY,
    Identity,
    Principal,
    account_access,
    account_project,
    grantee_matches,
    parse_account_acl,
    parse_acl,
    referrer_allowed,
)
from lampi.core.models import Container, ObjectRecord
from lampi.http.context import PRINCIPAL, PROJECT, STORAGE, TEMPURL_SCOPE
from lampi.http.peer import policy_env

DEFAULT_DOMAIN_ID = "default"


async def identity_of(request: web.Request, principal: Principal, account_key: str | None = None) -> Identity:
    """Ids and names of the caller; names only when user and project are in the
    default domain, and so is the account's project when ``account_key`` names another
    project's account (keystoneauth's _is_name_allowed_in_acl)."""
    meta = request.app[STORAGE].meta
    user = await meta.get_user(principal.user_id)
    project = await meta.get_project(principal.project_id) if principal.project_id else None
    names_ok = (user is not None and user.domain_id == DEFAULT_DOMAIN_ID
                and project is not None and project.domain_id == DEFAULT_DOMAIN_ID)
    if names_ok and account_key is not None:
        target = account_project(account_key)[0]
        if target != principal.project_id:
            tp = await meta.get_project(target)
            names_ok = tp is not None and tp.domain_id == DEFAULT_DOMAIN_ID
    pname = project.name if names_ok and project else ""
    accounts: tuple[str, ...] = ()
    if principal.project_id and principal.is_operator:
        # tempauth's groups of an account's admins: the account's name and AUTH_<account>
        accounts = tuple(a for a in (f"AUTH_{principal.project_id}", principal.project_id, pname) if a)
    return Identity(
        user_id=principal.user_id,
        user_name=user.name if names_ok and user else "",
        project_id=principal.project_id or "",
        project_name=pname,
        accounts=accounts,
    )


_CONTAINERS = "lampi.swift.acl.containers"  # request key: container records read while deciding


async def container_record(request: web.Request, project_id: str | None, name: str) -> Container | None:
    """The container ``name`` means to account ``project_id`` (``Storage.lookup``: in the
    global namespace whoever owns it) as this request first read it (one lookup per
    request for the decision and the handler; None: none)."""
    seen: dict[tuple[str | None, str], Container | None] = request.setdefault(_CONTAINERS, {})
    if (project_id, name) not in seen:
        seen[project_id, name] = await request.app[STORAGE].lookup(project_id, name)
    return seen[project_id, name]


def remember(request: web.Request, c: Container) -> None:
    """Seed the request's memo with a container record the caller already read."""
    request.setdefault(_CONTAINERS, {})[c.project_id, c.name] = c


async def container_of(request: web.Request, project_id: str, name: str) -> Container:
    """``Storage.container`` through the request's memo: the container of account
    ``project_id`` or ContainerNotFound."""
    c = await container_record(request, project_id, name)
    if c is None or c.project_id != project_id:
        raise errors.ContainerNotFound()
    return c


def _deny(principal: Principal | None) -> errors.DomainError:
    return errors.Unauthorized() if principal is None else errors.Forbidden()


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
    if principal is not None and principal.is_reseller:
        return True  # keystoneauth's reseller admin role, lampi's cloud admin: every account, no policy
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
    c = await container_record(request, project_id, container)
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
    container_acls: bool = True,
) -> bool:
    """``decide`` by roles and ACLs: account ACLs, Swift's container ACLs, the S3 grants
    kept beside them (S3 READ lists a bucket; objects have their own ACLs and owner).
    ``container_acls=False``: roles and account ACLs only (``check_versions_access``)."""
    if principal is not None and (principal.is_reseller or principal.owns(project_id)):
        return True  # keystoneauth: the reseller admin role, an operator role (+ a service token)
    ident: Identity | None = None
    if principal is not None and principal.project_id:
        try:
            acct = await request.app[STORAGE].account(project_id)
        except errors.AccountNotFound:
            acct = None
        acl = parse_account_acl(acct.meta.get(ACCOUNT_ACL_KEY)) if acct is not None else {}
        if acl:
            ident = await identity_of(request, principal, project_id)
            level = account_access(acl, ident)
            if level == "admin":
                return True
            if level == "read-write" and (read or container is not None):
                return False  # tempauth: read-write may not change the account itself
            if level == "read-only" and read:
                return False
    if principal is not None and read and principal.reads(project_id):
        return False  # a reader role (project_reader_roles): read-only, no swift_owner
    if container is None or not container_acls:
        raise _deny(principal)
    c = await container_record(request, project_id, container)
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
            ident = await identity_of(request, principal, project_id)
        if grantee_matches(groups, ident):
            return False
        # keystoneauth: in its own project, a user whose role is named in the ACL
        if principal.project_id == account_project(project_id)[0] and \
                {r.lower() for r in principal.roles} & {g.lower() for g in groups}:
            return False
    if read and referrer_allowed(request.headers.get("Referer"), referrers):
        if obj is not None or ".rlistings" in groups:
            return False
    if read and obj is None and access.ACP_KEY in c.meta:
        # S3 READ on the bucket: listing only (lampi.core.access)
        if ident is None and principal is not None and principal.project_id:
            ident = await identity_of(request, principal, project_id)
        if access.s3_list_allowed(c.meta, ident):
            return False
    if read and obj:
        # the object's own S3 ACL (public-read, a grant to a project) and S3 owner: one
        # model for Swift, the /<bucket>/<key> public links and S3 (lampi.core.authz)
        rec = record if record is not None else await request.app[STORAGE].meta.get_object(c.key, obj, time.time())
        if rec is not None and (OBJECT_ACL_KEY in rec.sysmeta or access.OBJECT_OWNER_KEY in rec.sysmeta):
            if ident is None and principal is not None and principal.project_id:
                ident = await identity_of(request, principal, project_id)
            if access.object_read_allowed(rec.sysmeta, ident, ignore_public):
                return False
    raise _deny(principal)


async def check_versions_access(request: web.Request, owner: bool, project_id: str, container: str, obj: str,
                                *, read: bool) -> None:
    """Swift's object_versioning serves ``GET``/``HEAD``/``DELETE ?version-id=<id>`` (and
    a COPY's source with it) from the container's hidden versions container, which has
    no ACLs of its own: a container ACL grantee is refused (403, "the version-specific
    GET still requires a swift owner"), while owners (``owner``: the request's swift_owner
    rights), account ACL grantees and reader roles are let through as to any container
    of the account."""
    if owner:
        return
    await _decide_acls(request, request.get(PRINCIPAL), project_id, container, obj, read=read,
                       container_acls=False)


async def check_subrequest(
    request: web.Request, project_id: str, container: str, obj: str | None, *, read: bool = True,
) -> None:
    """Allow or refuse (401/403) what Swift does in a sub-request carrying the caller's
    authority: reading a large object's segments or a DLO's listing (``obj`` None),
    following a symlink, reading a copy's source, writing a copy's destination in
    another account. A temp URL allows its own account (account key) or only its own
    container (container key), as tempurl's authorize_same_account /
    authorize_same_container."""
    scope = request.get(TEMPURL_SCOPE)
    if scope is not None:
        if (scope[0] == "account" and project_id == request.get(PROJECT)) or container == scope[1]:
            return
        raise errors.Unauthorized()
    await decide(request, request.get(PRINCIPAL), project_id, container, obj, read=read)


def segment_access(request: web.Request, project_id: str, listing: bool = False) -> M.SegmentAccess:
    """The check run before a segment container is read (``listing``: listed, for a
    DLO). Swift's slo/dlo fetch segments in sub-requests carrying the caller's
    authority, so the caller must be allowed to read each segment container (owner,
    account ACL, container ACL incl. ``.r:`` referrers for anonymous callers): a public
    manifest over a private ``_segments`` container does not give the data
    (``check_subrequest``, which also applies a temp URL's scope): 401/403 for a DLO's
    listing, 409 for segments read in a Swift request (``segment_read_access``)."""
    async def check(container: str) -> None:
        await check_subrequest(request, project_id, container, None if listing else "")

    return check


def segment_read_access(request: web.Request, project_id: str) -> M.SegmentAccess:
    """``segment_access`` for reading segments' data in a Swift GET or COPY: a segment
    the caller may not read is a SegmentError (409 before the first byte, a cut
    connection after), as Swift's SegmentedIterable takes its sub-request's 401/403;
    the manifest's own container decided the 401/403 already."""
    check = segment_access(request, project_id)

    async def checked(container: str) -> None:
        try:
            await check(container)
        except (errors.Unauthorized, errors.Forbidden) as exc:
            raise errors.SegmentError(f"segment container {container}: {exc.__class__.__name__}") from None

    return checked
