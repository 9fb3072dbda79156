"""Swift object operations: PUT (streamed), GET/HEAD (ranges, conditionals), POST,
DELETE, server-side COPY and PUT with X-Copy-From."""

from __future__ import annotations

import logging
import uuid
from urllib.parse import quote, unquote

from aiohttp import web

from lampi.core import errors, objectlock
from lampi.core.access import OBJECT_OWNER_KEY
from lampi.core.authz import OBJECT_ACL_KEY, account_name
from lampi.core.models import CKey, ObjectRecord
from lampi.core.multipart import UPLOAD_ID_KEY
from lampi.http import authz
from lampi.http.context import PROJECT, SETTINGS, STORAGE
from lampi.http.dates import http_date
from lampi.http.transfer import BlobResponse, open_blob, send_blob
from lampi.swift import large_objects, quotas, slo, symlink, versioning
from lampi.swift.errors import swift_error
from lampi.swift.http_util import (
    check_conditionals,
    check_if_none_match,
    header_text,
    parse_range,
    request_body,
    request_content_type,
    request_delete_at,
    request_sysmeta,
    request_user_meta,
    x_timestamp,
)

RECORD = "lampi.swift.objects.record"  # a record get_object serves instead of looking up the name (a version)
COPY_SOURCE = "lampi.swift.objects.copy_source"  # the record a COPY copies (a version: ?version-id)

log = logging.getLogger("lampi.swift")


def _object_headers(rec: ObjectRecord) -> dict[str, str]:
    h = {
        "ETag": rec.etag,
        "Last-Modified": http_date(rec.last_modified),
        "X-Timestamp": x_timestamp(rec.last_modified),
        "Accept-Ranges": "bytes",
    }
    for k, v in rec.meta.items():
        # ASCII names title-cased, as Swift's swob sends header names; other bytes kept as
        # sent, perhaps not UTF-8 (Swift allows that for objects)
        name = f"X-Object-Meta-{k}".title() if k.isascii() else f"X-Object-Meta-{header_text(k)}"
        h[name] = v if v.isascii() else header_text(v)
    for k, v in rec.sysmeta.items():
        if k.startswith("s3-") or k in symlink.HIDDEN_SYSMETA:
            continue  # S3's own (tags, checksums), a link's SLO ETag: internal, as Swift's x-object-sysmeta-*
        h[k.title()] = v
    if rec.delete_at is not None:
        h["X-Delete-At"] = str(rec.delete_at)
    return h


def framing_error(request: web.Request) -> web.Response | None:
    """Swift's checks of how an object PUT's body is framed (swob ``message_length``,
    constraints ``check_object_creation``; copies, symlinks and SLO manifests are
    answered by their middlewares before), before anything reads it: more than one
    transfer coding 501, one that is not ``chunked`` 400, neither a length nor chunked
    411. The body is left unread, so the connection is closed after the answer."""
    te = request.headers.get("Transfer-Encoding")
    resp = None
    if te:
        codings = te.split(",")
        if len(codings) > 1:
            resp = swift_error(501, "Unsupported Transfer-Coding header value specified in Transfer-Encoding header",
                               method="PUT", plain=True)
        elif codings[-1].lower() != "chunked":
            resp = swift_error(400, "Invalid Transfer-Encoding header value", method="PUT", plain=True)
    elif request.content_length is None:
        resp = swift_error(411, "Missing Content-Length header.", method="PUT", plain=True)
    if resp is not None:
        resp.force_close()
    return resp


