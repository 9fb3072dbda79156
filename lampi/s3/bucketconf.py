"""PublicAccessBlock and OwnershipControls of a bucket: Put/Get/Delete of each, kept in
the container's hidden metadata (``lampi.core.access``) and enforced there for S3 and
Swift requests alike.

PublicAccessBlock (four booleans; missing elements are false, as AWS):
  BlockPublicAcls       PutBucketAcl / PutObjectAcl / PutObject / CopyObject /
                        CreateMultipartUpload with a public grant → 403 (lampi.s3.acl),
                        and Swift container ACLs with ``.r:`` or ``*:*`` (lampi.swift)
  IgnorePublicAcls      public grants (S3's AllUsers / AuthenticatedUsers, Swift's
                        referrers and ``*:*``) count for nothing (lampi.http.authz.decide)
  BlockPublicPolicy     PutBucketPolicy of a public policy → 403 (lampi.s3.policy)
  RestrictPublicBuckets a public policy allows the bucket owner's project only
OwnershipControls: BucketOwnerEnforced (ACLs off, every object the bucket owner's),
BucketOwnerPreferred (objects written with bucket-owner-full-control become the bucket
owner's), ObjectWriter (the writer owns its objects; lampi's default, as Ceph RGW's).
"""

from __future__ import annotations

import json

from aiohttp import web

from lampi.core import access
from lampi.s3 import body as s3body
from lampi.s3 import policy as s3policy
from lampi.s3.acl import bucket_grants
from lampi.s3.errors import S3Error, malformed_xml
from lampi.s3.request import S3Request
from lampi.s3.xml import XMLError, child_text, element, parse, xml_doc, xml_response

MAX_BODY = 16 * 1024


async def _owned(ctx: S3Request, write: bool):  # noqa: ANN202
    return await s3policy.owned_bucket(ctx, write=write)


def _bool(text: str | None, name: str) -> bool:
    if text is None:
        return False
    v = text.strip().lower()
    if v not in ("true", "false"):
        raise malformed_xml()
    return v == "true"


async def put_public_access_block(ctx: S3Request) -> web.StreamResponse:
    c = await _owned(ctx, write=True)
    raw = await s3body.read_small(ctx.request, ctx.auth, MAX_BODY)
    try:
        root = parse(raw, "PublicAccessBlockConfiguration")
    except XMLError:
        raise malformed_xml() from None
    conf = {f: _bool(child_text(root, f), f) for f in access.PAB_FIELDS}
    await ctx.storage.update_container_meta(c.key, {access.PAB_KEY: json.dumps(conf, separators=(",", ":"))})
    return web.Response(status=200)


async def get_public_access_block(ctx: S3Request) -> web.StreamResponse:
    c = await _owned(ctx, write=False)
    if access.PAB_KEY not in c.meta:
        raise S3Error(404, "NoSuchPublicAccessBlockConfiguration",
                      "The public access block configuration was not found", BucketName=c.name)
    conf = access.public_access_block(c.meta)
    body = xml_doc("PublicAccessBlockConfiguration",
                   [element(f, "true" if conf[f] else "false") for f in access.PAB_FIELDS])
    return xml_response(ctx, body)


async def _delete(ctx: S3Request, key: str) -> web.StreamResponse:
    """Delete one of the bucket's settings (its owners): 204, also when it was not set."""
    c = await _owned(ctx, write=True)
    if key in c.meta:
        await ctx.storage.update_container_meta(c.key, {key: None})
    return web.Response(status=204)


async def delete_public_access_block(ctx: S3Request) -> web.StreamResponse:
    return await _delete(ctx, access.PAB_KEY)


def invalid_ownership(value: str) -> S3Error:
    return S3Error(400, "InvalidArgument" if value else "MalformedXML",
                   "Invalid ObjectOwnership value" if value else "The XML you provided was not well-formed or "
                   "did not validate against our published schema", **({"ArgumentName": "ObjectOwnership",
                                                                         "ArgumentValue": value} if value else {}))


def check_ownership_with_acl(meta: dict[str, str], project_id: str) -> None:
    """BucketOwnerEnforced needs a bucket ACL of the owner's grant only (AWS's rule)."""
    if bucket_grants(meta, project_id) != [(project_id + ":*", "FULL_CONTROL")]:
        raise S3Error(400, "InvalidBucketAclWithObjectOwnership",
                      "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting")


async def put_ownership_controls(ctx: S3Request) -> web.StreamResponse:
    c = await _owned(ctx, write=True)
    raw = await s3body.read_small(ctx.request, ctx.auth, MAX_BODY)
    try:
        root = parse(raw, "OwnershipControls")
    except XMLError:
        raise malformed_xml() from None
    rules = root.findall("Rule")
    if len(rules) != 1 or len(root) != 1:
        raise malformed_xml()
    value = (child_text(rules[0], "ObjectOwnership") or "").strip()
    if value not in access.OWNERSHIP_VALUES:
        raise invalid_ownership(value)
    if value == "BucketOwnerEnforced":
        check_ownership_with_acl(c.meta, c.project_id)
    await ctx.storage.update_container_meta(c.key, {access.OWNERSHIP_KEY: value})
    return web.Response(status=200)


async def get_ownership_controls(ctx: S3Request) -> web.StreamResponse:
    c = await _owned(ctx, write=False)
    value = access.ownership(c.meta)
    if value is None:
        raise S3Error(404, "OwnershipControlsNotFoundError", "The bucket ownership controls were not found",
                      BucketName=c.name)
    body = xml_doc("OwnershipControls", [element("Rule", [element("ObjectOwnership", value)])])
    return xml_response(ctx, body)


async def delete_ownership_controls(ctx: S3Request) -> web.StreamResponse:
    return await _delete(ctx, access.OWNERSHIP_KEY)
