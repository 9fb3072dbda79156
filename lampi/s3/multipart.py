"""S3 multipart uploads: CreateMultipartUpload, UploadPart, UploadPartCopy,
CompleteMultipartUpload, AbortMultipartUpload, ListParts, ListMultipartUploads.

The storage side (part blobs, completion as an ``mpu`` manifest, abort) is
protocol-neutral in ``lampi/core/multipart.py``; here are the S3 request and response
shapes. Part bodies are read exactly as PutObject reads its body (``lampi/s3/body.py``:
Content-MD5, x-amz-content-sha256, aws-chunked with trailers, flexible checksums).
"""

from __future__ import annotations

import base64
from urllib.parse import quote

from aiohttp import web

from lampi.core import multipart as mp
from lampi.core import quotas
from lampi.core.access import object_owner
from lampi.core.models import MultipartUpload, ObjectRecord, UploadPart
from lampi.core.numbers import uint
from lampi.s3 import acl as s3acl
from lampi.s3 import body as s3body
from lampi.s3 import checksums, tagging
from lampi.s3 import objectlock
from lampi.s3 import sse as s3sse
from lampi.s3 import versioning
from lampi.s3.bucket import iso8601, owner
from lampi.s3.checksums import checksum_type
from lampi.s3.errors import S3Error, invalid_argument, invalid_request, malformed_xml
from lampi.s3.object import (
    CHECKSUM_PREFIX,
    _check_key,
    copy_source,
    sys_meta,
    user_meta,
    version_header,
    write_condition,
)
from lampi.s3.request import S3Request
from lampi.s3.xml import XMLError, child_text, element, parse, xml_doc, xml_response

MAX_COMPLETE_BODY = 4 * 1024 * 1024  # 10,000 <Part>s with SHA-256 checksums fit with room to spare
MAX_LIST = 1000
CHECKSUM_ELEMENTS = {"crc32": "ChecksumCRC32", "crc32c": "ChecksumCRC32C", "crc64nvme": "ChecksumCRC64NVME",
                     "sha1": "ChecksumSHA1", "sha256": "ChecksumSHA256"}


def no_such_upload(upload_id: str) -> S3Error:
    return S3Error(404, "NoSuchUpload", "The specified upload does not exist. The upload ID may be invalid, or the "
                   "upload may have been aborted or completed.", UploadId=upload_id)


def _defaults(ctx: S3Request) -> quotas.QuotaDefaults:
    return quotas.QuotaDefaults.from_settings(ctx.settings)


async def _upload(ctx: S3Request) -> MultipartUpload:
    upload_id = ctx.query.get("uploadId", "")
    try:
        return await mp.get_upload(ctx.storage, upload_id, ctx.ckey, ctx.key)
    except mp.NoSuchUpload:
        raise no_such_upload(upload_id) from None


def _part_number(ctx: S3Request) -> int:
    raw = ctx.query.get("partNumber", "")
    n = uint(raw)
    if n is None or not 1 <= n <= mp.MAX_PARTS:
        raise invalid_argument("Part number must be an integer between 1 and 10000, inclusive", "partNumber", raw)
    return n


def _checksum_headers(alg: str | None, ctype: str | None) -> dict[str, str]:
    h = {}
    if alg:
        h["x-amz-checksum-algorithm"] = alg.upper()
        h["x-amz-checksum-type"] = ctype or "COMPOSITE"
    return h


# -- CreateMultipartUpload -----------------------------------------------------------


