"""Bucket policies over S3: Put/Get/DeleteBucketPolicy, GetBucketPolicyStatus, and the
policy's part in every S3 access decision (``authorize``).

The language lives in ``lampi.core.policy``; the document is kept as put in the
container's hidden metadata (``sys:s3-policy``), so Swift requests meet it too
(``lampi.http.authz.decide``). Evaluation follows S3 and Ceph RGW: the policy first —
an explicit Deny refuses (the bucket owner included, except for the policy operations
themselves, as AWS keeps them for the account root), an Allow grants — then, when it
says nothing, the ACLs (``lampi.s3.acl``).

Each S3 operation is one policy action (``action_of``: mostly ``s3:<Operation>``, with
S3's exceptions such as ListObjects → ``s3:ListBucket``, CopyObject and the multipart
calls → ``s3:PutObject``, ``versionId`` → the ``...Version...`` actions). The request
context (``request_env``) holds the ``aws:*`` keys of every request
(``lampi.http.peer.policy_env``) and S3's: ``s3:prefix``, ``s3:delimiter``,
``s3:max-keys``, ``s3:x-amz-*`` request headers (ACL, grants, copy source, metadata
directive, server-side encryption, storage class...), ``s3:VersionId``,
``s3:signatureversion``, ``s3:authType``, ``s3:RequestObjectTag/<key>`` and
``s3:RequestObjectTagKeys`` (``x-amz-tagging``), ``s3:ExistingObjectTag/<key>`` (the
object's stored tags, read only when the policy asks).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl, unquote

from aiohttp import web

from lampi.core import access, errors
from lampi.core import policy as P
from lampi.core.authz import Principal
from lampi.core.authz import READ_ACL_KEY, WRITE_ACL_KEY, parse_acl
from lampi.core.models import CKey, Container
from lampi.http.authz import identity_of
from lampi.http.peer import policy_env
from lampi.s3 import body as s3body
from lampi.s3 import tagging
from lampi.s3.errors import S3Error, access_denied, no_such_bucket
from lampi.s3.request import S3Request
from lampi.s3.sigv4 import is_anonymous
from lampi.s3.xml import element, xml_doc, xml_response

MAX_POLICY_BODY = 64 * 1024  # read at most this; beyond 20 KiB the policy itself is refused
POLICY_ACTIONS = frozenset({"s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"})

# S3 operations whose policy action is not "s3:" + the operation's name
_ACTIONS = {
    "ListObjects": "ListBucket", "ListObjectsV2": "ListBucket", "HeadBucket": "ListBucket",
    "ListObjectVersions": "ListBucketVersions", "ListMultipartUploads": "ListBucketMultipartUploads",
    "HeadObject": "GetObject", "CopyObject": "PutObject", "CreateMultipartUpload": "PutObject",
    "UploadPart": "PutObject", "UploadPartCopy": "PutObject", "CompleteMultipartUpload": "PutObject",
    "PostObject": "PutObject", "ListParts": "ListMultipartUploadParts", "DeleteObjects": "DeleteObject",
    "GetBucketCors": "GetBucketCORS", "PutBucketCors": "PutBucketCORS", "DeleteBucketCors": "PutBucketCORS",
    "GetBucketLifecycleConfiguration": "GetLifecycleConfiguration",
    "PutBucketLifecycleConfiguration": "PutLifecycleConfiguration",
    "DeleteBucketLifecycle": "PutLifecycleConfiguration",
    "GetPublicAccessBlock": "GetBucketPublicAccessBlock", "PutPublicAccessBlock": "PutBucketPublicAccessBlock",
    "DeletePublicAccessBlock": "PutBucketPublicAccessBlock",
    "DeleteBucketOwnershipControls": "PutBucketOwnershipControls",
    "GetBucketEncryption": "GetEncryptionConfiguration", "PutBucketEncryption": "PutEncryptionConfiguration",
    "DeleteBucketEncryption": "PutEncryptionConfiguration",
    "GetObjectLockConfiguration": "GetBucketObjectLockConfiguration",
    "PutObjectLockConfiguration": "PutBucketObjectLockConfiguration",
    "DeleteBucketTagging": "PutBucketTagging", "DeleteBucketReplication": "DeleteReplicationConfiguration",
    "GetBucketReplication": "GetReplicationConfiguration", "PutBucketReplication": "PutReplicationConfiguration",
    "GetBucketNotificationConfiguration": "GetBucketNotification",
    "PutBucketNotificationConfiguration": "PutBucketNotification",
    "GetBucketAccelerateConfiguration": "GetAccelerateConfiguration",
    "PutBucketAccelerateConfiguration": "PutAccelerateConfiguration",
}
# with ?versionId= these act on one version: the "...Version..." action
_VERSIONED = {"GetObject": "GetObjectVersion", "DeleteObject": "DeleteObjectVersion",
              "GetObjectAcl": "GetObjectVersionAcl", "PutObjectAcl": "PutObjectVersionAcl",
              "GetObjectTagging": "GetObjectVersionTagging", "PutObjectTagging": "PutObjectVersionTagging",
              "DeleteObjectTagging": "DeleteObjectVersionTagging",
              "GetObjectAttributes": "GetObjectVersionAttributes", "GetObjectTorrent": "GetObjectVersionTorrent"}
# request headers that are condition keys of their own name (s3:x-amz-...)
_HEADER_KEYS = ("x-amz-acl", "x-amz-grant-read", "x-amz-grant-write", "x-amz-grant-read-acp",
                "x-amz-grant-write-acp", "x-amz-grant-full-control", "x-amz-copy-source",
                "x-amz-metadata-directive", "x-amz-server-side-encryption",
                "x-amz-server-side-encryption-aws-kms-key-id", "x-amz-server-side-encryption-customer-algorithm",
                "x-amz-storage-class", "x-amz-content-sha256", "x-amz-object-lock-mode",
                "x-amz-object-lock-retain-until-date", "x-amz-object-lock-legal-hold",
                "x-amz-website-redirect-location", "x-amz-tagging-directive")
_OBJECT_ACTIONS = ("s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
                   "s3:ListMultipartUploadParts", "s3:RestoreObject", "s3:BypassGovernanceRetention")


def action_of(operation: str, versioned: bool = False) -> str:
    name = _ACTIONS.get(operation, operation)
    if versioned:
        name = _VERSIONED.get(name, name)
    return "s3:" + name


def is_object_action(action: str) -> bool:
    return action.startswith(("s3:GetObject", "s3:PutObject", "s3:DeleteObject")) or action in _OBJECT_ACTIONS


def policy_of(c: Container) -> P.Policy | None:
    return P.stored(c.meta.get(access.POLICY_KEY), c.name)


# -- who asks, and the request context ---------------------------------------------------

_WHO = "lampi.s3.policy.who"


async def who_of(ctx: S3Request) -> P.Who:
    """The caller as policies name it (ids, and names in the default domain)."""
    cached = ctx.request.get(_WHO)
    if cached is not None:
        return cached
    p = ctx.principal
    if is_anonymous(p) or not p.project_id:
        who = P.ANONYMOUS
    else:
        ident = await identity_of(ctx.request, p)
        who = P.Who(ident.project_id, ident.project_name or "", ident.user_id, ident.user_name or "")
    ctx.request[_WHO] = who
    return who


def _tags(header: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(header, keep_blank_values=True)
    except ValueError:
        return []


async def request_env(ctx: S3Request, pol: P.Policy, action: str, bucket: CKey, key: str | None,
                      who: P.Who, extra: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    request = ctx.request
    h = request.headers
    env = policy_env(request, who.user_id, "" if who.anonymous else ctx.principal.user_name)
    for name in _HEADER_KEYS:
        if name in h:
            env["s3:" + name] = [h[name]]
    q = ctx.query
    if action in ("s3:ListBucket", "s3:ListBucketVersions"):
        for param in ("prefix", "delimiter", "max-keys"):
            if param in q:
                env["s3:" + param] = [q[param]]
    if "versionId" in q:
        env["s3:versionid"] = [q["versionId"]]
    if ctx.auth.version:
        env["s3:signatureversion"] = ["AWS4-HMAC-SHA256" if ctx.auth.version == 4 else "AWS"]
        presigned = any(k in q for k in ("X-Amz-Signature", "Signature"))
        env["s3:authtype"] = ["REST-QUERY-STRING" if presigned else "REST-HEADER"]
    if "x-amz-tagging" in h and action == "s3:PutObject":
        tags = _tags(h["x-amz-tagging"])
        env["s3:requestobjecttagkeys"] = [k for k, _ in tags]
        for k, v in tags:
            env.setdefault(P.norm_key("s3:RequestObjectTag/" + k), []).append(v)
    if key is not None and is_object_action(action) and pol.needs("s3:existingobjecttag"):
        try:
            rec = await ctx.storage.head_object(bucket, key)
        except errors.DomainError:
            rec = None
        if rec is not None:
            for k, v in tagging.stored(rec.sysmeta):
                env.setdefault(P.norm_key("s3:ExistingObjectTag/" + k), []).append(v)
    env.update(extra or {})
    return env


async def verdict(ctx: S3Request, c: Container, action: str, key: str | None,
                  extra: dict[str, list[str]] | None = None) -> str | None:
    """The bucket policy's word on ``action`` on ``c`` (or its object ``key``): "Deny",
    "Allow" or None (no policy, or nothing it speaks of). RestrictPublicBuckets: a public
    policy's Allow counts for the bucket owner's project only."""
    pol = policy_of(c)
    if pol is None:
        return None
    who = await who_of(ctx)
    resource = c.name if key is None else f"{c.name}/{key}"
    env = await request_env(ctx, pol, action, c.key, key, who, extra)
    result = pol.evaluate(action, resource, who, env)
    if result == "Allow" and who.project_id != c.project_id and pol.is_public() \
            and access.PAB_KEY in c.meta and access.public_access_block(c.meta)["RestrictPublicBuckets"]:
        return None
    return result


def _owner(ctx: S3Request, c: Container) -> bool:
    p = ctx.principal
    return bool(p.project_id) and p.project_id == c.project_id and p.can_write


async def authorize(ctx: S3Request, c: Container, action: str, key: str | None,
                    fallback: Callable[[], Awaitable[None]], extra: dict[str, list[str]] | None = None) -> None:
    """Allow ``action`` or raise AccessDenied: a reseller (the cloud admin); else the bucket policy
    (Deny refuses, Allow grants; ``extra``: condition keys the request context lacks);
    else ``fallback`` (the ACL decision, which raises)."""
    if ctx.principal.is_reseller:  # the cloud admin, the ResellerAdmin role (every account, as Swift)
        return
    v = await verdict(ctx, c, action, key, extra)
    if v == "Deny" and not (action in POLICY_ACTIONS and _owner(ctx, c)):
        raise access_denied()
    if v == "Allow":
        return
    await fallback()


# -- handlers ----------------------------------------------------------------------------


async def _bucket(ctx: S3Request) -> Container:
    c = await ctx.lookup()
    if c is None:
        raise no_such_bucket(ctx.bucket)
    return c


def is_owner(p: Principal, project_id: str, write: bool) -> bool:
    """Do ``p``'s roles give it the owner's rights (write: an operator's; read: a reader's
    too) over project ``project_id``'s buckets?"""
    if p.is_reseller:
        return True
    return p.owns(project_id) if write else p.reads(project_id)


