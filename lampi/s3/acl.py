"""S3 access control: canned ACLs, grants, Get/PutBucketAcl, Get/PutObjectAcl, object
ownership, and the access decision for S3 requests (``check``).

One namespace with Swift (``lampi.core.authz``, ``lampi.core.access``,
``lampi.swift.acl``; docs/architecture.md "Access control: one namespace"):

* A bucket's S3 ACL is the grants Swift's container ACLs express plus the ones they
  cannot, kept beside them in ``sys:s3-acp``. Swift's read ACL (``.r:*``,
  ``<project>:*``) shows as READ (AllUsers, CanonicalUser) and keeps Swift's meaning:
  it reads the container's objects too. An S3 READ grant (PutBucketAcl, CreateBucket
  ``x-amz-acl``) has S3's meaning: it lists the bucket, its objects need their own
  ACLs; it is kept in ``sys:s3-acp`` (a grantee that Swift's read ACL already holds
  stays there, so a GetBucketAcl / PutBucketAcl round trip changes nothing). WRITE has
  one meaning in both APIs and lives in Swift's write ACL (AllUsers WRITE: ``*:*`` plus
  the ``.r:*`` mark in ``sys:s3-acp`` for anonymous S3 writes, which Swift has no form
  for). READ_ACP, WRITE_ACP, FULL_CONTROL: ``sys:s3-acp`` (FULL_CONTROL also in the
  write ACL).
* Grant lists are exact, as in S3 and RGW: a canned ACL gives the owner FULL_CONTROL
  and its grants, ``x-amz-grant-*`` headers and an AccessControlPolicy body give only
  the grants they name (a body with none revokes every grant; the owner keeps its
  implicit rights). Responses list group grants before the canonical users, as RGW.
* An object's ACL is in its system metadata (``s3-acl``, hidden from Swift); its
  owner is the project that wrote it (``s3-owner`` when that is not the bucket's; the
  bucket's ObjectOwnership may give it to the bucket owner). The owner and the
  grantees of READ_ACP/WRITE_ACP read and change the object's ACL; the bucket's project
  keeps Swift's owner rights over the data.
* Owner ID = the project id, DisplayName = the project name, everywhere (ACLs,
  listings, ListBuckets, multipart uploads).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from urllib.parse import unquote

from aiohttp import web

from lampi.core import access, errors
from lampi.core.authz import (
    ALL_USERS,
    AUTHENTICATED_USERS,
    OBJECT_ACL_KEY,
    READ_ACL_KEY,
    WRITE_ACL_KEY,
    Identity,
    is_public,
    parse_acl,
)
from lampi.core.models import Container, ObjectRecord
from lampi.http.authz import decide, identity_of, remember
from lampi.s3 import body as s3body
from lampi.s3 import policy as s3policy
from lampi.s3 import versioning
from lampi.s3.errors import S3Error, access_denied, invalid_argument, malformed_xml, no_such_bucket, no_such_key
from lampi.s3.host import split_tenant
from lampi.s3.sigv4 import is_anonymous
from lampi.s3.xml import XMLError, child_text, element, parse, xml_doc, xml_response

if TYPE_CHECKING:
    from lampi.s3.request import S3Request  # the request runs this module's check

ACP_KEY = access.ACP_KEY  # container metadata: the S3 grants Swift's ACLs cannot hold
MAX_ACL_BODY = 64 * 1024
MAX_GRANTS = 100  # as S3
ALL_USERS_URI = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED_URI = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
PERMISSIONS = ("FULL_CONTROL", "WRITE", "WRITE_ACP", "READ", "READ_ACP")
SHOW_ORDER = ("READ", "WRITE", "READ_ACP", "WRITE_ACP", "FULL_CONTROL")  # within a grantee class
GRANT_HEADERS = {"x-amz-grant-read": "READ", "x-amz-grant-write": "WRITE", "x-amz-grant-read-acp": "READ_ACP",
                 "x-amz-grant-write-acp": "WRITE_ACP", "x-amz-grant-full-control": "FULL_CONTROL"}
BUCKET_CANNED = ("private", "public-read", "public-read-write", "authenticated-read")
OBJECT_CANNED = BUCKET_CANNED + ("bucket-owner-read", "bucket-owner-full-control", "aws-exec-read")

Grants = list[tuple[str, str]]  # (grantee as a Swift ACL item, permission)


# -- the access decision for S3 requests -------------------------------------------------


def _request_action(ctx: S3Request, c: Container, write: bool) -> tuple[str, str | None]:
    """The policy action and object key a ``check`` of bucket ``c`` is about: the
    request's own operation, or reading the source of a copy."""
    request = ctx.request
    if not write and "x-amz-copy-source" in request.headers and request.method == "PUT":
        sbucket, skey, versioned = s3policy.copy_source_of(ctx)
        return ("s3:GetObjectVersion" if versioned else "s3:GetObject"), skey
    versioned = ctx.query.get("versionId", "") != ""  # one version, null too: s3:...Version actions
    action = s3policy.action_of(ctx.operation or ("PutObject" if write else "GetObject"), versioned)
    key = ctx.key if ctx.key and _own(ctx, c) else None
    return action, key


