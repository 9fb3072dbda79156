"""S3 entry point (path style): authenticate, resolve the operation, run it.

``resolve`` maps method + path + sub-resources to an ``Endpoint`` (operation name and
handler); operations not built yet resolve to a 501 ``NotImplemented`` naming them, so
the router is also the compatibility table (docs/s3-api.md).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp import web

from lampi.core import errors
from lampi.core.access import POLICY_KEY
from lampi.http.context import AUTH_FAILED, OPERATION, PRINCIPAL, PROJECT, STORAGE, TRANS_ID
from lampi.s3 import acl, attributes, bucket_tagging, bucket_versioning, bucketconf, cors, lifecycle, listing, objectlock, post
from lampi.s3 import bucket as b
from lampi.s3 import multipart as mpu
from lampi.s3 import object as o
from lampi.s3 import policy as pol
from lampi.s3 import sigv4, sse, tagging
from lampi.s3.errors import ERROR_CODE, S3Error, access_denied, error_response, from_domain, not_implemented, stamp
from lampi.s3.host import VHOST_BUCKET, split_tenant, virtual_bucket
from lampi.s3.request import Handler, S3Request

# S3 errors that refuse the request's credentials (counted as authentication failures)
AUTH_ERRORS = frozenset(("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
                         "AuthorizationHeaderMalformed", "InvalidSecurity"))

log = logging.getLogger("lampi.s3")
_VHOST_RE = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$")  # a DNS name (S3 bucket rules are checked on create)


@dataclass(frozen=True)
class Endpoint:
    operation: str
    handler: Handler | None  # None: not implemented (501 naming the operation)


# what a request without credentials may try (lampi.s3.acl.check decides per bucket)
_ANONYMOUS_OPS = frozenset({"ListObjects", "ListObjectsV2", "HeadBucket", "GetObject", "HeadObject",
                            # object writes into a public-read-write bucket, as AWS and Ceph RGW
                            "PutObject", "DeleteObject", "CreateMultipartUpload", "UploadPart",
                            "CompleteMultipartUpload", "AbortMultipartUpload",
                            # browser form uploads: the form carries its own signature (lampi.s3.post)
                            "PostObject"})


async def _tenant_bucket(request: web.Request, bucket: str) -> str:
    """Ceph RGW's ``<tenant>:<bucket>`` path form (a bucket of another tenant, by its
    tenant's name): here the tenant is a project (id or name) and bucket names are
    unique anyway, so it names ``<bucket>`` if that project owns it (an empty tenant:
    whoever does). A container whose name holds the colon itself comes first. In the
    per-project namespace ``split_tenant`` reads the prefix instead (a project id)."""
    storage = request.app[STORAGE]
    if storage.per_project:
        return bucket
    meta = storage.meta
    if await storage.lookup(None, bucket) is not None:
        return bucket
    tenant, _, name = bucket.partition(":")
    c = await storage.lookup(None, name) if name else None
    if c is None:
        return bucket
    if tenant and tenant != c.project_id:
        project = await meta.get_project(c.project_id)
        if project is None or project.name != tenant:
            return bucket
    return name


async def _has_policy(request: web.Request, tenant: str | None, bucket: str) -> bool:
    """The bucket an anonymous request names (``tenant``: its ``<project_id>:`` prefix,
    per-project namespace) has a bucket policy."""
    if not bucket:
        return False
    c = await request.app[STORAGE].lookup(tenant, bucket)
    return c is not None and POLICY_KEY in c.meta


# Bucket sub-resources and the operation names they stand for (GET/PUT/DELETE prefix added).
BUCKET_SUBRESOURCES = {
    "acl": "BucketAcl", "cors": "BucketCors", "lifecycle": "BucketLifecycleConfiguration",
    "policy": "BucketPolicy", "policyStatus": "BucketPolicyStatus", "tagging": "BucketTagging",
    "website": "BucketWebsite", "logging": "BucketLogging", "notification": "BucketNotificationConfiguration",
    "replication": "BucketReplication", "encryption": "BucketEncryption",
    "ownershipControls": "BucketOwnershipControls", "object-lock": "ObjectLockConfiguration",
    "requestPayment": "BucketRequestPayment", "accelerate": "BucketAccelerateConfiguration",
    "publicAccessBlock": "PublicAccessBlock", "analytics": "BucketAnalyticsConfiguration",
    "metrics": "BucketMetricsConfiguration", "inventory": "BucketInventoryConfiguration",
    "intelligent-tiering": "BucketIntelligentTieringConfiguration", "versioning": "BucketVersioning",
}
OBJECT_SUBRESOURCES = {
    "acl": "ObjectAcl", "tagging": "ObjectTagging", "retention": "ObjectRetention",
    "legal-hold": "ObjectLegalHold", "torrent": "ObjectTorrent", "attributes": "ObjectAttributes",
}


# an object's GET, HEAD and DELETE without a query string: most requests, resolved at once
_PLAIN_OBJECT_OPS = {"GET": Endpoint("GetObject", o.get_object), "HEAD": Endpoint("HeadObject", o.get_object),
                     "DELETE": Endpoint("DeleteObject", o.delete_object)}


def resolve(method: str, bucket: str, key: str, query: dict[str, str], headers) -> Endpoint:  # noqa: ANN001
    if not query and bucket and key:
        plain = _PLAIN_OBJECT_OPS.get(method)
        if plain is not None:
            return plain

    def ni(op: str) -> Endpoint:
        return Endpoint(op, None)

    verb = {"GET": "Get", "HEAD": "Get", "PUT": "Put", "DELETE": "Delete"}.get(method, "")
    if not bucket:
        if method in ("GET", "HEAD"):
            return Endpoint("ListBuckets", b.list_buckets)
        raise S3Error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")
    if not key:
        if method in ("GET", "HEAD", "PUT", "DELETE"):
            built = _bucket_config(method, query)  # ACL, CORS, lifecycle (lampi/s3/acl|cors|lifecycle.py)
            if built is not None:
                return built
            for sub, name in BUCKET_SUBRESOURCES.items():
                if sub in query:
                    return ni(verb + name)
        if method == "GET":
            if "location" in query:
                return Endpoint("GetBucketLocation", b.get_location)
            if "versions" in query:
                return Endpoint("ListObjectVersions", listing.list_object_versions)
            if "uploads" in query:
                return Endpoint("ListMultipartUploads", mpu.list_uploads)
            if query.get("list-type") == "2":
                return Endpoint("ListObjectsV2", listing.list_objects_v2)
            return Endpoint("ListObjects", listing.list_objects)
        if method == "HEAD":
            return Endpoint("HeadBucket", b.head_bucket)
        if method == "PUT":
            return Endpoint("CreateBucket", b.create_bucket)
        if method == "DELETE":
            return Endpoint("DeleteBucket", b.delete_bucket)
        if method == "POST":
            if "delete" in query:
                return Endpoint("DeleteObjects", o.delete_objects)
            return Endpoint("PostObject", post.post_object)
        raise S3Error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")
    if "tagging" in query:
        if method == "HEAD":  # as Ceph RGW (Allas): a HEAD on ?tagging is HeadObject
            return Endpoint("HeadObject", o.get_object)
        if method == "GET":
            return Endpoint("GetObjectTagging", tagging.get_object_tagging)
        if method == "PUT":
            return Endpoint("PutObjectTagging", tagging.put_object_tagging)
        if method == "DELETE":
            return Endpoint("DeleteObjectTagging", tagging.delete_object_tagging)
    if "acl" in query and method in ("GET", "HEAD", "PUT"):
        if method == "PUT":
            return Endpoint("PutObjectAcl", acl.put_object_acl)
        return Endpoint("GetObjectAcl", acl.get_object_acl)
    if ("retention" in query or "legal-hold" in query) and method in ("GET", "HEAD", "PUT"):
        if "retention" in query:
            return Endpoint("PutObjectRetention", objectlock.put_retention) if method == "PUT" else \
                Endpoint("GetObjectRetention", objectlock.get_retention)
        return Endpoint("PutObjectLegalHold", objectlock.put_legal_hold) if method == "PUT" else \
            Endpoint("GetObjectLegalHold", objectlock.get_legal_hold)
    if "attributes" in query and method in ("GET", "HEAD"):
        return Endpoint("GetObjectAttributes", attributes.get_object_attributes)
    if method in ("GET", "HEAD", "PUT", "DELETE"):
        for sub, name in OBJECT_SUBRESOURCES.items():
            if sub in query:
                return ni(verb + name)
    if method == "GET":
        if "uploadId" in query:
            return Endpoint("ListParts", mpu.list_parts)
        return Endpoint("GetObject", o.get_object)
    if method == "HEAD":
        return Endpoint("HeadObject", o.get_object)
    if method == "PUT":
        if "uploadId" in query or "partNumber" in query:
            if "x-amz-copy-source" in headers:
                return Endpoint("UploadPartCopy", mpu.upload_part_copy)
            return Endpoint("UploadPart", mpu.upload_part)
        if "x-amz-copy-source" in headers:
            return Endpoint("CopyObject", o.copy_object)
        return Endpoint("PutObject", o.put_object)
    if method == "DELETE":
        if "uploadId" in query:
            return Endpoint("AbortMultipartUpload", mpu.abort)
        return Endpoint("DeleteObject", o.delete_object)
    if method == "POST":
        if "uploads" in query:
            return Endpoint("CreateMultipartUpload", mpu.create)
        if "uploadId" in query:
            return Endpoint("CompleteMultipartUpload", mpu.complete)
        if "restore" in query:
            return ni("RestoreObject")
        if "select" in query:
            return ni("SelectObjectContent")
        return ni("PostObject")
    raise S3Error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")


def _bucket_config(method: str, query: dict[str, str]) -> Endpoint | None:
    ops = {
        "acl": {"GET": ("GetBucketAcl", acl.get_bucket_acl), "PUT": ("PutBucketAcl", acl.put_bucket_acl)},
        "policy": {"GET": ("GetBucketPolicy", pol.get_bucket_policy), "PUT": ("PutBucketPolicy", pol.put_bucket_policy),
                   "DELETE": ("DeleteBucketPolicy", pol.delete_bucket_policy)},
        "policyStatus": {"GET": ("GetBucketPolicyStatus", pol.get_bucket_policy_status)},
        "publicAccessBlock": {"GET": ("GetPublicAccessBlock", bucketconf.get_public_access_block),
                              "PUT": ("PutPublicAccessBlock", bucketconf.put_public_access_block),
                              "DELETE": ("DeletePublicAccessBlock", bucketconf.delete_public_access_block)},
        "ownershipControls": {"GET": ("GetBucketOwnershipControls", bucketconf.get_ownership_controls),
                              "PUT": ("PutBucketOwnershipControls", bucketconf.put_ownership_controls),
                              "DELETE": ("DeleteBucketOwnershipControls", bucketconf.delete_ownership_controls)},
        "cors": {"GET": ("GetBucketCors", cors.get_bucket_cors), "PUT": ("PutBucketCors", cors.put_bucket_cors),
                 "DELETE": ("DeleteBucketCors", cors.delete_bucket_cors)},
        "lifecycle": {"GET": ("GetBucketLifecycleConfiguration", lifecycle.get_config),
                      "PUT": ("PutBucketLifecycleConfiguration", lifecycle.put_config),
                      "DELETE": ("DeleteBucketLifecycle", lifecycle.delete_config)},
        "encryption": {"GET": ("GetBucketEncryption", sse.get_bucket_encryption),
                       "PUT": ("PutBucketEncryption", sse.put_bucket_encryption),
                       "DELETE": ("DeleteBucketEncryption", sse.delete_bucket_encryption)},
        "versioning": {"GET": ("GetBucketVersioning", bucket_versioning.get_bucket_versioning),
                       "PUT": ("PutBucketVersioning", bucket_versioning.put_bucket_versioning)},
        "object-lock": {"GET": ("GetObjectLockConfiguration", objectlock.get_config),
                        "PUT": ("PutObjectLockConfiguration", objectlock.put_config)},
        "tagging": {"GET": ("GetBucketTagging", bucket_tagging.get_bucket_tagging),
                    "PUT": ("PutBucketTagging", bucket_tagging.put_bucket_tagging),
                    "DELETE": ("DeleteBucketTagging", bucket_tagging.delete_bucket_tagging)},
    }
    for sub, by_method in ops.items():
        if sub in query:
            op = by_method.get("GET" if method == "HEAD" else method)
            return Endpoint(*op) if op is not None else None
    return None


# headers S3 operations store, parse or send back (besides every x-amz-* header)
TEXT_HEADERS = frozenset(("content-type", "content-disposition", "content-encoding", "content-language",
                          "cache-control", "expires", "origin", "access-control-request-headers",
                          "access-control-request-method"))


def check_header_text(request: web.Request) -> None:
    """Refuse headers that are not UTF-8 where lampi stores, parses or echoes them.
    aiohttp hands such bytes on as surrogate escapes, which neither the metadata store
    nor a response can hold (the signature checks use the bytes as sent)."""
    if "".join(request.headers.values()).isascii():
        return  # the common case, one check
    for name, value in request.headers.items():
        if value.isascii():
            continue
        lname = name.lower()
        if not (lname.startswith("x-amz-") or lname in TEXT_HEADERS):
            continue
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise S3Error(400, "InvalidArgument", "Header value is not valid UTF-8", ArgumentName=name) from None


def split_path(raw_path: str) -> tuple[str, str]:
    """``/bucket/key...`` → (bucket, key), percent-decoded (path style)."""
    path = raw_path.split("?", 1)[0]
    bucket, _, key = path.lstrip("/").partition("/")
    return unquote(bucket), unquote(key)


def bucket_of(request: web.Request) -> str:
    """The bucket an S3 request is about ("" for the service), path or virtual-hosted style."""
    vbucket = virtual_bucket(request)
    return vbucket if vbucket is not None else split_path(request.raw_path)[0]


async def handle(request: web.Request) -> web.StreamResponse:
    request_id = request.get(TRANS_ID, "")
    vbucket = virtual_bucket(request)
    if vbucket is not None:  # <bucket>.<s3_domain>: the whole path is the key
        bucket, key = vbucket, unquote(request.raw_path.split("?", 1)[0][1:])
        request[VHOST_BUCKET] = bucket  # SigV2 signs "/<bucket>/<key>"
    else:
        bucket, key = split_path(request.raw_path)
        if ":" in bucket:
            bucket = await _tenant_bucket(request, bucket)
    resource = "/" + bucket + ("/" + key if key else "")
    try:
        try:
            if vbucket is not None and not _VHOST_RE.match(vbucket):
                raise S3Error(400, "InvalidBucketName", "The specified bucket is not valid.", BucketName=vbucket)
            check_header_text(request)
            if request.method == "OPTIONS":  # CORS preflight: no auth, the bucket's CORS rules
                resp = await cors.preflight(request, bucket, resource, request_id)
                stamp(resp, request_id)
                return resp
            auth = await sigv4.authenticate(request)
            if auth is None:
                auth = sigv4.anonymous_auth()  # public buckets only (lampi.s3.acl.check)
            request[PRINCIPAL] = auth.principal
            request[PROJECT] = auth.principal.project_id
            tenant, bucket = split_tenant(request.app[STORAGE].per_project, bucket)
            if (request.app[STORAGE].per_project and tenant is None and bucket and request.method != "OPTIONS"
                    and "Origin" in request.headers):
                await cors.on_actual(request, bucket, auth.principal.project_id or None)
            try:
                ep = resolve(request.method, bucket, key, dict(request.query), request.headers)
            except S3Error:
                if auth.version == 0 and request.method not in ("GET", "HEAD"):
                    raise access_denied() from None  # no credentials: nothing more to learn
                raise
            if auth.version == 0 and (ep.handler is None or (
                    ep.operation not in _ANONYMOUS_OPS and not await _has_policy(request, tenant, bucket))):
                raise access_denied()  # a bucket policy may allow more (lampi.s3.policy)
            if ep.handler is None:
                raise not_implemented(ep.operation)
            request[OPERATION] = ep.operation
            ctx = S3Request(request, auth, bucket, key, request_id, acl.check, tenant=tenant, operation=ep.operation)
            resp = await ep.handler(ctx)
        except errors.DomainError as exc:
            raise from_domain(exc, bucket, key) from None
    except S3Error as err:
        if err.status >= 500:
            log.warning("S3 %s: %s", err.code, err.message)
        request[ERROR_CODE] = err.code
        resp = error_response(request, err, resource, request_id)
        if err.code in AUTH_ERRORS:
            request[AUTH_FAILED] = True  # lampi.metrics: lampi_auth_failures_total
        if err.status == 405:
            resp.headers["Allow"] = "GET, HEAD, PUT, POST, DELETE"
    if not resp.prepared:
        stamp(resp, request_id)
    if request.get("swift.expect_continue") and request.body_exists:
        # refused before "100 Continue": the client may or may not send the body now,
        # so the connection cannot be reused safely
        resp.force_close()
    return resp