async def create(ctx: S3Request) -> web.StreamResponse:
    c = await ctx.get_bucket(write=True)
    _check_key(ctx.key)
    request = ctx.request
    sysmeta = sys_meta(request)
    if "x-amz-tagging" in request.headers:
        sysmeta = tagging.apply(sysmeta, tagging.from_header(request.headers["x-amz-tagging"]))
    sysmeta.update(await s3acl.put_object_sysmeta(ctx, c))  # x-amz-acl: the completed object's ACL
    sysmeta.update(objectlock.request_sysmeta(ctx, c))  # x-amz-object-lock-*: the completed object's lock
    alg = request.headers.get("x-amz-checksum-algorithm")
    if alg is not None:
        alg = alg.strip().lower()
        if alg not in checksums.ALGORITHMS:
            raise invalid_request_alg(alg)
    ctype = request.headers.get("x-amz-checksum-type")
    if ctype is not None:
        ctype = ctype.strip().upper()
        if ctype not in ("COMPOSITE", "FULL_OBJECT") or alg is None:
            raise invalid_argument("Value for x-amz-checksum-type header is invalid.", "x-amz-checksum-type", ctype)
        # S3: FULL_OBJECT for the CRCs only, COMPOSITE for all but CRC64NVME
        if (ctype == "FULL_OBJECT" and alg not in checksums.CRC_ALGORITHMS) or (
                ctype == "COMPOSITE" and alg == "crc64nvme"):
            raise invalid_request(f"The {ctype} checksum type cannot be used with the {alg.upper()} "
                                  "checksum algorithm.")
    elif alg == "crc64nvme":
        ctype = "FULL_OBJECT"  # the only type S3 allows for CRC64NVME
    enc = await s3sse.for_write(ctx, c)  # the parts' encryption (else the bucket's default)
    up = await mp.create_upload(
        ctx.storage, c.key, ctx.key, c.project_id,
        content_type=request.headers.get("Content-Type") or "binary/octet-stream",
        meta=user_meta(request), sysmeta=sysmeta, checksum_alg=alg, checksum_type=ctype,
        owner=ctx.principal.user_id, encryption=enc.encryption,
    )
    body = xml_doc("InitiateMultipartUploadResult", [
        element("Bucket", ctx.bucket), element("Key", ctx.key), element("UploadId", up.upload_id)])
    resp = xml_response(ctx, body)
    resp.headers.update(_checksum_headers(alg, ctype))
    resp.headers.update(s3sse.response_headers(up.sysmeta, enc.customer))
    return resp


def invalid_request_alg(alg: str) -> S3Error:
    return invalid_argument("Checksum algorithm provided is unsupported. Please try again with any of the valid "
                            "types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]", "x-amz-checksum-algorithm", alg)


# -- UploadPart ------------------------------------------------------------------------


async def upload_part(ctx: S3Request) -> web.StreamResponse:
    c = await ctx.get_bucket(write=True)
    number = _part_number(ctx)
    up = await _upload(ctx)
    ck = s3sse.for_upload(ctx, up)  # encrypted as the upload is (an SSE-C upload's key on every part)
    request = ctx.request
    plan = s3body.plan(request, ctx.auth)
    te_chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if request.content_length is None and not te_chunked:
        raise S3Error(411, "MissingContentLength", "You must provide the Content-Length HTTP header.")
    if plan.decoded_length is not None and plan.decoded_length > mp.MAX_PART_SIZE:
        raise S3Error(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size",
                      ProposedSize=str(plan.decoded_length), MaxSizeAllowed=str(mp.MAX_PART_SIZE))
    # the part's bytes count against the quotas now (no new object yet): QuotaExceeded
    allowance = await quotas.check_quota(ctx.storage.meta, _defaults(ctx), c.project_id, c.key,
                                         plan.decoded_length, add_objects=0, with_parts=True)

    def verified() -> str | None:
        return plan.checksum.get(f"x-amz-checksum-{up.checksum_alg}") if up.checksum_alg else None

    part = await mp.upload_part(
        ctx.storage, up, number,
        quotas.limit_body(s3body.stream(request, ctx.auth, plan, mp.MAX_PART_SIZE), allowance),
        expected_size=plan.decoded_length, expected_etag=plan.content_md5, checksum=verified,
        customer_key=ck.key if ck else None,
    )
    return web.Response(status=200, headers={"ETag": f'"{part.etag}"', **plan.checksum,
                                             **s3sse.response_headers(up.sysmeta, ck)})


# -- UploadPartCopy ------------------------------------------------------------------


def _copy_range(value: str | None, size: int) -> tuple[int, int]:
    """``x-amz-copy-source-range: bytes=first-last`` → (offset, length)."""
    if value is None:
        return 0, size
    v = value.strip()
    first_s, sep, last_s = v.removeprefix("bytes=").partition("-")
    first, last = uint(first_s), uint(last_s)
    if not v.startswith("bytes=") or not sep or first is None or last is None or last < first:
        raise invalid_argument("The x-amz-copy-source-range value must be of the form bytes=first-last where first "
                               "and last are the zero-based offsets of the first and last bytes to copy",
                               "x-amz-copy-source-range", value)
    if last >= size:
        raise invalid_argument(f"Range specified is not valid for source object of size: {size}",
                               "x-amz-copy-source-range", value)
    return first, last - first + 1