def _own(ctx: S3Request, c: Container) -> bool:
    """``c`` is the request's own bucket (not a copy source)."""
    return ctx.resolved is not None and c.key == ctx.resolved.key


async def check(ctx: S3Request, c: Container, write: bool) -> None:
    """Raise AccessDenied unless the caller may read (or write) bucket ``c`` as the
    request asks: the bucket policy first (``lampi.s3.policy.authorize``), then roles,
    account ACLs, Swift's container ACLs, S3's grants and object ACLs
    (``lampi.http.authz.decide``, the decision Swift makes too). A GetObject/HeadObject
    of a missing key by someone who may list the bucket is 404 NoSuchKey, else 403."""
    action, key = _request_action(ctx, c, write)
    if ctx.operation == "DeleteObjects" and s3policy.policy_of(c) is not None:
        return  # each key is decided on its own (lampi.s3.object.delete_objects)
    try:
        await s3policy.authorize(ctx, c, action, key, lambda: _acl_check(ctx, c, write))
    except S3Error as err:
        if err.code != "AccessDenied" or ctx.operation not in ("GetObject", "HeadObject") or key is None:
            raise
        if await ctx.storage.meta.get_object(c.key, key, _now()) is not None:
            raise
        try:
            await s3policy.authorize(ctx, c, "s3:ListBucket", None, lambda: _acl_list_check(ctx, c),
                                     extra={"s3:prefix": [key]})
        except S3Error:
            raise err from None
        raise no_such_key(key) from None


def _now() -> float:
    import time

    return time.time()


async def _acl_list_check(ctx: S3Request, c: Container) -> None:
    remember(ctx.request, c)
    p = None if is_anonymous(ctx.principal) else ctx.principal
    try:
        await decide(ctx.request, p, c.project_id, c.name, None, read=True, bucket_policy=False)
    except errors.DomainError:
        raise access_denied() from None


async def _version_read(ctx: S3Request, c: Container) -> ObjectRecord | None:
    """A read of one version (``?versionId=`` on the bucket's object): that version, whose
    own ACL and owner decide as S3 keeps them per version; None otherwise, or when there
    is no such version (the handler answers NoSuchVersion)."""
    raw = ctx.query.get("versionId")
    if not raw or not ctx.key or not _own(ctx, c):
        return None
    try:
        vid = versioning.parse_id(raw)
    except S3Error:
        return None  # the handler's 400
    return await versioning.find(ctx, c.key, ctx.key, vid)


