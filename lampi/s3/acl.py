"""S3 access control: canned ACLs, grants, Get/PutBucketAcl, Get/PutObjectAcl, and the
access decision for buckets owned by another project.

One model with Swift's (``lampi.core.authz``, ``lampi.swift.acl``):

* A bucket's ACL **is** its container's ``X-Container-Read`` / ``X-Container-Write``.
  AllUsers READ ↔ ``.r:*,.rlistings`` (a read ACL of just ``.r:*`` also shows as
  AllUsers READ; anonymous *listing* needs ``.rlistings``), AuthenticatedUsers ↔
  ``*:*``, a CanonicalUser (a project id, as Allas shares) ↔ ``<project>:*``; READ goes
  to the read ACL, WRITE to the write ACL. Grantees Swift names by user
  (``<project>:<user>``) show as CanonicalUser ``<project>:<user>`` and may be sent
  back that way. Referrer items other than ``.r:*`` and role names have no S3 form:
  they are not shown, and a PutBucketAcl replaces them.
* READ_ACP / WRITE_ACP / FULL_CONTROL on a bucket, which Swift cannot express, are
  kept in hidden container metadata ``sys:s3-acp``; FULL_CONTROL also puts the
  grantee in both Swift ACLs.
* AllUsers WRITE (``public-read-write``) is stored as ``*:*`` in the write ACL (any
  authenticated user may write, through Swift too) plus ``{"WRITE": [".r:*"]}`` in
  ``sys:s3-acp``: with both, S3 requests without credentials may put and delete objects
  (and upload parts), as AWS and Ceph RGW allow; Swift's write ACL has no anonymous
  form, so Swift keeps refusing them, and removing ``*:*`` through Swift ends it.
* An object's ACL is in its system metadata (``s3-acl``, hidden from Swift); it is
  consulted for reads when the bucket's ACL says no (``lampi.swift.acl.decide``), for
  Swift, S3 and the anonymous ``/<bucket>/<key>`` links alike.
"""

from __future__ import annotations

import json
from urllib.parse import unquote

from aiohttp import web

from lampi.core import errors
from lampi.core.authz import (
    ALL_USERS,
    AUTHENTICATED_USERS,
    OBJECT_ACL_KEY,
    READ_ACL_KEY,
    WRITE_ACL_KEY,
    Identity,
    Principal,
    acl_grants,
    is_public,
    parse_acl,
    parse_object_acl,
)
from lampi.core.models import Container, Credential, ObjectRecord
from lampi.s3 import body as s3body
from lampi.s3.bucket import xml_response
from lampi.s3.errors import S3Error, access_denied, invalid_argument, malformed_xml
from lampi.s3.router import S3Request
from lampi.s3.sigv4 import Auth
from lampi.s3.xml import XMLError, child_text, element, parse, xml_doc

ACP_KEY = "sys:s3-acp"  # container metadata: {"READ_ACP"|"WRITE_ACP"|"FULL_CONTROL": [grantee]}
MAX_ACL_BODY = 64 * 1024
MAX_GRANTS = 100  # as S3
ALL_USERS_URI = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED_URI = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
PERMISSIONS = ("FULL_CONTROL", "WRITE", "WRITE_ACP", "READ", "READ_ACP")
GRANT_HEADERS = {"x-amz-grant-read": "READ", "x-amz-grant-write": "WRITE", "x-amz-grant-read-acp": "READ_ACP",
                 "x-amz-grant-write-acp": "WRITE_ACP", "x-amz-grant-full-control": "FULL_CONTROL"}
BUCKET_CANNED = ("private", "public-read", "public-read-write", "authenticated-read")
# object-only canned ACLs that mean "owner only" here (bucket and object owner are one project)
OBJECT_CANNED = BUCKET_CANNED + ("bucket-owner-read", "bucket-owner-full-control", "aws-exec-read")

Grants = list[tuple[str, str]]  # (grantee as a Swift ACL item, permission)


# -- anonymous requests ------------------------------------------------------------------

ANONYMOUS = Principal(user_id="", user_name="", project_id=None)


def anonymous_auth() -> Auth:
    """The Auth of a request without credentials (reads of public buckets, object writes
    into public-read-write ones: ``check``)."""
    return Auth(principal=ANONYMOUS, credential=Credential(access="", secret="", user_id="", project_id=""),
                version=0, payload=None)