async def put_object(request: web.Request, container: CKey, name: str) -> web.StreamResponse:
    storage = request.app[STORAGE]
    settings = request.app[SETTINGS]
    length = request.content_length
    if (refused := framing_error(request)) is not None:
        return refused
    if length is not None and length > settings.max_object_size:
        return swift_error(413, "Your request is too large.", plain=True)
    meta = request_user_meta(request)
    sysmeta = request_sysmeta(request)
    delete_at = request_delete_at(request)
    ctype = request_content_type(request, name)
    etag = request.headers.get("ETag")
    if (refused := await check_if_none_match(request, container, name)) is not None:
        return refused  # checked before the body is read
    project_id = request[PROJECT]
    allowance = await quotas.check_upload(request, project_id, container, length)  # 413 over quota
    await versioning.before_write(storage, project_id, container, name)  # archive the current version
    rec = await storage.put_object(
        container,
        name,
        quotas.limit(request_body(request), allowance),
        content_type=ctype,
        meta=meta,
        sysmeta=sysmeta,
        delete_at=delete_at,
        expected_size=length,
        expected_etag=etag,
        max_size=settings.max_object_size,
    )
    return web.Response(
        status=201,
        headers={"ETag": rec.etag, "Last-Modified": http_date(rec.last_modified),
                 "X-Timestamp": x_timestamp(rec.last_modified)},
        content_type="text/html",
        charset="UTF-8",
    )


async def get_object(request: web.Request, container: CKey, name: str) -> web.StreamResponse:
    storage = request.app[STORAGE]
    try:
        rec = request.get(RECORD) or await storage.head_object(container, name)
    except errors.ObjectNotFound:
        # swob: "If-Match: *" and no current entity → 412 (RFC 2616 14.24)
        im = request.headers.get("If-Match")
        if im is not None and "*" in (t.strip() for t in im.split(",")):
            return web.Response(status=412)
        raise
    headers = _object_headers(rec)
    headers.update(request.get(symlink.EXTRA_HEADERS, {}))
    if request.method == "GET":
        # data encrypted at rest (S3 SSE, lampi.core.sse) is decrypted with the server's
        # keys; one encrypted with an S3 customer's key cannot be read here (400)
        await storage.data_key(rec.sysmeta)
    if large_objects.is_slo(rec) or large_objects.is_mpu(rec) or (large_objects.is_dlo(rec) and request.query.get("multipart-manifest") != "get"):
        return await large_objects.get(request, rec, headers)  # SLO / DLO: the concatenation
    try:
        check_conditionals(request.headers, rec)
    except (errors.NotModified, errors.PreconditionFailed) as exc:
        # swob answers a failed condition with an empty body and the object's headers
        status = 304 if isinstance(exc, errors.NotModified) else 412
        resp = web.Response(status=status, headers=headers)
        if status == 412:
            resp.content_type = rec.content_type
        return resp
    head = request.method == "HEAD"
    try:
        ranges = parse_range(request.headers.get("Range"), rec.size)
        if rec.size == 0:
            ranges = None  # a suffix range of an empty object: served whole (200), as swob does
    except errors.RangeNotSatisfiable:
        # swob keeps the object's headers (ETag, Accept-Ranges, metadata, ...) on the 416
        resp = swift_error(416, method=request.method)
        resp.headers.update(headers)
        resp.headers["Content-Range"] = f"bytes */{rec.size}"
        return resp
    if not ranges:
        resp = BlobResponse(status=200, headers=headers)
        resp.content_type = rec.content_type
        resp.content_length = rec.size
        if head:
            await resp.prepare(request)
            return resp
        fh = await open_blob(request, rec)
        await resp.prepare(request)
        await send_blob(request, resp, rec, 0, rec.size, fh)
        await resp.write_eof()
        return resp
    if len(ranges) == 1:
        start, end = ranges[0]
        resp = BlobResponse(status=206, headers=headers)
        resp.content_type = rec.content_type
        resp.content_length = end - start
        resp.headers["Content-Range"] = f"bytes {start}-{end - 1}/{rec.size}"
        fh = None if head else await open_blob(request, rec, start, end - start)
        await resp.prepare(request)
        if not head:
            await send_blob(request, resp, rec, start, end - start, fh)
        await resp.write_eof()
        return resp
    boundary = uuid.uuid4().hex
    parts_meta = [
        (
            f"--{boundary}\r\nContent-Type: {rec.content_type}\r\n"
            f"Content-Range: bytes {s}-{e - 1}/{rec.size}\r\n\r\n"
        ).encode()
        for s, e in ranges
    ]
    closing = f"\r\n--{boundary}--".encode()
    total = sum(len(p) for p in parts_meta) + sum(e - s for s, e in ranges) + 2 * (len(ranges) - 1) + len(closing)
    resp = web.StreamResponse(status=206, headers=headers)
    resp.headers["Content-Type"] = f"multipart/byteranges;boundary={boundary}"
    resp.content_length = total
    await resp.prepare(request)
    if not head:
        for i, ((s, e), pm) in enumerate(zip(ranges, parts_meta)):
            if i:
                await resp.write(b"\r\n")
            await resp.write(pm)
            async for chunk in storage.read_object(rec, s, e - s):
                await resp.write(chunk)
        await resp.write(closing)
    await resp.write_eof()
    return resp