async def _acl_check(ctx: S3Request, c: Container, write: bool) -> None:
    """``check`` by roles and ACLs (the bucket policy said nothing)."""
    p = ctx.principal
    request = ctx.request
    remember(request, c)
    version = await _version_read(ctx, c) if not write else None
    if is_anonymous(p):
        if write:
            # object writes (the router lets only PutObject, DeleteObject and multipart
            # uploads through) into a public-read-write bucket, as AWS
            if not (ctx.key and _own(ctx, c) and anonymous_write(c.meta)):
                raise access_denied()
            return
        if ctx.key and _own(ctx, c):
            # GetObject/HeadObject, Allas's public links: the container's read ACL
            # (referrers) or the object's own ACL, decided as for Swift
            try:
                await decide(request, None, c.project_id, c.name, ctx.key, read=True, bucket_policy=False,
                             record=version)
            except errors.DomainError:
                raise access_denied() from None
            return
        # ListObjects / HeadBucket of a public bucket (.rlistings, S3 AllUsers READ)
        if ctx.key or not access.anonymous_read(c.meta, request.headers.get("Referer"), listing=True):
            raise access_denied()
        return
    obj: str | None = None
    if _own(ctx, c) and ctx.key:
        obj = ctx.key
    if not write and "x-amz-copy-source" in request.headers and request.method == "PUT":
        # the source of CopyObject / UploadPartCopy: reading that object
        src = unquote(request.headers["x-amz-copy-source"].partition("?")[0]).lstrip("/")
        sbucket, _, skey = src.partition("/")
        obj = skey if split_tenant(ctx.storage.per_project, sbucket)[1] == c.name else ""
    elif write and not ctx.key and request.method == "POST" and "delete" in ctx.query:
        obj = ""  # DeleteObjects: object deletes, allowed by the write ACL
    try:
        await decide(request, p, c.project_id, c.name, obj, read=not write, bucket_policy=False,
                     record=version if obj == ctx.key else None)
    except errors.DomainError:
        raise access_denied() from None


async def check_key(ctx: S3Request, c: Container, action: str, key: str, write: bool) -> bool:
    """May the caller do ``action`` on object ``key`` of ``c`` (one key of DeleteObjects)?"""
    async def fallback() -> None:
        p = None if is_anonymous(ctx.principal) else ctx.principal
        if p is None and not (write and anonymous_write(c.meta)):
            raise access_denied()
        if p is None:
            return
        try:
            await decide(ctx.request, p, c.project_id, c.name, key, read=not write, bucket_policy=False)
        except errors.DomainError:
            raise access_denied() from None

    try:
        await s3policy.authorize(ctx, c, action, key, fallback)
    except S3Error:
        return False
    return True


async def _identity(ctx: S3Request) -> Identity | None:
    p = ctx.principal
    if is_anonymous(p) or not p.project_id:
        return None
    return await identity_of(ctx.request, p)


# -- parsing ACLs from requests ----------------------------------------------------------


def _malformed_acl() -> S3Error:
    return S3Error(400, "MalformedACLError", "The XML you provided was not well-formed or did not validate "
                   "against our published schema")


def canned(name: str, bucket: bool, owner: str = "", bucket_owner: str = "") -> Grants:
    """A canned ACL's grants: the owner's FULL_CONTROL (``owner``: a project id) and the
    ACL's own; ``bucket-owner-*`` name the bucket's project (nothing more when the
    object's owner is that project)."""
    allowed = BUCKET_CANNED if bucket else OBJECT_CANNED
    if name not in allowed:
        raise invalid_argument("Invalid canned ACL" if name else "Empty canned ACL", "x-amz-acl", name)
    grants: Grants = [(owner + ":*", "FULL_CONTROL")] if owner else []
    grants += {
        "public-read": [(ALL_USERS, "READ")],
        "public-read-write": [(ALL_USERS, "READ"), (ALL_USERS, "WRITE")],
        "authenticated-read": [(AUTHENTICATED_USERS, "READ")],
    }.get(name, [])
    if name in ("bucket-owner-read", "bucket-owner-full-control") and bucket_owner and bucket_owner != owner:
        grants.append((bucket_owner + ":*", "READ" if name == "bucket-owner-read" else "FULL_CONTROL"))
    return grants


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
    """``x-amz-grant-*: id="...", uri="..."`` headers; None when there are none. Each
    grantee of each header is one grant (``id=a, id=b`` is two)."""
    h = ctx.request.headers
    found = [k for k in GRANT_HEADERS if k in h]
    if not found:
        return None
    grants: Grants = []
    for name in found:
        for value_all in h.getall(name):
            for item in value_all.split(","):
                if not item.strip():
                    continue
                kind, sep, value = item.strip().partition("=")
                value = value.strip().strip('"')
                kind = kind.strip().lower()
                if not sep or not value:
                    raise invalid_argument("Invalid grant header value", name, h[name])
                if kind == "id":
                    grant = (await _grantee_id(ctx, value), GRANT_HEADERS[name])
                elif kind == "uri":
                    grant = (_group(value), GRANT_HEADERS[name])
                elif kind == "emailaddress":
                    raise S3Error(400, "UnresolvableGrantByEmailAddress",
                                  "The e-mail address you provided does not match any account on record.")
                else:
                    raise invalid_argument("Argument format not recognized", name, h[name])
                if grant not in grants:
                    grants.append(grant)
    if len(grants) > MAX_GRANTS:
        raise invalid_argument("Too many grants", "x-amz-grant-*", str(len(grants)))
    return grants