async def owned_bucket(ctx: S3Request, write: bool) -> Container:
    """The bucket, for its owners (or whom its policy allows): bucket configuration
    such as CORS, lifecycle and the policy itself."""
    c = await _bucket(ctx)

    async def fallback() -> None:
        if is_anonymous(ctx.principal) or not is_owner(ctx.principal, c.project_id, write):
            raise access_denied()

    await authorize(ctx, c, action_of(ctx.operation), None, fallback)
    return c


def malformed_policy(message: str) -> S3Error:
    return S3Error(400, "MalformedPolicy", message)


async def put_bucket_policy(ctx: S3Request) -> web.StreamResponse:
    c = await owned_bucket(ctx, write=True)
    raw = await s3body.read_small(ctx.request, ctx.auth, MAX_POLICY_BODY)
    if not raw.strip():
        raise malformed_policy("Policies must be valid JSON and the first byte must be '{'")
    project = await ctx.storage.meta.get_project(c.project_id)
    try:
        pol = P.parse(raw, c.name, (c.project_id, project.name if project is not None else c.project_id))
    except P.PolicyError as exc:
        raise malformed_policy(str(exc)) from None
    if access.PAB_KEY in c.meta and access.public_access_block(c.meta)["BlockPublicPolicy"] and pol.is_public():
        raise access_denied()  # PublicAccessBlock: BlockPublicPolicy
    await ctx.storage.update_container_meta(c.key, {access.POLICY_KEY: pol.text})
    return web.Response(status=204)