async def post_object(request: web.Request, container: CKey, name: str) -> web.StreamResponse:
    storage = request.app[STORAGE]
    rec = await storage.head_object(container, name)
    meta = request_user_meta(request)
    sysmeta = request_sysmeta(request)
    # S3 tags and checksums survive a POST, as object sysmeta does in Swift
    sysmeta.update({k: v for k, v in rec.sysmeta.items() if k.startswith("s3-")})
    sysmeta.update({k: v for k, v in rec.sysmeta.items() if k.startswith("x-symlink-")})  # a link stays one
    delete_at = request_delete_at(request)
    ctype = request.headers.get("Content-Type") or rec.content_type
    if "X-Symlink-Target" in request.headers:
        return swift_error(400, "A PUT request is required to set a symlink target", method="POST", plain=True)
    await storage.update_object_meta(rec, meta, sysmeta, ctype, delete_at)
    if symlink.is_link(rec.sysmeta):
        return symlink.post_redirect(request, rec)  # applied to the link; 307 to its target
    return web.Response(status=202, content_type="text/html", charset="UTF-8")


def _copy_source_path(source: str, source_account: str | None, project_id: str) -> tuple[list[str], str]:
    """([container, object], project) of a copy's source (``X-Copy-From``, quoted as
    sent, and ``X-Copy-From-Account``); 412 when it is not <container>/<object>."""
    sparts = unquote(source).lstrip("/").split("/", 1)
    if len(sparts) != 2 or not sparts[0] or not sparts[1]:
        raise errors.PreconditionFailed("X-Copy-From header must be of the form <container name>/<object name>")
    return sparts, source_account.removeprefix("AUTH_") if source_account else project_id


async def copy_source(request: web.Request, project_id: str, source: str, source_account: str | None) -> None:
    """The checks of a PUT with ``X-Copy-From`` that come before its destination's:
    the source's form (412), the caller's right to read it (401/403), its container and
    object (404)."""
    if request.content_length:
        return  # copy_object answers 400 (a copy has no body)
    sparts, src_project = _copy_source_path(source, source_account, project_id)
    await authz.check_subrequest(request, src_project, sparts[0], sparts[1])
    storage = request.app[STORAGE]
    await storage.head_object((await storage.container(src_project, sparts[0])).key, sparts[1])