async def xml_grants(ctx: S3Request, raw: bytes) -> Grants:
    """An AccessControlPolicy document → grants (exactly those it lists)."""
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
            grant = (await _grantee_id(ctx, gid), perm)
        elif uri is not None and xsi_type in ("", "Group"):
            grant = (_group(uri.strip()), perm)
        elif email is not None:
            raise S3Error(400, "UnresolvableGrantByEmailAddress",
                          "The e-mail address you provided does not match any account on record.")
        else:
            raise _malformed_acl()
        if grant not in grants:
            grants.append(grant)
    if len(grants) > MAX_GRANTS:
        raise _malformed_acl()
    return grants


async def requested(ctx: S3Request, bucket: bool, body: bool, owner: str = "",
                    bucket_owner: str = "") -> Grants | None:
    """The ACL a request asks for: ``x-amz-acl`` (relative to ``owner``, the project that
    will own the resource), ``x-amz-grant-*`` or (with ``body``) an AccessControlPolicy
    body; None when it names none. Invalid → 400, nothing changed."""
    h = ctx.request.headers
    if "x-amz-acl" in h:
        if any(k in h for k in GRANT_HEADERS):
            raise invalid_request_both()
        grants = canned(h["x-amz-acl"].strip(), bucket, owner, bucket_owner)
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


def acl_not_supported() -> S3Error:
    return S3Error(400, "AccessControlListNotSupported", "The bucket does not allow ACLs")


def _block_public(c: Container, grants: Grants) -> None:
    """PublicAccessBlock's BlockPublicAcls: a new public ACL is refused (403)."""
    if access.PAB_KEY in c.meta and access.public_access_block(c.meta)["BlockPublicAcls"] \
            and any(access.is_public_grantee(g) for g, _ in grants):
        raise access_denied()


# -- bucket ACL ↔ container ACLs -----------------------------------------------------------


def _swift_items(meta: dict[str, str]) -> tuple[list[str], list[str]]:
    """The grantees Swift's read and write ACLs show as in S3 (AllUsers for ``.r:*``;
    AllUsers WRITE for ``*:*`` when anonymous S3 writes are on)."""
    _, rgroups = parse_acl(meta.get(READ_ACL_KEY))
    _, wgroups = parse_acl(meta.get(WRITE_ACL_KEY))
    read = [ALL_USERS] if is_public(meta) else []
    read += [g for g in rgroups if ":" in g and not g.startswith(".")]
    write = [g for g in wgroups if ":" in g and not g.startswith(".")]
    if anonymous_write(meta):  # AllUsers WRITE: its ``*:*`` is part of it
        write = [ALL_USERS if g == AUTHENTICATED_USERS else g for g in write]
    return read, write


def bucket_meta(grants: Grants, owner_project: str, current: dict[str, str] | None = None) -> dict[str, str | None]:
    """Grants → container metadata updates (the whole ACL is replaced). A READ grantee
    Swift's read ACL already holds stays there (Swift's meaning, objects readable); a
    new one is S3's (listing only)."""
    current = current or {}
    swift_read, _ = _swift_items(current)
    referrers, rgroups = parse_acl(current.get(READ_ACL_KEY))
    read: list[str] = []
    write: list[str] = []
    acp: dict[str, list[str]] = {}
    for g, perm in grants:
        if perm == "READ" and g in swift_read:
            if g == ALL_USERS:
                read += [".r:*"] + ([".rlistings"] if ".rlistings" in rgroups else [])
            else:
                read.append(g)
            continue
        if perm in ("WRITE", "FULL_CONTROL") and g != owner_project + ":*":
            write.append(AUTHENTICATED_USERS if g == ALL_USERS else g)  # Swift: no anonymous writes
            if g == ALL_USERS:
                acp.setdefault("WRITE", []).append(g)  # S3's anonymous writes (anonymous_write)
            if perm == "WRITE":
                continue
        acp.setdefault(perm, []).append(g)
    stored = {k: list(dict.fromkeys(v)) for k, v in acp.items()}
    stored["v"] = 2  # type: ignore[assignment]
    return {
        READ_ACL_KEY: ",".join(dict.fromkeys(read)) or None,
        WRITE_ACL_KEY: ",".join(dict.fromkeys(write)) or None,
        ACP_KEY: json.dumps(stored, separators=(",", ":")),
    }


