"""Service and bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket,
GetBucketLocation. A bucket is a Swift container (versioning: lampi/s3/versioning.py)."""

from __future__ import annotations

import base64
import functools
import ipaddress
import math
import re
import time

from aiohttp import web

from lampi.core import access
from lampi.core.models import ListParams
from lampi.core.numbers import uint
from lampi.s3 import acl, bucketconf, objectlock
from lampi.s3.body import read_small
from lampi.s3.errors import S3Error, invalid_argument, malformed_xml
from lampi.s3.request import S3Request
from lampi.s3.xml import xml_response, XMLError, child_text, element, parse, xml_doc

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# AWS's newer rules (general purpose bucket naming rules): prefixes and suffixes AWS
# keeps for IDNs ("xn--") and for its own access points, aliases and bucket types
RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
MAX_CONFIG_BODY = 64 * 1024


def iso8601(ts: float) -> str:
    # listings call this once per key: the whole-second text is cached (gmtime floors a
    # float, so gmtime(floor(ts)) is the same second), the milliseconds appended as before
    return iso_second(math.floor(ts)) + f".{int(ts % 1 * 1000):03d}Z"


@functools.lru_cache(maxsize=4096)
def iso_second(sec: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))


def check_bucket_name(name: str) -> None:
    """S3's naming rules for new buckets (existing Swift containers stay reachable by any name)."""
    ok = (bool(_BUCKET_RE.fullmatch(name)) and ".." not in name and ".-" not in name and "-." not in name
          and not name.startswith(RESERVED_PREFIXES) and not name.endswith(RESERVED_SUFFIXES))
    if ok:
        try:
            ipaddress.IPv4Address(name)
            ok = False
        except ValueError:
            pass
    if not ok:
        raise S3Error(400, "InvalidBucketName", "The specified bucket is not valid.", BucketName=name)


async def owner(ctx: S3Request, project_id: str, tag: str = "Owner") -> str:
    """``<Owner><ID>project id</ID><DisplayName>project name</DisplayName></Owner>``: the
    one form of an owner in every response (ACLs, listings, uploads)."""
    return await acl.owner_xml(ctx, project_id, tag)


MAX_LIST_BUCKETS = 10000