async def copy_object(
    request: web.Request,
    project_id: str,
    container: str,
    name: str,
    source: str,
    source_account: str | None,
    source_project: str | None = None,
) -> web.StreamResponse:
    storage = request.app[STORAGE]
    settings = request.app[SETTINGS]
    if request.content_length:
        return swift_error(400, "Copy requests require a zero byte body", method=request.method, plain=True)
    sparts, src_project = _copy_source_path(source, source_account, source_project or project_id)
    if source_project is None:  # X-Copy-From: the source is read with the caller's authority
        await authz.check_subrequest(request, src_project, sparts[0], sparts[1])
    src_key = (await storage.container(src_project, sparts[0])).key
    src_rec = request.get(COPY_SOURCE) or await storage.head_object(src_key, sparts[1])
    if symlink.is_link(src_rec.sysmeta) and request.query.get("symlink") != "get":
        # Swift's copy GETs the source through the symlink middleware: a link is
        # followed and its target copied (the link itself with ?symlink=get)
        target = await symlink.follow(request, src_project, src_key, sparts[1], src_rec)
        if isinstance(target, web.StreamResponse):
            return target
        if target is not None:
            src_project, tc, tname = target[0], target[1], target[2]
            sparts = [tc.name, tname]
            src_rec = await storage.head_object(tc.key, tname)
    try:
        check_conditionals(request.headers, src_rec)
    except errors.NotModified:
        raise errors.PreconditionFailed() from None
    built = None
    if large_objects.is_slo(src_rec) and request.query.get("multipart-manifest") == "get":
        # the manifest itself, PUT again at the destination: its segments validated there
        found = await slo.manifest_for_copy(request, src_rec, project_id, container, name)
        if isinstance(found, web.StreamResponse):
            return found
        built = found
    # the bytes the copy writes: a large object's data (or one part of it), or with
    # ?multipart-manifest=get its manifest
    size = len(built.body) if built is not None else await large_objects.copy_size(request, src_rec, src_project)
    if size > settings.max_object_size:
        raise errors.EntityTooLarge()
    fresh = request.headers.get("X-Fresh-Metadata", "").lower() in ("true", "1", "yes", "on", "t", "y")
    if fresh:
        meta = request_user_meta(request)
        sysmeta = request_sysmeta(request)
    else:
        meta = dict(src_rec.meta)
        meta.update(request_user_meta(request))
        sysmeta = dict(src_rec.sysmeta)
        sysmeta.update(request_sysmeta(request))
    # an object's S3 ACL is not copied: Swift has no object ACLs, a new object is
    # private (as S3's CopyObject), so a copy of a public-read object is not public
    sysmeta.pop(OBJECT_ACL_KEY, None)
    if symlink.is_link(sysmeta) and "X-Symlink-Target-Account" in request.headers:
        # a link copied as itself (?symlink=get): the copy's PUT names its target account,
        # as Swift's symlink middleware sees the copy's headers
        acct = unquote(request.headers["X-Symlink-Target-Account"])
        if not acct or "/" in acct:
            raise errors.PreconditionFailed("Account name cannot contain slashes")
        sysmeta[symlink.TARGET_ACCOUNT] = quote(acct)
    # nor its object lock (the copy gets the destination's default retention) or the
    # S3 upload it came from (lampi/core/objectlock.py, lampi/core/multipart.py)
    for k in (*objectlock.KEYS, UPLOAD_ID_KEY):
        sysmeta.pop(k, None)
    sysmeta.pop(OBJECT_OWNER_KEY, None)  # a Swift copy belongs to the destination bucket's project
    ctype = request.headers.get("Content-Type") or src_rec.content_type
    # Swift's copy GETs the source with the request's Range: one range of a plain object
    # copies those bytes
    span = None
    if (request.headers.get("Range") and built is None and src_rec.manifest is None
            and not large_objects.is_dlo(src_rec)):
        ranges = parse_range(request.headers["Range"], src_rec.size)  # 416 when none overlaps
        if ranges is not None and len(ranges) == 1 and src_rec.size:
            span = ranges[0]
            size = span[1] - span[0]
    # 413 over quota, counting the bytes the copy writes, as Swift's quotas see the copy's PUT
    dkey = (await storage.container(project_id, container)).key
    await quotas.check_upload(request, project_id, dkey, size)
    await versioning.before_write(storage, project_id, dkey, name)  # archive the current version
    if span is not None:
        start, end = span
        rec = await storage.put_object(
            dkey, name, storage.read_object(src_rec, start, end - start), content_type=ctype, meta=meta,
            sysmeta=sysmeta, delete_at=request_delete_at(request), expected_size=end - start)
    else:
        rec = await large_objects.copy(  # a large object's data, or with ?multipart-manifest=get its manifest
            request, src_rec, src_project, dkey, name, content_type=ctype, meta=meta, sysmeta=sysmeta,
            delete_at=request_delete_at(request), built=built,
        )
    return web.Response(
        status=201,
        headers={
            "ETag": rec.etag,
            "Last-Modified": http_date(rec.last_modified),
            "X-Timestamp": x_timestamp(rec.last_modified),
            "X-Copied-From": quote(f"{sparts[0]}/{sparts[1]}"),
            "X-Copied-From-Last-Modified": http_date(src_rec.last_modified),
            "X-Copied-From-Account": quote(account_name(src_project)),
        },
        content_type="text/html",
        charset="UTF-8",
    )