async def get_bucket_policy(ctx: S3Request) -> web.StreamResponse:
    c = await owned_bucket(ctx, write=False)
    text = c.meta.get(access.POLICY_KEY)
    if not text:
        raise S3Error(404, "NoSuchBucketPolicy", "The bucket policy does not exist", BucketName=c.name)
    return web.Response(status=200, body=text.encode(), content_type="application/json")


async def delete_bucket_policy(ctx: S3Request) -> web.StreamResponse:
    c = await owned_bucket(ctx, write=True)
    if access.POLICY_KEY in c.meta:
        await ctx.storage.update_container_meta(c.key, {access.POLICY_KEY: None})
    return web.Response(status=204)


def acl_is_public(meta: dict[str, str]) -> bool:
    """Does the bucket's ACL (Swift's or S3's) grant anything to everyone or to every
    authenticated user?"""
    for key in (READ_ACL_KEY, WRITE_ACL_KEY):
        referrers, groups = parse_acl(meta.get(key))
        if any(r and not r.startswith("-") for r in referrers) or "*:*" in groups:
            return True
    acl = access.bucket_acp(meta)
    return any(access.is_public_grantee(g) for perm, gs in acl.items() if perm != "v" for g in gs)


async def get_bucket_policy_status(ctx: S3Request) -> web.StreamResponse:
    """IsPublic: the policy is public (an Allow to anyone no condition pins down), or,
    as Ceph RGW answers, the bucket's ACL grants AllUsers or AuthenticatedUsers."""
    c = await owned_bucket(ctx, write=False)
    pol = policy_of(c)
    public = (pol is not None and pol.is_public()) or acl_is_public(c.meta)
    return xml_response(ctx, xml_doc("PolicyStatus", [element("IsPublic", "true" if public else "false")]))


def copy_source_of(ctx: S3Request) -> tuple[str, str, bool]:
    """(bucket, key, versioned) of ``x-amz-copy-source``."""
    src = ctx.request.headers.get("x-amz-copy-source", "")
    path, _, query = src.partition("?")
    sbucket, _, skey = unquote(path).lstrip("/").partition("/")
    return sbucket, skey, "versionId=" in query
