"""Object operations: PutObject, GetObject/HeadObject, DeleteObject, DeleteObjects, CopyObject.

User metadata ``x-amz-meta-*`` is stored as the same lower-case ``meta`` dict Swift
uses for ``X-Object-Meta-*``; Content-Disposition/-Encoding/-Language, Cache-Control
and Expires as the same system metadata, so either API reads what the other wrote.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator, Callable
from email.utils import parsedate_to_datetime
from typing import NamedTuple
from urllib.parse import parse_qs, quote, unquote

from aiohttp import web

from lampi.core import errors, quotas, sse
from lampi.core import manifest as M
from lampi.core.access import OBJECT_OWNER_KEY
from lampi.core.models import Container, ObjectRecord, WriteCondition
from lampi.core.multipart import UPLOAD_ID_KEY
from lampi.core.numbers import uint
from lampi.core.storage import check_name
from lampi.http.dates import http_date  # cached per second
from lampi.http.transfer import BlobResponse, open_blob, send_blob  # zero-copy sendfile from a local file
from lampi.s3 import acl as s3acl
from lampi.s3 import body as s3body
from lampi.s3 import checksums, large, lifecycle, objectlock, tagging, versioning
from lampi.s3 import policy as s3policy
from lampi.s3 import sse as s3sse
from lampi.s3.bucket import iso8601
from lampi.s3.errors import S3Error, from_domain, invalid_argument, invalid_request, malformed_xml, no_such_key
from lampi.s3.request import S3Request
from lampi.s3.sigv4 import is_anonymous
from lampi.s3.xml import XMLError, child_text, element, parse, xml_doc, xml_response

SYS_HEADERS = ("content-disposition", "content-encoding", "content-language", "cache-control", "expires")
MAX_META_SIZE = 2048  # S3: user metadata up to 2 KB
MAX_KEY_BYTES = 1024
MAX_DELETE_BODY = 2 * 1024 * 1024
MAX_DELETE_KEYS = 1000
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")
RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type", "response-content-language": "Content-Language",
    "response-expires": "Expires", "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition", "response-content-encoding": "Content-Encoding",
}


def _check_key(key: str) -> None:
    try:
        check_name("object", key, MAX_KEY_BYTES)
    except errors.InvalidName as exc:
        if "longer" in exc.message:
            raise S3Error(400, "KeyTooLongError", "Your key is too long") from None
        raise invalid_argument(exc.message) from None


def user_meta(request: web.Request) -> dict[str, str]:
    meta = {}
    size = 0
    for name, value in request.headers.items():
        ln = name.lower()
        if ln.startswith("x-amz-meta-") and len(ln) > len("x-amz-meta-"):
            k = ln[len("x-amz-meta-"):]
            meta[k] = value if k not in meta else meta[k] + "," + value
            size += len(k.encode()) + len(value.encode())
    if size > MAX_META_SIZE:
        raise S3Error(400, "MetadataTooLarge", "Your metadata headers exceed the maximum allowed metadata size.",
                      Size=str(size), MaxSizeAllowed=str(MAX_META_SIZE))
    return meta


def sys_meta(request: web.Request) -> dict[str, str]:
    out = {h: request.headers[h] for h in SYS_HEADERS if request.headers.get(h)}
    if "content-encoding" in out:  # aws-chunked is transfer framing, not the object's encoding
        enc = [e.strip() for e in out["content-encoding"].split(",") if e.strip() and e.strip() != "aws-chunked"]
        if enc:
            out["content-encoding"] = ", ".join(enc)
        else:
            del out["content-encoding"]
    return out


def object_headers(rec: ObjectRecord) -> dict[str, str]:
    h = {"ETag": f'"{rec.etag}"', "Last-Modified": http_date(rec.last_modified), "Accept-Ranges": "bytes"}
    for k, v in rec.meta.items():
        h[f"x-amz-meta-{k}"] = v
    for k, v in rec.sysmeta.items():
        if k in SYS_HEADERS:
            h[k.title()] = v
    return h


async def put_object(ctx: S3Request) -> web.StreamResponse:
    bucket = await ctx.get_bucket(write=True)
    _check_key(ctx.key)
    request = ctx.request
    plan = s3body.plan(request, ctx.auth)
    te_chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if request.content_length is None and not te_chunked:
        raise S3Error(411, "MissingContentLength", "You must provide the Content-Length HTTP header.")
    max_size = ctx.settings.max_object_size
    if plan.decoded_length is not None and plan.decoded_length > max_size:
        raise S3Error(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size",
                      ProposedSize=str(plan.decoded_length), MaxSizeAllowed=str(max_size))
    sysmeta = sys_meta(request)
    if "x-amz-tagging" in request.headers:
        sysmeta = tagging.apply(sysmeta, tagging.from_header(request.headers["x-amz-tagging"]))
    sysmeta.update(await s3acl.put_object_sysmeta(ctx, bucket))
    sysmeta.update(objectlock.request_sysmeta(ctx, bucket))  # x-amz-object-lock-*: 400 before the body
    enc = await s3sse.for_write(ctx, bucket)  # encryption at rest (else the bucket's default)
    cond = write_condition(request.headers)
    # container, account and project quotas, as for Swift PUTs (QuotaExceeded); a body
    # of unknown length is stopped where it would pass them
    allowance = await quotas.check_quota(ctx.storage.meta, quotas.QuotaDefaults.from_settings(ctx.settings),
                                         bucket.project_id, bucket.key, plan.decoded_length)

    async def body():  # noqa: ANN202
        async for data in quotas.limit_body(s3body.stream(request, ctx.auth, plan, max_size), allowance):
            yield data
        # The verified checksum is kept with the object (x-amz-checksum-mode: ENABLED).
        # The core builds the object record after the body is consumed, from this dict.
        sysmeta.update(checksum_sysmeta(plan.checksum))

    rec = await ctx.storage.put_object(
        bucket.key, ctx.key, body(),
        content_type=request.headers.get("Content-Type") or "binary/octet-stream",
        meta=user_meta(request), sysmeta=sysmeta,
        expected_size=plan.decoded_length, expected_etag=plan.content_md5, max_size=max_size,
        encryption=enc.encryption, cond=cond, null_write=versioning.versioned(bucket.meta),
    )
    return web.Response(status=200, headers={"ETag": f'"{rec.etag}"', **plan.checksum, **version_header(rec),
                                             **s3sse.response_headers(rec.sysmeta, enc.customer)})


def write_condition(headers) -> WriteCondition | None:  # noqa: ANN001
    """PutObject / CopyObject / CompleteMultipartUpload ``If-Match`` / ``If-None-Match``
    (S3's conditional writes): checked against the current object in the transaction
    that commits the write (``MetaStore.put_object``), so two writers cannot both pass."""
    im, inm = headers.get("If-Match"), headers.get("If-None-Match")
    if im is None and inm is None:
        return None
    return WriteCondition(if_match=tuple(_etags(im)) if im is not None else None,
                          if_none_match=tuple(_etags(inm)) if inm is not None else None)


def version_header(rec: ObjectRecord) -> dict[str, str]:
    """``x-amz-version-id`` of a write: only when it made a version (versioning Enabled;
    a write while versioning is suspended is the null version, and S3 sends no id)."""
    return {"x-amz-version-id": rec.version_id} if rec.version_id else {}


CHECKSUM_PREFIX = "s3-checksum-"


def checksum_sysmeta(verified: dict[str, str]) -> dict[str, str]:
    """``{"x-amz-checksum-crc32": v}`` → ``{"s3-checksum-crc32": v}``."""
    return {CHECKSUM_PREFIX + k.removeprefix("x-amz-checksum-"): v for k, v in verified.items()}


async def _part_checksum(ctx: S3Request, rec: ObjectRecord, number: int) -> dict[str, str]:
    """GET/HEAD ``?partNumber=N`` in checksum mode: that part's checksum, typed as the object's."""
    whole = checksum_headers(rec.sysmeta)
    if not whole:
        return {}
    parts = await M.parts_of(ctx.storage, rec)
    value = parts[number - 1].checksum if 1 <= number <= len(parts) else None
    if not value:
        return {}
    alg = next(k for k in whole if k != "x-amz-checksum-type")
    return {alg: value, "x-amz-checksum-type": whole["x-amz-checksum-type"]}


def checksum_headers(sysmeta: dict[str, str]) -> dict[str, str]:
    out = {"x-amz-checksum-" + k[len(CHECKSUM_PREFIX):]: v for k, v in sysmeta.items()
           if k.startswith(CHECKSUM_PREFIX)}
    if out:
        out["x-amz-checksum-type"] = checksums.checksum_type(next(iter(out.values())))
    return out


def _ts(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _etags(v: str) -> list[str]:
    return [t.strip().removeprefix("W/").strip('"') for t in v.split(",") if t.strip()]


def check_conditionals(headers, rec: ObjectRecord, prefix: str = "") -> int | None:  # noqa: ANN001
    """S3's rules: a true If-Match overrides a false If-Unmodified-Since, a false
    If-None-Match overrides a true If-Modified-Since. Returns 412/304 or None."""
    lm = math.ceil(rec.last_modified)
    im, inm = headers.get(prefix + "If-Match"), headers.get(prefix + "If-None-Match")
    ius, ims = headers.get(prefix + "If-Unmodified-Since"), headers.get(prefix + "If-Modified-Since")
    if im is not None:
        tags = _etags(im)
        if "*" not in tags and rec.etag not in tags:
            return 412
    elif ius is not None:
        t = _ts(ius)
        if t is not None and lm > t:
            return 412
    if inm is not None:
        tags = _etags(inm)
        if "*" in tags or rec.etag in tags:
            return 304
    elif ims is not None:
        t = _ts(ims)
        if t is not None and lm <= t:  # a date in the future too, as RGW (Allas) compares
            return 304
    return None


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One byte range as (start, end-exclusive); None: serve the whole object (as S3
    does for a syntactically invalid or multi-range header)."""
    if not header or not header.strip().lower().startswith("bytes="):
        return None
    spec = header.strip()[6:]
    if "," in spec:
        return None
    first_s, sep, last_s = spec.partition("-")
    first, last = uint(first_s.strip() or "0"), uint(last_s.strip() or "0")
    if not sep or (not first_s.strip() and not last_s.strip()) or first is None or last is None:
        return None
    if not first_s.strip():
        if last == 0:
            raise errors.RangeNotSatisfiable()
        return max(0, size - last), size
    start = first
    end = size if not last_s.strip() else min(last + 1, size)
    if last_s.strip() and last < start:
        return None
    if start >= size:
        raise errors.RangeNotSatisfiable()
    return start, end


def _decrypting(ctx: S3Request, rec: ObjectRecord, key: bytes | None) -> Callable[[int, int], AsyncIterator[bytes]]:
    def reader(off: int, n: int) -> AsyncIterator[bytes]:
        return ctx.storage.read_object(rec, off, n, customer_key=key)

    return reader


async def no_current(ctx: S3Request, bucket: Container) -> S3Error:
    """NoSuchKey, with ``x-amz-delete-marker`` (true and the marker's id when the object's
    latest version is a delete marker), as Ceph RGW and AWS answer GET/HEAD."""
    err = no_such_key(ctx.key)
    err.headers["x-amz-delete-marker"] = "false"
    if versioning.versioned(bucket.meta):
        latest = await ctx.storage.latest_version(bucket.key, ctx.key)
        if latest is not None and versioning.is_marker(latest):
            err.headers.update({"x-amz-delete-marker": "true", "x-amz-version-id": await versioning.s3_id(ctx, latest)})
    return err


async def addressed(ctx: S3Request, bucket: Container) -> tuple[ObjectRecord, str | None]:
    """The record a GET/HEAD (or GetObjectAttributes) addresses — ``?versionId=`` or the
    current object — and the version id to show for it (None: unversioned)."""
    raw_vid = ctx.query.get("versionId")
    if raw_vid is not None:
        return await version_of(ctx, bucket, raw_vid), raw_vid
    try:
        rec = await ctx.storage.head_object(bucket.key, ctx.key)
    except errors.ObjectNotFound:
        raise await no_current(ctx, bucket) from None
    return rec, await versioning.s3_id(ctx, rec) if versioning.versioned(bucket.meta) else None


async def version_of(ctx: S3Request, bucket: Container, raw: str) -> ObjectRecord:
    """GET/HEAD ``?versionId=``: that version; NoSuchVersion, or 405 for a delete marker."""
    if raw == "":
        raise invalid_argument("Version id cannot be the empty string", "versionId", raw)
    rec = await versioning.find(ctx, bucket.key, ctx.key, versioning.parse_id(raw))
    if rec is None:
        raise versioning.no_such_version(ctx.key, raw)
    if versioning.is_marker(rec):
        err = versioning.marker_not_allowed()
        err.headers.update({"x-amz-delete-marker": "true", "x-amz-version-id": raw,
                            "Last-Modified": http_date(rec.last_modified)})
        raise err
    return rec


async def get_object(ctx: S3Request) -> web.StreamResponse:
    bucket = await ctx.get_bucket(write=False)
    request = ctx.request
    head = request.method == "HEAD"
    s3sse.refuse_on_read(ctx)
    ck = s3sse.customer_key(ctx)
    rec, shown_vid = await addressed(ctx, bucket)
    # large objects (S3 multipart, Swift SLO/DLO): real size and ETag, bytes read through
    rec, reader = await large.large_view(ctx, rec, ck.key if ck else None)
    if reader is None and sse.is_encrypted(rec.sysmeta):  # decrypted as it streams, by range
        reader = _decrypting(ctx, rec, ck.key if ck else None)
    part = await large.part_number_range(ctx, rec) if "partNumber" in ctx.query else None
    # an encrypted object's key: an SSE-C object needs the customer's (400 without it, or
    # with another), checked before anything is sent, HEAD included, as S3 does
    await ctx.storage.data_key(rec.sysmeta, ck.key if ck else None)
    headers = object_headers(rec)
    headers.update(s3sse.response_headers(rec.sysmeta, ck))
    headers.update(tagging.count_header(rec.sysmeta))
    headers.update(lifecycle.expiration_header(bucket.meta, rec, ctx.settings.lifecycle_day_seconds))
    headers.update(objectlock.response_headers(rec))
    if shown_vid is not None:
        headers["x-amz-version-id"] = shown_vid
    cond = check_conditionals(request.headers, rec)
    if cond == 304:
        resp = web.Response(status=304, headers={k: v for k, v in headers.items()
                                                 if k in ("ETag", "Last-Modified")})
        return ctx.stamp(resp)
    if cond == 412:
        raise S3Error(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold",
                      Condition="If-Match" if "If-Match" in request.headers else "If-Unmodified-Since")
    for q, h in RESPONSE_OVERRIDES.items() if ctx.query else ():
        if q in ctx.query:
            if is_anonymous(ctx.principal):  # as S3: only signed requests may override
                raise invalid_request("Request specific response headers cannot be used for anonymous GET "
                                      "requests.")
            value = ctx.query[q]
            if _CONTROL.search(value):  # CR, LF, NUL...: a header cannot carry them (nor split on them)
                raise invalid_argument(f"Header value of {q} contains control characters", q, quote(value))
            headers[h] = value
    ctype = headers.pop("Content-Type", rec.content_type)
    try:
        rng = parse_range(request.headers.get("Range"), rec.size)
        if part is not None:  # a multipart object's part; a plain object is its own part 1
            rng = part[:2] if rec.manifest is not None and rec.manifest.kind == "mpu" else None
    except errors.RangeNotSatisfiable:
        raise S3Error(416, "InvalidRange", "The requested range is not satisfiable",
                      RangeRequested=request.headers.get("Range", ""), ActualObjectSize=str(rec.size)) from None
    status, start, end = (200, 0, rec.size) if rng is None else (206, *rng)
    resp = BlobResponse(status=status, headers=headers)
    resp.content_type = ctype  # type: ignore[assignment]
    if "; charset=" in ctype:
        resp.headers["Content-Type"] = ctype
    resp.content_length = end - start
    if part is not None and rec.manifest is not None and rec.manifest.kind == "mpu":
        resp.headers["x-amz-mp-parts-count"] = str(part[2])
    checksum_mode = request.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED"
    if rng is not None:
        resp.headers["Content-Range"] = f"bytes {start}-{end - 1}/{rec.size}"
    elif checksum_mode:
        resp.headers.update(checksum_headers(rec.sysmeta))  # whole-object checksums only, as S3
    if checksum_mode and part is not None and rec.manifest is not None and rec.manifest.kind == "mpu":
        resp.headers.update(await _part_checksum(ctx, rec, int(ctx.query["partNumber"])))
    ctx.stamp(resp)
    if reader is not None and not head and end > start:
        await large.send_large(request, resp, reader, start, end - start)
    elif not head and end > start:
        fh = await open_blob(request, rec, start, end - start)  # a missing blob: 503 before any header
        await resp.prepare(request)
        await send_blob(request, resp, rec, start, end - start, fh)
    else:
        await resp.prepare(request)
    await resp.write_eof()
    return resp


class Deleted(NamedTuple):
    version_id: str | None  # the version deleted, or the delete marker written
    delete_marker: bool  # a delete marker was written, or the version deleted was one


async def delete_one(ctx: S3Request, bucket: Container, key: str, raw_vid: str | None, bypass: bool) -> Deleted:
    """DeleteObject of ``key`` (DeleteObjects: each key). With a version id: that version
    (the newest remaining one becomes current, as S3), 204 also when there is none.
    Without: with versioning Enabled a delete marker; Suspended, the null version goes
    and a null delete marker replaces it; unversioned, the object (204 also if absent).
    Object lock: AccessDenied for a locked version (``bypass``: GOVERNANCE bypassed)."""
    storage = ctx.storage
    if raw_vid is not None:
        if is_anonymous(ctx.principal):  # a version is history: not for anonymous writers,
            # unless the bucket policy says so
            if await s3policy.verdict(ctx, bucket, "s3:DeleteObjectVersion", key) != "Allow":
                raise S3Error(403, "AccessDenied", "Access Denied")
        if raw_vid == "":
            raise invalid_argument("Version id cannot be the empty string", "versionId", raw_vid)
        vid = versioning.parse_id(raw_vid)
        if vid == "null":
            _found, marker = await storage.delete_null(bucket.key, key, promote=True, bypass_governance=bypass)
        else:
            before = await storage.get_version(bucket.key, key, vid)
            await storage.delete_version(bucket.key, key, vid, promote=True, bypass_governance=bypass)
            marker = before is not None and versioning.is_marker(before)
        return Deleted(raw_vid, marker)
    st = versioning.state(bucket.meta)
    if st is not None:
        _existed, mid = await storage.delete_current(bucket.key, key, suspended=st == versioning.SUSPENDED,
                                                     bypass_governance=bypass)
        return Deleted("null" if st == versioning.SUSPENDED else mid, True)
    try:
        await storage.delete_object(bucket.key, key, bypass_governance=bypass)
    except errors.ObjectNotFound:
        pass  # S3 answers 204 for a missing key too
    return Deleted(None, False)


async def delete_object(ctx: S3Request) -> web.StreamResponse:
    bucket = await ctx.get_bucket(write=True)
    d = await delete_one(ctx, bucket, ctx.key, ctx.query.get("versionId"), await objectlock.bypass(ctx, bucket, ctx.key))
    resp = web.Response(status=204)
    if d.version_id is not None:
        resp.headers["x-amz-version-id"] = d.version_id
    if d.delete_marker:
        resp.headers["x-amz-delete-marker"] = "true"
    return resp


def _error(key: str, vid: str | None, code: str, message: str) -> str:
    kids = [element("Key", key)]
    if vid is not None:
        kids.append(element("VersionId", vid))
    return element("Error", [*kids, element("Code", code), element("Message", message)])


async def delete_objects(ctx: S3Request) -> web.StreamResponse:
    bucket = await ctx.get_bucket(write=True)
    per_key = s3policy.policy_of(bucket) is not None  # a bucket policy decides each key (s3:DeleteObject[Version])
    raw = await s3body.read_small(ctx.request, ctx.auth, MAX_DELETE_BODY)
    try:
        root = parse(raw, "Delete")
    except XMLError:
        raise malformed_xml() from None
    quiet = (child_text(root, "Quiet") or "").strip().lower() == "true"
    keys = []
    for obj in root.findall("Object"):
        k = child_text(obj, "Key")
        if k is None:
            raise S3Error(400, "UserKeyMustBeSpecified", "The bucket POST must contain the specified field name. "
                          "If it is specified, check the order of the fields.")
        keys.append((k, child_text(obj, "VersionId")))
    if not keys:
        raise malformed_xml()
    if len(keys) > MAX_DELETE_KEYS:
        raise malformed_xml()
    out = []
    for k, vid in keys:
        # with a bucket policy each key is decided on its own: s3:DeleteObject, or for
        # one version s3:DeleteObjectVersion, as DeleteObject
        action = "s3:DeleteObjectVersion" if vid not in (None, "") else "s3:DeleteObject"
        if per_key and not await s3acl.check_key(ctx, bucket, action, k, write=True):
            out.append(_error(k, vid, "AccessDenied", "Access Denied"))
            continue
        try:
            _check_key(k)
            d = await delete_one(ctx, bucket, k, vid, await objectlock.bypass(ctx, bucket, k))
        except S3Error as err:
            out.append(_error(k, vid, err.code, err.message))
            continue
        except errors.DomainError as exc:
            err = from_domain(exc, ctx.bucket, k)
            out.append(_error(k, vid, err.code, err.message))
            continue
        if not quiet:
            kids = [element("Key", k)]
            if vid is not None:
                kids.append(element("VersionId", vid))
            if d.delete_marker:
                kids += [element("DeleteMarker", True), element("DeleteMarkerVersionId", d.version_id or "null")]
            out.append(element("Deleted", kids))
    return xml_response(ctx, xml_doc("DeleteResult", out))


class CopySource(NamedTuple):
    bucket: str
    key: str
    rec: ObjectRecord  # as stored
    view: ObjectRecord  # as S3 shows it: a large object's real size and ETag
    reader: Callable[[int, int], AsyncIterator[bytes]] | None  # a large object's bytes; None: plain
    version_id: str | None = None  # x-amz-copy-source-version-id: the version copied (versioned source buckets)
    customer_key: bytes | None = None  # an SSE-C source's key (x-amz-copy-source-server-side-encryption-*)


async def copy_source(ctx: S3Request) -> CopySource:
    """The ``x-amz-copy-source`` of CopyObject and UploadPartCopy: the caller may read it
    and its ``x-amz-copy-source-if-*`` conditions hold (412 otherwise)."""
    request = ctx.request
    src = request.headers["x-amz-copy-source"]
    src_path, _, src_query = src.partition("?")
    sbucket, _, skey = unquote(src_path).lstrip("/").partition("/")
    if not sbucket or not skey:
        raise invalid_argument("Invalid copy source object key", "x-amz-copy-source", src)
    raw_vid = parse_qs(src_query, keep_blank_values=True).get("versionId", [None])[-1]
    ck = s3sse.customer_key(ctx, s3sse.COPY_SOURCE_CUSTOMER)
    sc = await ctx.get_bucket(write=False, name=sbucket)
    if raw_vid is not None:  # a version of the source (versionId=null: its null version)
        src_rec = await versioning.find(ctx, sc.key, skey, versioning.parse_id(raw_vid)) if raw_vid else None
        if src_rec is None:
            raise versioning.no_such_version(skey, raw_vid)
        if versioning.is_marker(src_rec):
            raise invalid_request("The source of a copy request may not specifically refer to a delete marker by "
                                  "version id.")
        shown: str | None = raw_vid
    else:
        try:
            src_rec = await ctx.storage.head_object(sc.key, skey)
        except errors.ObjectNotFound:
            raise no_such_key(skey) from None
        shown = await versioning.s3_id(ctx, src_rec) if versioning.versioned(sc.meta) else None
    key = ck.key if ck else None
    await ctx.storage.data_key(src_rec.sysmeta, key)  # an SSE-C source needs its key (checked)
    # a large source (S3 multipart, Swift SLO or DLO) is copied as its data: its real
    # size and ETag, segments read with the caller's authority
    src_view, reader = await large.large_view(ctx, src_rec, key)
    if check_conditionals(request.headers, src_view, prefix="x-amz-copy-source-") is not None:
        raise S3Error(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
    return CopySource(sbucket, skey, src_rec, src_view, reader, shown, key)


async def copy_object(ctx: S3Request) -> web.StreamResponse:
    bucket = await ctx.get_bucket(write=True)
    _check_key(ctx.key)
    request = ctx.request
    sbucket, skey, src_rec, src_view, reader, src_vid, src_key = await copy_source(ctx)
    enc = await s3sse.for_write(ctx, bucket)  # the copy's encryption: as asked, else the bucket's default
    directive = request.headers.get("x-amz-metadata-directive", "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise invalid_argument("Unknown metadata directive.", "x-amz-metadata-directive", directive)
    tag_directive = request.headers.get("x-amz-tagging-directive", "COPY").upper()
    if tag_directive not in ("COPY", "REPLACE"):
        raise invalid_argument("Unknown tagging directive.", "x-amz-tagging-directive", tag_directive)
    if directive == "REPLACE":
        meta, sysmeta = user_meta(request), sys_meta(request)
        sysmeta.update({k: v for k, v in src_rec.sysmeta.items()  # same bytes: same checksum and,
                        if k.startswith(CHECKSUM_PREFIX) or k == tagging.SYSMETA_KEY})  # unless replaced, tags
        ctype = request.headers.get("Content-Type") or "binary/octet-stream"
    else:
        if (src_rec.container == bucket.key and skey == ctx.key and enc.encryption is None
                and "versionId=" not in request.headers["x-amz-copy-source"]):
            raise invalid_request("This copy request is illegal because it is trying to copy an object to itself "
                                  "without changing the object's metadata, storage class, website redirect "
                                  "location or encryption attributes.")
        meta, sysmeta, ctype = dict(src_rec.meta), dict(src_rec.sysmeta), src_rec.content_type
    if tag_directive == "REPLACE":
        sysmeta = tagging.apply(sysmeta, tagging.from_header(request.headers.get("x-amz-tagging", "")))
    sysmeta.pop(s3acl.OBJECT_ACL_KEY, None)  # as S3: a copy's ACL is the request's, else private,
    sysmeta.pop(OBJECT_OWNER_KEY, None)  # and its owner the copier (or the bucket's: ObjectOwnership)
    sysmeta.pop("x-object-manifest", None)  # a DLO's copy is its data, not another manifest
    sysmeta.pop(UPLOAD_ID_KEY, None)  # a copy is no upload's result
    sysmeta = objectlock.strip(sysmeta)  # the copy's lock: the request's, else the bucket's default
    sysmeta.update(await s3acl.put_object_sysmeta(ctx, bucket))
    sysmeta.update(objectlock.request_sysmeta(ctx, bucket))
    cond = write_condition(request.headers)
    null_write = versioning.versioned(bucket.meta)
    max_size = ctx.settings.max_object_size
    if src_view.size > max_size:
        raise S3Error(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
    await quotas.check_quota(ctx.storage.meta, quotas.QuotaDefaults.from_settings(ctx.settings),
                             bucket.project_id, bucket.key, src_view.size)
    if reader is None:
        rec = await ctx.storage.copy_object(src_rec, bucket.key, ctx.key, content_type=ctype, meta=meta,
                                            sysmeta=sysmeta, customer_key=src_key, encryption=enc.encryption,
                                            cond=cond, null_write=null_write)
    else:
        rec = await ctx.storage.put_object(bucket.key, ctx.key, reader(0, src_view.size), content_type=ctype,
                                           meta=meta, sysmeta=sysmeta, expected_size=src_view.size,
                                           max_size=max_size, encryption=enc.encryption, cond=cond,
                                           null_write=null_write)
    body = xml_doc("CopyObjectResult", [element("LastModified", iso8601(rec.last_modified)),
                                        element("ETag", f'"{rec.etag}"')])
    resp = xml_response(ctx, body)
    resp.headers.update(s3sse.response_headers(rec.sysmeta, enc.customer))
    resp.headers.update(version_header(rec))
    if src_vid is not None:
        resp.headers["x-amz-copy-source-version-id"] = src_vid
    return resp