def is_anonymous(p: Principal) -> bool:
    return p is ANONYMOUS


# -- the access decision for bucket operations -------------------------------------------


async def check(ctx: S3Request, c: Container, write: bool) -> None:
    """Raise AccessDenied unless the caller may read (or write) bucket ``c``: its own
    project's roles, account ACLs, the container ACL and object ACLs, decided by
    ``lampi.swift.acl.decide`` — the same decision Swift makes."""
    from lampi.core.authz import anonymous_read
    from lampi.swift.acl import decide

    p = ctx.principal
    request = ctx.request
    if is_anonymous(p):
        if write:
            # object writes (the router lets only PutObject, DeleteObject and multipart
            # uploads through) into a public-read-write bucket, as AWS
            if not (ctx.key and c.name == ctx.bucket and anonymous_write(c.meta)):
                raise access_denied()
            return
        if ctx.key and c.name == ctx.bucket:
            # GetObject/HeadObject, Allas's public links: the container's read ACL
            # (referrers) or the object's own ACL, decided as for Swift
            try:
                await decide(request, None, c.project_id, c.name, ctx.key, read=True)
            except errors.DomainError:
                raise access_denied() from None
            return
        # ListObjects / HeadBucket of a public bucket (.rlistings)
        if ctx.key or not anonymous_read(c.meta, request.headers.get("Referer"), listing=True):
            raise access_denied()
        return
    obj: str | None = None
    if c.name == ctx.bucket and ctx.key:
        obj = ctx.key
    if not write and "x-amz-copy-source" in request.headers and request.method == "PUT":
        # the source of CopyObject / UploadPartCopy: reading that object
        src = unquote(request.headers["x-amz-copy-source"].partition("?")[0]).lstrip("/")
        sbucket, _, skey = src.partition("/")
        obj = skey if sbucket == c.name else ""
    elif write and not ctx.key and request.method == "POST" and "delete" in ctx.query:
        obj = ""  # DeleteObjects: object deletes, allowed by the write ACL
    try:
        await decide(request, p, c.project_id, c.name, obj, read=not write)
    except errors.DomainError:
        raise access_denied() from None


async def _identity(ctx: S3Request) -> Identity | None:
    from lampi.swift.acl import identity_of

    p = ctx.principal
    if is_anonymous(p) or not p.project_id:
        return None
    return await identity_of(ctx.request, p)


def _is_owner(p: Principal, project_id: str, write: bool) -> bool:
    if p.is_cloud_admin:
        return True
    if p.project_id != project_id:
        return False
    return p.can_write if write else p.can_read


# -- parsing ACLs from requests ----------------------------------------------------------


def _malformed_acl() -> S3Error:
    return S3Error(400, "MalformedACLError", "The XML you provided was not well-formed or did not validate "
                   "against our published schema")


def canned(name: str, bucket: bool) -> Grants:
    allowed = BUCKET_CANNED if bucket else OBJECT_CANNED
    if name not in allowed:
        raise invalid_argument("Invalid canned ACL" if name else "Empty canned ACL", "x-amz-acl", name)
    return {
        "public-read": [(ALL_USERS, "READ")],
        "public-read-write": [(ALL_USERS, "READ"), (ALL_USERS, "WRITE")],
        "authenticated-read": [(AUTHENTICATED_USERS, "READ")],
    }.get(name, [])


async def _grantee_id(ctx: S3Request, value: str) -> str:
    """A CanonicalUser ID → Swift grantee: a project id → ``<id>:*``; ``<project>:<user>``
    (as GetBucketAcl shows Swift's per-user grants) is kept as it is."""
    value = value.strip()
    if value and ":" in value and "," not in value and not any(ch.isspace() for ch in value) \
            and not value.startswith("."):
        return value
    if value and await ctx.storage.meta.get_project(value) is not None:
        return value + ":*"
    raise invalid_argument("Invalid id", "CanonicalUser/ID", value)


def _group(uri: str) -> str:
    if uri == ALL_USERS_URI:
        return ALL_USERS
    if uri == AUTHENTICATED_URI:
        return AUTHENTICATED_USERS
    raise invalid_argument("Invalid group uri", "Group/URI", uri)