def bucket_grants(meta: dict[str, str], owner_project: str) -> Grants:
    """Container metadata → the bucket's S3 grants (owner's included), in S3's order."""
    acl = access.bucket_acp(meta)
    swift_read, write = _swift_items(meta)
    owner = owner_project + ":*"
    grants: Grants = []
    if not access.exact(acl):
        grants.append((owner, "FULL_CONTROL"))  # older entries: the owner's grant was implied
    for g in acl.get("FULL_CONTROL", []):
        if g == owner or g in write:
            grants.append((g, "FULL_CONTROL"))
        else:  # Swift removed its write: what is left of FULL_CONTROL
            grants += [(g, "READ"), (g, "READ_ACP"), (g, "WRITE_ACP")]
    full = {g for g, p in grants if p == "FULL_CONTROL"}
    grants += [(g, "READ") for g in acl.get("READ", []) + swift_read if g not in full]
    grants += [(g, "WRITE") for g in write if g not in full]
    for perm in ("READ_ACP", "WRITE_ACP"):
        grants += [(g, perm) for g in acl.get(perm, []) if g not in full]
    return ordered(grants)


def ordered(grants: Grants) -> Grants:
    """Group grants first, then canonical users, each by permission (as RGW lists them);
    no duplicates."""
    def rank(item: tuple[int, tuple[str, str]]) -> tuple[int, int, int]:
        i, (g, perm) = item
        return (0 if g in (ALL_USERS, AUTHENTICATED_USERS) else 1, SHOW_ORDER.index(perm), i)

    uniq = list(dict.fromkeys(grants))
    return [gp for _, gp in sorted(enumerate(uniq), key=rank)]


def anonymous_write(meta: dict[str, str]) -> bool:
    """May S3 requests without credentials write this bucket's objects? AllUsers WRITE
    (or FULL_CONTROL) in ``sys:s3-acp`` *and* ``*:*`` still in the Swift write ACL, and
    no PublicAccessBlock ignoring public ACLs."""
    acp = access.bucket_acp(meta)
    if not any(ALL_USERS in acp.get(k, []) for k in ("WRITE", "FULL_CONTROL")):
        return False
    if access.ignore_public_acls(meta):
        return False
    return AUTHENTICATED_USERS in parse_acl(meta.get(WRITE_ACL_KEY))[1]


# -- object ACLs and owners --------------------------------------------------------------


def object_acl(sysmeta: dict[str, str], owner: str) -> Grants:
    """The object's grants (owner's included), in S3's order; no stored ACL: private."""
    raw = sysmeta.get(OBJECT_ACL_KEY)
    if not raw:
        return [(owner + ":*", "FULL_CONTROL")]
    try:
        data = json.loads(raw)
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    grants: Grants = [] if data.get("v") == 2 else [(owner + ":*", "FULL_CONTROL")]
    for perm in PERMISSIONS:
        v = data.get(perm)
        if isinstance(v, list):
            grants += [(g, perm) for g in v if isinstance(g, str)]
    return ordered(grants)


def object_sysmeta(grants: Grants, owner: str) -> str | None:
    """Grants → the object's stored ACL (None: private, the owner's FULL_CONTROL only)."""
    if grants == [(owner + ":*", "FULL_CONTROL")]:
        return None
    acl: dict[str, object] = {}
    for g, perm in grants:
        lst = acl.setdefault(perm, [])
        assert isinstance(lst, list)
        if g not in lst:
            lst.append(g)
    acl["v"] = 2
    return json.dumps(acl, separators=(",", ":"))


async def create_bucket_meta(ctx: S3Request, project_id: str) -> dict[str, str]:
    """CreateBucket's ``x-amz-acl`` / ``x-amz-grant-*`` as container metadata."""
    grants = await requested(ctx, bucket=True, body=False, owner=project_id)
    if grants is None:
        return {}
    return {k: v for k, v in bucket_meta(grants, project_id).items() if v is not None}