def _bucket_token(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode()


def _bucket_untoken(token: str) -> str:
    try:
        name = base64.b64decode(token.encode(), altchars=b"-_", validate=True).decode()
        if not name:
            raise ValueError(token)
        return name
    except (ValueError, UnicodeError):
        raise invalid_argument("The continuation token provided is incorrect", "continuation-token", token) from None


async def list_buckets(ctx: S3Request) -> web.StreamResponse:
    """ListBuckets; ``max-buckets`` (1-10,000) pages it with an opaque ``continuation-token``,
    ``prefix`` narrows it (AWS's paginated ListBuckets)."""
    p = ctx.principal
    if not p.can_read or not p.project_id:
        raise S3Error(403, "AccessDenied", "Access Denied")
    q = ctx.query
    limit: int | None = None
    if "max-buckets" in q:
        limit = uint(q["max-buckets"])
        if limit is None or not 1 <= limit <= MAX_LIST_BUCKETS:
            raise invalid_argument("max-buckets must be an integer between 1 and 10000", "max-buckets",
                                   q["max-buckets"])
    prefix = q.get("prefix", "")
    marker = _bucket_untoken(q["continuation-token"]) if q.get("continuation-token") else ""
    entries: list = []
    truncated = False
    while True:  # in pages of the core's listing limit
        want = MAX_LIST_BUCKETS if limit is None else limit + 1 - len(entries)
        page = await ctx.storage.list_containers(p.project_id, ListParams(marker=marker, limit=min(want, 10000),
                                                                          prefix=prefix))
        entries += page
        if limit is not None and len(entries) > limit:
            entries, truncated = entries[:limit], True
            break
        if len(page) < min(want, 10000):
            break
        marker = page[-1].name
    buckets = [element("Bucket", [element("Name", e.name), element("CreationDate", iso8601(e.last_modified))])
               for e in entries]
    kids = [await owner(ctx, p.project_id), element("Buckets", buckets)]
    if truncated:
        kids.append(element("ContinuationToken", _bucket_token(entries[-1].name)))
    if "prefix" in q:
        kids.append(element("Prefix", prefix))
    return xml_response(ctx, xml_doc("ListAllMyBucketsResult", kids))


async def create_bucket(ctx: S3Request) -> web.StreamResponse:
    p = ctx.principal
    if not p.can_write or not p.project_id:
        raise S3Error(403, "AccessDenied", "Access Denied")
    check_bucket_name(ctx.bucket)
    if ctx.tenant is not None and ctx.tenant != p.project_id:  # <tenant>:<bucket> of another project
        raise S3Error(403, "AccessDenied", "Access Denied")
    acl_meta = await acl.create_bucket_meta(ctx, p.project_id)  # x-amz-acl / x-amz-grant-*: 400 before anything
    acl_meta.update(_ownership_meta(ctx, acl_meta, p.project_id))
    acl_meta.update(objectlock.create_bucket_meta(ctx))  # x-amz-bucket-object-lock-enabled
    raw = await read_small(ctx.request, ctx.auth, MAX_CONFIG_BODY)
    if raw.strip():
        try:
            root = parse(raw, "CreateBucketConfiguration")
        except XMLError:
            raise malformed_xml() from None
        loc = child_text(root, "LocationConstraint")
        if loc and loc not in (ctx.settings.region, "us-east-1"):
            # as AWS for a region other than the endpoint's (us-east-1, the default of
            # clients with no region set, is accepted as "no constraint")
            raise S3Error(400, "IllegalLocationConstraintException", f"The {loc} location constraint is "
                          "incompatible for the region specific endpoint this request was sent to.")
    existing = await ctx.storage.lookup(p.project_id, ctx.bucket)
    if existing is None and await ctx.storage.create_container(p.project_id, ctx.bucket, acl_meta):
        return web.Response(status=200, headers={"Location": "/" + ctx.bucket})
    if existing is None:
        existing = await ctx.storage.lookup(p.project_id, ctx.bucket)  # made meanwhile by another request
    # As Ceph RGW (Allas): the owner's re-create that asks for the bucket's current ACL
    # is a 200 that changes nothing; another ACL, or another owner, is 409
    # BucketAlreadyExists (RGW refuses to change the ACL this way).
    if existing is not None and existing.project_id == p.project_id \
            and await acl.requested_bucket_grants(ctx, p.project_id) == acl.bucket_grants(existing.meta, p.project_id):
        return web.Response(status=200, headers={"Location": "/" + ctx.bucket})
    raise S3Error(409, "BucketAlreadyExists", "The requested bucket name is not available. The bucket "
                  "namespace is shared by all users of the system. Please select a different name and try "
                  "again.", BucketName=ctx.bucket)


def _ownership_meta(ctx: S3Request, acl_meta: dict[str, str], project_id: str) -> dict[str, str]:
    """CreateBucket's ``x-amz-object-ownership`` (BucketOwnerEnforced refuses a bucket
    ACL other than the owner's, as AWS)."""
    value = ctx.request.headers.get("x-amz-object-ownership")
    if value is None:
        return {}
    value = value.strip()
    if value not in access.OWNERSHIP_VALUES:
        raise bucketconf.invalid_ownership(value or "-")
    if value == "BucketOwnerEnforced" and acl_meta:
        bucketconf.check_ownership_with_acl(acl_meta, project_id)
    return {access.OWNERSHIP_KEY: value}


async def head_bucket(ctx: S3Request) -> web.StreamResponse:
    await ctx.get_bucket(write=False)
    return web.Response(status=200, headers={"x-amz-bucket-region": ctx.settings.region})


async def delete_bucket(ctx: S3Request) -> web.StreamResponse:
    c = await ctx.get_bucket(write=True)
    await ctx.storage.meta.delete_container(c.project_id, c.key)
    return web.Response(status=204)


async def get_location(ctx: S3Request) -> web.StreamResponse:
    await ctx.get_bucket(write=False)
    return xml_response(ctx, xml_doc("LocationConstraint", []).replace(
        b"></LocationConstraint>", b">" + ctx.settings.region.encode() + b"</LocationConstraint>"))