async def header_grants(ctx: S3Request) -> Grants | None:
    """``x-amz-grant-*: id="...", uri="..."`` headers; None when there are none."""
    h = ctx.request.headers
    found = [k for k in GRANT_HEADERS if k in h]
    if not found:
        return None
    grants: Grants = []
    for name in found:
        for item in h[name].split(","):
            if not item.strip():
                continue
            kind, sep, value = item.strip().partition("=")
            value = value.strip().strip('"')
            kind = kind.strip().lower()
            if not sep or not value:
                raise invalid_argument("Invalid grant header value", name, h[name])
            if kind == "id":
                grants.append((await _grantee_id(ctx, value), GRANT_HEADERS[name]))
            elif kind == "uri":
                grants.append((_group(value), GRANT_HEADERS[name]))
            elif kind == "emailaddress":
                raise S3Error(400, "UnresolvableGrantByEmailAddress",
                              "The e-mail address you provided does not match any account on record.")
            else:
                raise invalid_argument("Argument format not recognized", name, h[name])
    return grants


async def xml_grants(ctx: S3Request, raw: bytes) -> Grants:
    """An AccessControlPolicy document → grants (the owner's own grant dropped)."""
    try:
        root = parse(raw)
    except XMLError:
        raise malformed_xml() from None
    acl_el = root.find("AccessControlList")
    if root.tag != "AccessControlPolicy" or acl_el is None:
        raise _malformed_acl()
    grants: Grants = []
    for g in acl_el:
        if g.tag != "Grant":
            raise _malformed_acl()
        grantee, perm = g.find("Grantee"), (child_text(g, "Permission") or "").strip()
        if grantee is None or perm not in PERMISSIONS:
            raise _malformed_acl()
        xsi_type = grantee.get(f"{{{XSI}}}type") or grantee.get("type") or ""
        gid, uri, email = child_text(grantee, "ID"), child_text(grantee, "URI"), child_text(grantee, "EmailAddress")
        if gid is not None and xsi_type in ("", "CanonicalUser"):
            grants.append((await _grantee_id(ctx, gid), perm))
        elif uri is not None and xsi_type in ("", "Group"):
            grants.append((_group(uri.strip()), perm))
        elif email is not None:
            raise S3Error(400, "UnresolvableGrantByEmailAddress",
                          "The e-mail address you provided does not match any account on record.")
        else:
            raise _malformed_acl()
    if len(grants) > MAX_GRANTS:
        raise _malformed_acl()
    return grants


async def requested(ctx: S3Request, bucket: bool, body: bool) -> Grants | None:
    """The ACL a request asks for: ``x-amz-acl``, ``x-amz-grant-*`` or (with ``body``) an
    AccessControlPolicy body; None when it names none. Invalid → 400, nothing changed."""
    h = ctx.request.headers
    if "x-amz-acl" in h:
        if any(k in h for k in GRANT_HEADERS):
            raise invalid_request_both()
        grants = canned(h["x-amz-acl"].strip(), bucket)
    else:
        grants = await header_grants(ctx)
    if body:
        raw = await s3body.read_small(ctx.request, ctx.auth, MAX_ACL_BODY)
        if raw.strip():
            if grants is not None:
                raise S3Error(400, "UnexpectedContent", "This request does not support content")
            grants = await xml_grants(ctx, raw)
    return grants


def invalid_request_both() -> S3Error:
    return S3Error(400, "InvalidRequest", "Specifying both Canned ACLs and Header Grants is not allowed")


def _drop_owner(grants: Grants, owner_project: str) -> Grants:
    return [(g, p) for g, p in grants if g != owner_project + ":*"]


# -- bucket ACL ↔ container ACLs -----------------------------------------------------------


def bucket_meta(grants: Grants, owner_project: str) -> dict[str, str | None]:
    """Grants → container metadata updates (the whole ACL is replaced)."""
    read: list[str] = []
    write: list[str] = []
    acp: dict[str, list[str]] = {}
    for g, perm in _drop_owner(grants, owner_project):
        if perm in ("READ", "FULL_CONTROL"):
            read += [ALL_USERS, ".rlistings"] if g == ALL_USERS else [g]
        if perm in ("WRITE", "FULL_CONTROL"):
            write.append(AUTHENTICATED_USERS if g == ALL_USERS else g)  # Swift: no anonymous writes
        if perm == "WRITE" and g == ALL_USERS:
            acp.setdefault(perm, []).append(g)  # S3's anonymous writes (anonymous_write)
        if perm in ("READ_ACP", "WRITE_ACP", "FULL_CONTROL"):
            acp.setdefault(perm, []).append(g)
    return {
        READ_ACL_KEY: ",".join(dict.fromkeys(read)) or None,
        WRITE_ACL_KEY: ",".join(dict.fromkeys(write)) or None,
        ACP_KEY: json.dumps({k: list(dict.fromkeys(v)) for k, v in acp.items()}) if acp else None,
    }