async def requested_bucket_grants(ctx: S3Request, project_id: str) -> Grants:
    """The grants a CreateBucket asks for (private when it names none)."""
    grants = await requested(ctx, bucket=True, body=False, owner=project_id)
    return ordered(grants if grants is not None else [(project_id + ":*", "FULL_CONTROL")])


def writer_of(ctx: S3Request) -> str:
    """The project a write acts for ("" without credentials)."""
    p = ctx.principal
    return "" if is_anonymous(p) else (p.project_id or "")


async def put_object_sysmeta(ctx: S3Request, bucket: Container | str) -> dict[str, str]:
    """PutObject / CopyObject / CreateMultipartUpload: the new object's owner and ACL
    (``x-amz-acl`` / ``x-amz-grant-*``) as system metadata to merge. The owner is the
    writing project, unless the bucket's ObjectOwnership gives it to the bucket's
    (BucketOwnerEnforced: always, and ACLs other than bucket-owner-full-control are
    refused with AccessControlListNotSupported; BucketOwnerPreferred: with
    bucket-owner-full-control). BlockPublicAcls refuses public grants (403)."""
    c = bucket if isinstance(bucket, Container) else await ctx.storage.lookup(ctx.scope, bucket)
    if c is None:
        return {}
    mode = access.ownership(c.meta)
    h = ctx.request.headers
    canned_name = h.get("x-amz-acl", "").strip() if "x-amz-acl" in h else None
    if mode == "BucketOwnerEnforced":
        if any(k in h for k in GRANT_HEADERS) or canned_name not in (None, "bucket-owner-full-control"):
            raise acl_not_supported()
        return {}
    writer = writer_of(ctx) or c.project_id
    owner = writer
    if mode == "BucketOwnerPreferred" and canned_name == "bucket-owner-full-control":
        owner = c.project_id
    grants = await requested(ctx, bucket=False, body=False, owner=owner, bucket_owner=c.project_id)
    out: dict[str, str] = {}
    if grants is not None:
        _block_public(c, grants)
        stored = object_sysmeta(grants, owner)
        if stored:
            out[OBJECT_ACL_KEY] = stored
    if owner != c.project_id:
        out[access.OBJECT_OWNER_KEY] = owner
    return out


# -- rendering ---------------------------------------------------------------------------


async def display_name(ctx: S3Request, project_id: str) -> str:
    """A project's S3 DisplayName: its name (its id if it no longer exists); looked up
    once per request."""
    names: dict[str, str] = ctx.request.setdefault("lampi.s3.display_names", {})
    if project_id not in names:
        p = await ctx.storage.meta.get_project(project_id) if project_id else None
        names[project_id] = p.name if p is not None else project_id
    return names[project_id]


async def owner_xml(ctx: S3Request, project_id: str, tag: str = "Owner") -> str:
    return element(tag, [element("ID", project_id), element("DisplayName", await display_name(ctx, project_id))])


async def _grant_xml(ctx: S3Request, grantee: str, perm: str) -> str:
    xsi = f'xmlns:xsi="{XSI}"'
    if grantee == ALL_USERS:
        g = f'<Grantee {xsi} xsi:type="Group">' + element("URI", ALL_USERS_URI) + "</Grantee>"
    elif grantee == AUTHENTICATED_USERS:
        g = f'<Grantee {xsi} xsi:type="Group">' + element("URI", AUTHENTICATED_URI) + "</Grantee>"
    else:
        project, _, user = grantee.partition(":")
        gid = project if user == "*" else grantee
        name = await display_name(ctx, project) if user == "*" else grantee
        g = (f'<Grantee {xsi} xsi:type="CanonicalUser">' + element("ID", gid) + element("DisplayName", name)
             + "</Grantee>")
    return element("Grant", [g, element("Permission", perm)])


async def policy_xml(ctx: S3Request, owner_project: str, grants: Grants) -> bytes:
    items = [await _grant_xml(ctx, g, p) for g, p in grants]
    return xml_doc("AccessControlPolicy", [await owner_xml(ctx, owner_project),
                                           element("AccessControlList", items)])


# -- handlers ----------------------------------------------------------------------------


async def _bucket(ctx: S3Request) -> Container:
    c = await ctx.lookup()
    if c is None:
        raise no_such_bucket(ctx.bucket)
    return c