async def upload_part_copy(ctx: S3Request) -> web.StreamResponse:
    c = await ctx.get_bucket(write=True)
    number = _part_number(ctx)
    up = await _upload(ctx)
    src = await copy_source(ctx)
    ck = s3sse.for_upload(ctx, up)
    src_rec, reader = src.view, src.reader
    src_headers = {"x-amz-copy-source-version-id": src.version_id} if src.version_id is not None else {}
    offset, length = _copy_range(ctx.request.headers.get("x-amz-copy-source-range"), src_rec.size)
    if length > mp.MAX_PART_SIZE:
        raise S3Error(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
    await quotas.check_quota(ctx.storage.meta, _defaults(ctx), c.project_id, c.key, length, add_objects=0,
                             with_parts=True)
    # read through manifests (SLO, DLO, multipart): the part gets the data, never shared blobs
    data = reader(offset, length) if reader is not None else \
        ctx.storage.read_object(src_rec, offset, length, customer_key=src.customer_key)
    part = await mp.upload_part(ctx.storage, up, number, data, expected_size=length,
                                customer_key=ck.key if ck else None)
    body = xml_doc("CopyPartResult", [element("LastModified", iso8601(part.last_modified)),
                                      element("ETag", f'"{part.etag}"')])
    resp = xml_response(ctx, body)
    resp.headers.update(s3sse.response_headers(up.sysmeta, ck))
    resp.headers.update(src_headers)
    return resp


# -- CompleteMultipartUpload ---------------------------------------------------------


def _parse_complete(raw: bytes) -> list[mp.RequestedPart]:
    try:
        root = parse(raw, "CompleteMultipartUpload")
    except XMLError:
        raise malformed_xml() from None
    out = []
    for el in root.findall("Part"):
        num, etag = child_text(el, "PartNumber"), child_text(el, "ETag")
        number = None if num is None else uint(num.strip())
        if number is None or etag is None:
            raise malformed_xml()
        sums = {alg: (child_text(el, name) or "").strip() for alg, name in CHECKSUM_ELEMENTS.items()
                if el.find(name) is not None}
        out.append(mp.RequestedPart(number, etag.strip(), sums))
    if not out or len(out) > mp.MAX_PARTS:
        raise malformed_xml()
    return out


def _complete_result(ctx: S3Request, rec: ObjectRecord, alg: str | None,
                     ck: s3sse.CustomerKey | None) -> web.StreamResponse:
    kids = [element("Location", f"{ctx.request.scheme}://{ctx.request.host}/{quote(ctx.bucket)}/{quote(ctx.key)}"),
            element("Bucket", ctx.bucket), element("Key", ctx.key), element("ETag", f'"{rec.etag}"')]
    headers = {}
    for a in checksums.ALGORITHMS:  # the object's checksum (the upload's algorithm), typed
        value = rec.sysmeta.get(CHECKSUM_PREFIX + a)
        if value:
            ctype = checksum_type(value)
            kids += [element(CHECKSUM_ELEMENTS[a], value), element("ChecksumType", ctype)]
            headers[f"x-amz-checksum-{a}"] = value
            headers["x-amz-checksum-type"] = ctype
    resp = xml_response(ctx, xml_doc("CompleteMultipartUploadResult", kids))
    resp.headers.update(headers)
    resp.headers.update(version_header(rec))
    resp.headers.update(s3sse.response_headers(rec.sysmeta, ck))
    return resp


async def _completed(ctx: S3Request, upload_id: str) -> web.StreamResponse:
    """A Complete of an upload that is gone: if it completed as the current object (a
    client retrying a Complete whose answer it lost), that answer again (200, as AWS
    and Ceph RGW); else NoSuchUpload."""
    rec = await mp.completed_as(ctx.storage, upload_id, ctx.ckey, ctx.key)
    if rec is None:
        raise no_such_upload(upload_id)
    alg = next((k[len(CHECKSUM_PREFIX):] for k in rec.sysmeta
                if k.startswith(CHECKSUM_PREFIX) and k[len(CHECKSUM_PREFIX):] in CHECKSUM_ELEMENTS), None)
    return _complete_result(ctx, rec, alg, s3sse.customer_key(ctx))


async def complete(ctx: S3Request) -> web.StreamResponse:
    c = await ctx.get_bucket(write=True)
    _check_key(ctx.key)
    try:
        up = await _upload(ctx)
    except S3Error as err:
        if err.code != "NoSuchUpload":
            raise
        return await _completed(ctx, ctx.query.get("uploadId", ""))
    ck = s3sse.for_upload(ctx, up)
    await ctx.storage.data_key(up.sysmeta, ck.key if ck else None)  # an SSE-C upload's key, checked
    # x-amz-checksum-<alg> names the whole object's checksum here, not the XML body's
    raw = await s3body.read_small(ctx.request, ctx.auth, MAX_COMPLETE_BODY, checksum_headers=False)
    requested = _parse_complete(raw)
    for r in requested:
        if r.number < 1 or r.number > mp.MAX_PARTS:
            raise invalid_argument("Part number must be an integer between 1 and 10000, inclusive", "partNumber",
                                   str(r.number))
    alg = up.checksum_alg
    claimed = {a: ctx.request.headers[f"x-amz-checksum-{a}"] for a in checksums.ALGORITHMS
               if f"x-amz-checksum-{a}" in ctx.request.headers}
    if claimed and (alg is None or set(claimed) != {alg}):
        raise invalid_request(f"The upload was created using the {(alg or 'null').upper()} checksum algorithm; "
                              f"a checksum for {', '.join(a.upper() for a in claimed)} was given.")

    def extra(parts: list[UploadPart]) -> dict[str, str]:
        out: dict[str, str] = {}
        if not alg:
            return out
        if (up.checksum_type or "COMPOSITE") == "COMPOSITE":
            value = mp.composite_checksum(lambda: checksums.new(alg), checksums.encode, parts)
        elif all(p.checksum for p in parts):  # FULL_OBJECT: the parts' CRCs combined
            value = checksums.encode(checksums.combine(
                alg, [(base64.b64decode(p.checksum or ""), p.size) for p in parts]))
        else:
            value = None
        if alg in claimed and claimed[alg] != value:
            raise S3Error(400, "BadDigest", f"The {alg.upper()} you specified did not match the calculated checksum.")
        if value:
            out[CHECKSUM_PREFIX + alg] = value
        return out

    async def quota(total: int) -> None:  # the new object: its whole size and one more object
        await quotas.check_quota(ctx.storage.meta, _defaults(ctx), c.project_id, c.key, total)

    try:
        rec = await mp.complete_upload(ctx.storage, up, requested, extra_sysmeta=extra, precheck=quota,
                                       cond=write_condition(ctx.request.headers),
                                       null_write=versioning.versioned(c.meta))
    except mp.NoSuchUpload:
        return await _completed(ctx, up.upload_id)  # completed meanwhile by a retry of this request
    return _complete_result(ctx, rec, alg, ck)


# -- AbortMultipartUpload ------------------------------------------------------------


async def abort(ctx: S3Request) -> web.StreamResponse:
    await ctx.get_bucket(write=True)
    up = await _upload(ctx)
    if not await mp.abort_upload(ctx.storage, up.upload_id):
        raise no_such_upload(up.upload_id)
    return web.Response(status=204)


# -- ListParts ---------------------------------------------------------------------------


def _int_param(ctx: S3Request, name: str, default: int, cap: int) -> int:
    raw = ctx.query.get(name)
    if raw is None:
        return default
    try:
        n = int(raw)
    except ValueError:
        raise invalid_argument(f"Provided {name} not an integer or within integer range", name, raw) from None
    if n < 0:
        raise invalid_argument(f"Argument {name} must be an integer between 0 and 2147483647", name, raw)
    return min(n, cap)


async def _initiator(ctx: S3Request, up: MultipartUpload) -> list[str]:
    """Initiator and Owner of an upload: the project the object will belong to (the
    initiating project, or the bucket's under its ObjectOwnership), as S3 owners are
    shown everywhere (project id, project name)."""
    who = object_owner(up.sysmeta, up.project_id)
    return [await owner(ctx, who, "Initiator"), await owner(ctx, who)]


async def list_parts(ctx: S3Request) -> web.StreamResponse:
    await ctx.get_bucket(write=False)
    up = await _upload(ctx)
    max_parts = _int_param(ctx, "max-parts", MAX_LIST, MAX_LIST)
    marker = _int_param(ctx, "part-number-marker", 0, mp.MAX_PARTS)
    parts = await mp.list_parts(ctx.storage, up, marker, max_parts + 1) if max_parts else []
    truncated = len(parts) > max_parts
    parts = parts[:max_parts]
    kids = [element("Bucket", ctx.bucket), element("Key", ctx.key), element("UploadId", up.upload_id),
            *await _initiator(ctx, up), element("StorageClass", "STANDARD"),
            element("PartNumberMarker", marker),
            element("NextPartNumberMarker", parts[-1].part_number if parts else marker),
            element("MaxParts", max_parts), element("IsTruncated", truncated)]
    if up.checksum_alg:
        kids += [element("ChecksumAlgorithm", up.checksum_alg.upper()),
                 element("ChecksumType", up.checksum_type or "COMPOSITE")]
    for p in parts:
        pk = [element("PartNumber", p.part_number), element("LastModified", iso8601(p.last_modified)),
              element("ETag", f'"{p.etag}"'), element("Size", p.size)]
        if p.checksum and up.checksum_alg:
            pk.append(element(CHECKSUM_ELEMENTS[up.checksum_alg], p.checksum))
        kids.append(element("Part", pk))
    return xml_response(ctx, xml_doc("ListPartsResult", kids))


# -- ListMultipartUploads ------------------------------------------------------------


async def list_uploads(ctx: S3Request) -> web.StreamResponse:
    await ctx.get_bucket(write=False)
    q = ctx.query
    prefix, delim = q.get("prefix", ""), q.get("delimiter", "")
    key_marker, id_marker = q.get("key-marker", ""), q.get("upload-id-marker", "")
    max_uploads = _int_param(ctx, "max-uploads", MAX_LIST, MAX_LIST)
    et = q.get("encoding-type")
    if et is not None and et != "url":
        raise invalid_argument("Invalid Encoding Method specified in Request", "encoding-type", et)

    def enc(s: str) -> str:
        return quote(s, safe="/") if et == "url" else s

    uploads: list[MultipartUpload] = []
    prefixes: list[str] = []
    truncated = False
    next_key, next_id = "", ""
    cur_key, cur_id = key_marker, id_marker if key_marker else ""
    done = max_uploads == 0
    while not done:
        page = await ctx.storage.meta.list_uploads(ctx.ckey, prefix, cur_key, cur_id, MAX_LIST)
        for up in page:
            cur_key, cur_id = up.name, up.upload_id
            cp = None
            if delim:
                i = up.name.find(delim, len(prefix))
                if i >= 0:
                    cp = up.name[: i + len(delim)]
            if cp is not None and (prefixes and prefixes[-1] == cp or cp == key_marker):
                continue  # folded into a common prefix already listed (or before the marker)
            if len(uploads) + len(prefixes) >= max_uploads:
                truncated, done = True, True
                break
            if cp is not None:
                prefixes.append(cp)
                next_key, next_id = cp, ""
            else:
                uploads.append(up)
                next_key, next_id = up.name, up.upload_id
        if len(page) < MAX_LIST:
            done = True
    kids = [element("Bucket", ctx.bucket), element("KeyMarker", enc(key_marker)),
            element("UploadIdMarker", id_marker if key_marker else "")]
    if truncated:
        kids += [element("NextKeyMarker", enc(next_key)), element("NextUploadIdMarker", next_id)]
    if delim:
        kids.append(element("Delimiter", enc(delim)))
    kids += [element("Prefix", enc(prefix)), element("MaxUploads", max_uploads), element("IsTruncated", truncated)]
    if et:
        kids.append(element("EncodingType", et))
    for up in uploads:
        uk = [element("Key", enc(up.name)), element("UploadId", up.upload_id), *await _initiator(ctx, up),
              element("StorageClass", "STANDARD"), element("Initiated", iso8601(up.initiated))]
        if up.checksum_alg:
            uk += [element("ChecksumAlgorithm", up.checksum_alg.upper()),
                   element("ChecksumType", up.checksum_type or "COMPOSITE")]
        kids.append(element("Upload", uk))
    for p in prefixes:
        kids.append(element("CommonPrefixes", [element("Prefix", enc(p))]))
    return xml_response(ctx, xml_doc("ListMultipartUploadsResult", kids))