def bucket_grants(meta: dict[str, str]) -> Grants:
    """Container metadata → the grants S3 shows (besides the owner's FULL_CONTROL)."""
    _, rgroups = parse_acl(meta.get(READ_ACL_KEY))
    _, wgroups = parse_acl(meta.get(WRITE_ACL_KEY))
    try:
        acp = json.loads(meta.get(ACP_KEY) or "{}")
    except ValueError:
        acp = {}
    read = [ALL_USERS] if is_public(meta) else []
    read += [g for g in rgroups if ":" in g and not g.startswith(".")]
    write = [g for g in wgroups if ":" in g and not g.startswith(".")]
    if anonymous_write(meta):  # AllUsers WRITE: its ``*:*`` is part of it
        write = [ALL_USERS if g == AUTHENTICATED_USERS else g for g in write]
    full = [g for g in acp.get("FULL_CONTROL", []) if g in read and (g in write or g == ALL_USERS)]
    grants: Grants = [(g, "FULL_CONTROL") for g in full]
    grants += [(g, "READ") for g in read if g not in full]
    grants += [(g, "WRITE") for g in write if g not in full]
    for perm in ("READ_ACP", "WRITE_ACP"):
        grants += [(g, perm) for g in acp.get(perm, []) if isinstance(g, str)]
    return grants


def anonymous_write(meta: dict[str, str]) -> bool:
    """May S3 requests without credentials write this bucket's objects? AllUsers WRITE
    (or FULL_CONTROL) in ``sys:s3-acp`` *and* ``*:*`` still in the Swift write ACL."""
    acp = _acp_of(meta)
    if not any(isinstance(v, list) and ALL_USERS in v for v in (acp.get("WRITE"), acp.get("FULL_CONTROL"))):
        return False
    return AUTHENTICATED_USERS in parse_acl(meta.get(WRITE_ACL_KEY))[1]


def object_sysmeta(grants: Grants, owner_project: str) -> str | None:
    """Grants → the object's stored ACL (None: private)."""
    acl: dict[str, list[str]] = {}
    for g, perm in _drop_owner(grants, owner_project):
        acl.setdefault(perm, [])
        if g not in acl[perm]:
            acl[perm].append(g)
    return json.dumps(acl, separators=(",", ":")) if acl else None


async def create_bucket_meta(ctx: S3Request, project_id: str) -> dict[str, str]:
    """CreateBucket's ``x-amz-acl`` / ``x-amz-grant-*`` as container metadata."""
    grants = await requested(ctx, bucket=True, body=False)
    if not grants:
        return {}
    return {k: v for k, v in bucket_meta(grants, project_id).items() if v is not None}


async def put_object_sysmeta(ctx: S3Request, project_id: str) -> dict[str, str]:
    """PutObject / CopyObject / CreateMultipartUpload ``x-amz-acl`` / ``x-amz-grant-*`` as
    object system metadata to merge (empty: private)."""
    grants = await requested(ctx, bucket=False, body=False)
    stored = object_sysmeta(grants or [], project_id)
    return {OBJECT_ACL_KEY: stored} if stored else {}


# -- rendering ---------------------------------------------------------------------------


async def _display_name(ctx: S3Request, project_id: str) -> str:
    p = await ctx.storage.meta.get_project(project_id)
    return p.name if p is not None else project_id


async def _grant_xml(ctx: S3Request, grantee: str, perm: str) -> str:
    xsi = f'xmlns:xsi="{XSI}"'
    if grantee == ALL_USERS:
        g = f'<Grantee {xsi} xsi:type="Group">' + element("URI", ALL_USERS_URI) + "</Grantee>"
    elif grantee == AUTHENTICATED_USERS:
        g = f'<Grantee {xsi} xsi:type="Group">' + element("URI", AUTHENTICATED_URI) + "</Grantee>"
    else:
        project, _, user = grantee.partition(":")
        gid = project if user == "*" else grantee
        name = await _display_name(ctx, project) if user == "*" else grantee
        g = (f'<Grantee {xsi} xsi:type="CanonicalUser">' + element("ID", gid) + element("DisplayName", name)
             + "</Grantee>")
    return element("Grant", [g, element("Permission", perm)])