async def _may_acp(ctx: S3Request, c: Container, owner: str, grants: Grants, write: bool,
                   key: str | None = None) -> None:
    """Reading (or changing) an ACL: its owner's project, a READ_ACP (WRITE_ACP) grantee,
    or the bucket policy."""
    async def fallback() -> None:
        p = ctx.principal
        if is_anonymous(p):
            raise access_denied()
        if s3policy.is_owner(p, owner, write):
            return
        acl: dict[str, list[str]] = {}
        for g, perm in grants:
            if g != owner + ":*":  # the owner's own grant: its roles decide (a reader reads)
                acl.setdefault(perm, []).append(g)
        if access.grants(acl, await _identity(ctx), "WRITE_ACP" if write else "READ_ACP", False):
            return
        raise access_denied()

    await s3policy.authorize(ctx, c, s3policy.action_of(ctx.operation, ctx.query.get("versionId", "") != ""),
                             key, fallback)


async def get_bucket_acl(ctx: S3Request) -> web.StreamResponse:
    c = await _bucket(ctx)
    grants = bucket_grants(c.meta, c.project_id)
    await _may_acp(ctx, c, c.project_id, grants, write=False)
    return xml_response(ctx, await policy_xml(ctx, c.project_id, grants))


async def put_bucket_acl(ctx: S3Request) -> web.StreamResponse:
    c = await _bucket(ctx)
    await _may_acp(ctx, c, c.project_id, bucket_grants(c.meta, c.project_id), write=True)
    enforced = access.ownership(c.meta) == "BucketOwnerEnforced"
    h = ctx.request.headers
    if enforced and ("x-amz-acl" in h or any(k in h for k in GRANT_HEADERS)):
        raise acl_not_supported()  # BucketOwnerEnforced: ACLs are off, as AWS
    grants = await requested(ctx, bucket=True, body=True, owner=c.project_id)
    if grants is None:
        raise S3Error(400, "MissingSecurityHeader", "Your request was missing a required header",
                      MissingHeaderName="x-amz-acl")
    if enforced and grants != [(c.project_id + ":*", "FULL_CONTROL")]:
        raise acl_not_supported()
    _block_public(c, grants)
    await ctx.storage.update_container_meta(c.key, bucket_meta(grants, c.project_id, c.meta))
    return web.Response(status=200)


async def _object(ctx: S3Request) -> tuple[Container, ObjectRecord]:
    """The object (the version of ``?versionId=``, lampi/s3/versioning.py) whose ACL is asked."""
    c = await _bucket(ctx)
    try:
        rec, _vid = await versioning.record(ctx, c.key, ctx.key)
    except S3Error as err:
        if err.status == 404:  # reveal absence only to those who may read the bucket
            await check(ctx, c, write=False)
        raise
    return c, rec


async def get_object_acl(ctx: S3Request) -> web.StreamResponse:
    c, rec = await _object(ctx)
    owner = access.object_owner(rec.sysmeta, c.project_id)
    grants = object_acl(rec.sysmeta, owner)
    await _may_acp(ctx, c, owner, grants, write=False, key=ctx.key)
    return xml_response(ctx, await policy_xml(ctx, owner, grants))


async def put_object_acl(ctx: S3Request) -> web.StreamResponse:
    c, rec = await _object(ctx)
    owner = access.object_owner(rec.sysmeta, c.project_id)
    await _may_acp(ctx, c, owner, object_acl(rec.sysmeta, owner), write=True, key=ctx.key)
    if access.ownership(c.meta) == "BucketOwnerEnforced":
        raise acl_not_supported()
    grants = await requested(ctx, bucket=False, body=True, owner=owner, bucket_owner=c.project_id)
    if grants is None:
        raise S3Error(400, "MissingSecurityHeader", "Your request was missing a required header",
                      MissingHeaderName="x-amz-acl")
    _block_public(c, grants)
    sysmeta = {k: v for k, v in rec.sysmeta.items() if k != OBJECT_ACL_KEY}
    stored = object_sysmeta(grants, owner)
    if stored:
        sysmeta[OBJECT_ACL_KEY] = stored
    # an ACL change is not a new version: bytes and Last-Modified stay (as tagging)
    await versioning.update_sysmeta(ctx, rec, sysmeta)
    return web.Response(status=200)