async def policy_xml(ctx: S3Request, owner_project: str, grants: Grants) -> bytes:
    name = await _display_name(ctx, owner_project)
    owner = element("Owner", [element("ID", owner_project), element("DisplayName", name)])
    items = [await _grant_xml(ctx, owner_project + ":*", "FULL_CONTROL")]
    items += [await _grant_xml(ctx, g, p) for g, p in grants]
    return xml_doc("AccessControlPolicy", [owner, element("AccessControlList", items)])


# -- handlers ----------------------------------------------------------------------------


async def _bucket(ctx: S3Request) -> Container:
    c = await ctx.storage.meta.get_container(ctx.bucket)
    if c is None:
        from lampi.s3.errors import no_such_bucket

        raise no_such_bucket(ctx.bucket)
    return c


def _acp_of(meta: dict[str, str]) -> dict[str, list[str]]:
    try:
        data = json.loads(meta.get(ACP_KEY) or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


async def _may_acp(ctx: S3Request, project_id: str, acl: dict[str, list[str]], write: bool) -> None:
    p = ctx.principal
    if is_anonymous(p):
        raise access_denied()
    if _is_owner(p, project_id, write):
        return
    if acl_grants(acl, await _identity(ctx), "WRITE_ACP" if write else "READ_ACP"):
        return
    raise access_denied()


async def owned_bucket(ctx: S3Request, write: bool) -> Container:
    """The bucket, for its owners only (bucket configuration: CORS, lifecycle)."""
    c = await _bucket(ctx)
    if is_anonymous(ctx.principal) or not _is_owner(ctx.principal, c.project_id, write):
        raise access_denied()
    return c


async def get_bucket_acl(ctx: S3Request) -> web.StreamResponse:
    c = await _bucket(ctx)
    await _may_acp(ctx, c.project_id, _acp_of(c.meta), write=False)
    return xml_response(ctx, await policy_xml(ctx, c.project_id, bucket_grants(c.meta)))


async def put_bucket_acl(ctx: S3Request) -> web.StreamResponse:
    c = await _bucket(ctx)
    await _may_acp(ctx, c.project_id, _acp_of(c.meta), write=True)
    grants = await requested(ctx, bucket=True, body=True)
    if grants is None:
        raise S3Error(400, "MissingSecurityHeader", "Your request was missing a required header",
                      MissingHeaderName="x-amz-acl")
    await ctx.storage.update_container_meta(c.name, bucket_meta(grants, c.project_id))
    return web.Response(status=200)


async def _object(ctx: S3Request) -> tuple[Container, ObjectRecord]:
    """The object (the version of ``?versionId=``, lampi/s3/versioning.py) whose ACL is asked."""
    from lampi.s3 import versioning

    c = await _bucket(ctx)
    try:
        rec, _vid = await versioning.record(ctx, c.name, ctx.key)
    except S3Error as err:
        if err.status == 404:  # reveal absence only to those who may read the bucket
            await check(ctx, c, write=False)
        raise
    return c, rec


async def get_object_acl(ctx: S3Request) -> web.StreamResponse:
    c, rec = await _object(ctx)
    acl = parse_object_acl(rec.sysmeta)
    await _may_acp(ctx, c.project_id, acl, write=False)
    grants = [(g, perm) for perm in PERMISSIONS for g in acl.get(perm, [])]
    return xml_response(ctx, await policy_xml(ctx, c.project_id, grants))


async def put_object_acl(ctx: S3Request) -> web.StreamResponse:
    c, rec = await _object(ctx)
    await _may_acp(ctx, c.project_id, parse_object_acl(rec.sysmeta), write=True)
    grants = await requested(ctx, bucket=False, body=True)
    if grants is None:
        raise S3Error(400, "MissingSecurityHeader", "Your request was missing a required header",
                      MissingHeaderName="x-amz-acl")
    sysmeta = {k: v for k, v in rec.sysmeta.items() if k != OBJECT_ACL_KEY}
    stored = object_sysmeta(grants, c.project_id)
    if stored:
        sysmeta[OBJECT_ACL_KEY] = stored
    # an ACL change is not a new version: bytes and Last-Modified stay (as tagging)
    from lampi.s3 import versioning

    await versioning.update_sysmeta(ctx, rec, sysmeta)
    return web.Response(status=200)
