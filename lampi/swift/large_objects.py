"""Swift large objects: the ``slo`` and ``dlo`` middlewares' behaviour.

* SLO: ``PUT ?multipart-manifest=put`` (validated against the real segments, Swift's
  "Errors:" body, ``heartbeat=on``), GET/HEAD of the concatenation (ETag = quoted MD5
  of the segment ETags, ``X-Static-Large-Object: True``), ``?multipart-manifest=get``
  (``&format=raw``), ``DELETE ?multipart-manifest=delete`` (bulk-delete style body).
* DLO: ``X-Object-Manifest: <container>/<prefix>``; GET/HEAD concatenate the segments
  listed at read time.
* Copy of a large object: the concatenated data by default; the manifest itself with
  ``?multipart-manifest=get``.

Here: what reads large objects (GET/HEAD, copies) and the checks on plain writes; an
SLO manifest's PUT and DELETE are in ``lampi/swift/slo.py``.

Reference: swift/common/middleware/slo.py, dlo.py, bulk.py. The stored model and the
segment reader are protocol-neutral, in ``lampi/core/manifest.py``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from lampi.core import errors
from lampi.core import manifest as M
from lampi.core.models import CKey, ManifestInfo, ObjectRecord
from lampi.http.authz import segment_access, segment_read_access
from lampi.http.context import PROJECT, SETTINGS, STORAGE
from lampi.swift.errors import swift_error, to_response
from lampi.swift.http_util import check_conditionals, parse_range

log = logging.getLogger("lampi.swift.slo")

MAX_MANIFEST_SEGMENTS = 1000
MAX_MANIFEST_SIZE = 8 * 1024 * 1024
MIN_SEGMENT_SIZE = 1  # current Swift: every segment at least 1 byte, the last may be empty
YIELD_FREQUENCY = 10.0  # seconds between heartbeat whitespace


def info() -> dict[str, dict[str, object]]:
    """The ``slo`` and ``dlo`` entries of ``GET /info``."""
    return {
        "slo": {
            "max_manifest_segments": MAX_MANIFEST_SEGMENTS,
            "max_manifest_size": MAX_MANIFEST_SIZE,
            "yield_frequency": int(YIELD_FREQUENCY),
            "min_segment_size": MIN_SEGMENT_SIZE,
            "allow_async_delete": False,
        },
        "dlo": {"max_get_time": 86400},
    }


def is_dlo(rec: ObjectRecord) -> bool:
    return "x-object-manifest" in rec.sysmeta


def is_slo(rec: ObjectRecord) -> bool:
    return rec.manifest is not None and rec.manifest.kind == M.SLO


def is_mpu(rec: ObjectRecord) -> bool:
    """An S3 multipart object: served as a large object (real size, ``X-Static-Large-Object``,
    the S3 ETag ``<md5>-N``), deleted as one object with its parts."""
    return rec.manifest is not None and rec.manifest.kind == M.MPU


def check_put_headers(request: web.Request) -> web.Response | None:
    """PUT/POST checks of the two middlewares on a plain (non-manifest) write."""
    if "X-Static-Large-Object" in request.headers:
        return swift_error(
            400,
            "X-Static-Large-Object is a reserved header. To create a static large object "
            "add query param multipart-manifest=put.",
            method=request.method,
        )
    if request.method == "PUT" and "X-Object-Manifest" in request.headers:
        value = request.headers["X-Object-Manifest"]
        container, _, prefix = value.partition("/")
        if not container or not prefix or "?" in value or "&" in value or prefix[0] == "/":
            return swift_error(400, "X-Object-Manifest must be in the format container/prefix", method="PUT")
    return None


# -- GET / HEAD ---------------------------------------------------------------------------


def dlo_follower(request: web.Request, project_id: str) -> M.LinkFollower:
    """How a DLO segment that is a symlink is read: followed, with the caller's
    authority on each target container (Swift GETs each segment, following links)."""
    return M.link_follower(request.app[STORAGE], project_id, segment_read_access(request, project_id))


async def get(request: web.Request, rec: ObjectRecord, headers: dict[str, str]) -> web.StreamResponse:
    """GET/HEAD of an SLO or DLO manifest object (``headers``: the object's own)."""
    storage = request.app[STORAGE]
    project_id = request[PROJECT]
    manifest_get = request.query.get("multipart-manifest") == "get"
    if is_slo(rec) and manifest_get:
        return await _manifest_get(request, rec, headers)
    if is_slo(rec) or is_mpu(rec):
        # an S3 multipart object is served as Swift's s3api serves one: an SLO over its parts
        assert rec.manifest is not None
        headers = dict(headers, **{"ETag": f'"{rec.etag}"', "X-Static-Large-Object": "True"})
        access = None
        if is_slo(rec):
            headers["X-Manifest-Etag"] = rec.manifest.body_etag
            access = segment_read_access(request, project_id)

        def reader(off: int, n: int) -> AsyncIterator[bytes]:
            return M.read(storage, rec, project_id, off, n, access)

        part: tuple[int, int] | None = None
        if request.query.get("part-number") is not None:
            found = await _part(request, rec, headers)
            if isinstance(found, web.StreamResponse):
                return found
            part = found
        return await serve(request, rec, headers, rec.size, rec.etag, reader, part=part)
    # DLO
    cont, prefix = M.parse_dlo(rec.sysmeta["x-object-manifest"])
    # Swift lists the segment container with the caller's authority: a DLO needs read
    # with listing (.rlistings for anonymous callers) on it, else its 401/403
    await segment_access(request, project_id, listing=True)(cont)
    follow = dlo_follower(request, project_id)
    total, etag = await M.dlo_totals(storage, project_id, cont, prefix, follow)
    headers = dict(headers, ETag=f'"{etag}"')
    access = segment_read_access(request, project_id)

    def dlo_reader(off: int, n: int) -> AsyncIterator[bytes]:
        return M.dlo_read(storage, project_id, cont, prefix, off, n, access, follow)

    # dlo.py honours a single range only: several are answered with the whole object (200)
    return await serve(request, rec, headers, total, etag, dlo_reader, multirange=False)


def _has_range(header: str | None) -> bool:
    """Whether swob would see a Range in the header (satisfiable or not)."""
    try:
        return parse_range(header, 1 << 62) is not None
    except errors.RangeNotSatisfiable:
        return True


PART_NUMBER_INVALID = "Part number must be an integer greater than 0"
PART_NUMBER_WITH_RANGE = "Range requests are not supported with part number queries"
PART_NUMBER_UNSATISFIABLE = "The requested part number is not satisfiable"


async def _parts(request: web.Request, rec: ObjectRecord) -> tuple[int, list[int]]:
    """(the ``?part-number`` asked for, the lengths of the large object's parts), as
    request_helpers.get_valid_part_num checks it: InvalidArgument with Swift's message
    for a number that is no integer > 0, or beside a Range header."""
    try:
        number = int(request.query.get("part-number", ""))
        if number <= 0:
            raise ValueError
    except ValueError:
        raise errors.InvalidArgument(PART_NUMBER_INVALID) from None
    if _has_range(request.headers.get("Range")):
        raise errors.InvalidArgument(PART_NUMBER_WITH_RANGE)
    return number, await M.part_lengths(request.app[STORAGE], rec)


def _span(number: int, lengths: list[int]) -> tuple[int, int]:
    start = sum(lengths[: number - 1])
    return start, start + lengths[number - 1]


async def part_span(request: web.Request, rec: ObjectRecord) -> tuple[int, int] | None:
    """The byte span [start, end) of the large object's part ``?part-number=N`` names
    (None without the parameter, or for an object that is no SLO); InvalidArgument
    (400) or RangeNotSatisfiable (416)."""
    if request.query.get("part-number") is None or not (is_slo(rec) or is_mpu(rec)):
        return None
    number, lengths = await _parts(request, rec)
    if number > len(lengths):
        raise errors.RangeNotSatisfiable()
    return _span(number, lengths)


async def _part(request: web.Request, rec: ObjectRecord, headers: dict[str, str]) -> tuple[int, int] | web.StreamResponse:
    """``?part-number=N`` on an SLO (slo.py's ``_return_slo_response``): the byte span
    of its N-th top-level segment, or the answer: 400 for a number that is no integer
    > 0 or beside a Range header, 416 past the last part (the object's headers,
    ``Content-Range: bytes */<size>``). Adds ``X-Parts-Count`` to ``headers``."""
    head = request.method == "HEAD"
    try:
        number, lengths = await _parts(request, rec)
    except errors.InvalidArgument as exc:
        return web.Response(status=400, body=None if head else exc.message.encode(),
                            content_type="text/html", charset="UTF-8")
    headers["X-Parts-Count"] = str(len(lengths))
    if number > len(lengths):
        body = b"" if head else PART_NUMBER_UNSATISFIABLE.encode()
        resp = web.StreamResponse(status=416, headers=dict(headers, **{"Content-Range": f"bytes */{rec.size}"}))
        resp.content_type = rec.content_type
        resp.content_length = len(body)
        await resp.prepare(request)
        if body:
            await resp.write(body)
        await resp.write_eof()
        return resp
    return _span(number, lengths)


async def _manifest_get(request: web.Request, rec: ObjectRecord, headers: dict[str, str]) -> web.StreamResponse:
    """``?multipart-manifest=get``: the stored manifest (Swift's JSON, inline ``data``
    segments as stored), ``application/json``, ETag = its MD5; with ``&format=raw``, the
    manifest as a client would PUT it (path / etag / size_bytes / range, data segments
    unchanged) with the object's own Content-Type, so it can be PUT back. Served as
    the object server serves the manifest object: conditionals, ranges, HEAD."""
    storage = request.app[STORAGE]
    assert rec.manifest is not None
    headers = dict(headers, **{"X-Static-Large-Object": "True"})
    headers.pop("X-Manifest-Etag", None)
    if request.query.get("format") == "raw":
        body = raw_manifest(await M.load_body(storage, rec))
        etag = hashlib.md5(body, usedforsecurity=False).hexdigest()
        ctype = rec.content_type  # as the client sent it on PUT, so it can be PUT back

        def raw_reader(off: int, n: int) -> AsyncIterator[bytes]:
            return _bytes_reader(body[off:off + n])

        return await serve(request, rec, dict(headers, ETag=etag), len(body), etag, raw_reader, content_type=ctype)
    etag = rec.manifest.body_etag

    def stored_reader(off: int, n: int) -> AsyncIterator[bytes]:
        return storage.read_stored(rec, off, n)

    return await serve(request, rec, dict(headers, ETag=etag), rec.manifest.body_size, etag, stored_reader,
                       content_type="application/json; charset=utf-8")


def raw_manifest(body: bytes) -> bytes:
    """slo.convert_segment_listing: a stored SLO body in the form a client PUTs."""
    items = json.loads(body)
    for it in items:
        if "data" in it:
            continue
        it.pop("content_type", None)
        it.pop("last_modified", None)
        it.pop("sub_slo", None)
        it["path"] = it.pop("name", None)
        it["size_bytes"] = it.pop("bytes", None)
        it["etag"] = it.pop("hash", None)
    return json.dumps(items, sort_keys=True).encode("utf-8")


async def _bytes_reader(data: bytes) -> AsyncIterator[bytes]:
    if data:
        yield data


async def serve(
    request: web.Request,
    rec: ObjectRecord,
    headers: dict[str, str],
    size: int,
    etag: str,
    reader: Callable[[int, int], AsyncIterator[bytes]],
    *,
    part: tuple[int, int] | None = None,
    multirange: bool = True,
    content_type: str | None = None,
) -> web.StreamResponse:
    """Conditionals, ranges (single and multipart/byteranges) and streaming over a large
    object of ``size`` bytes whose entity tag is ``etag``. ``part``: the span of an
    SLO's ``?part-number`` (206 with its Content-Range, also for HEAD); ``multirange``
    False: several ranges are answered with the whole object (as dlo.py does)."""
    from dataclasses import replace

    ctype = content_type or rec.content_type
    view = replace(rec, etag=etag, size=size)
    try:
        check_conditionals(request.headers, view)
    except (errors.NotModified, errors.PreconditionFailed) as exc:
        status = 304 if isinstance(exc, errors.NotModified) else 412
        return web.Response(status=status, headers=headers)
    head = request.method == "HEAD"
    if part is not None:
        ranges: list[tuple[int, int]] | None = [part]
    else:
        try:
            ranges = parse_range(request.headers.get("Range"), size)
            if size == 0 or (ranges and len(ranges) > 1 and not multirange):
                ranges = None
        except errors.RangeNotSatisfiable:
            resp = swift_error(416, method=request.method)
            resp.headers["Content-Range"] = f"bytes */{size}"
            resp.headers.update({k: v for k, v in headers.items() if k in ("ETag", "Last-Modified", "X-Timestamp")})
            return resp
    if not ranges:
        spans = [(0, size)]
        resp = web.StreamResponse(status=200, headers=headers)
        resp.content_type = ctype
        resp.content_length = size
    elif len(ranges) == 1:
        spans = ranges
        s, e = ranges[0]
        resp = web.StreamResponse(status=206, headers=headers)
        resp.content_type = ctype
        resp.content_length = e - s
        resp.headers["Content-Range"] = f"bytes {s}-{e - 1}/{size}"
    else:
        spans = ranges
    if head:
        if ranges and len(ranges) > 1:
            resp = web.StreamResponse(status=200, headers=headers)
            resp.content_type = ctype
            resp.content_length = size
        await resp.prepare(request)
        return resp
    if ranges and len(ranges) > 1:
        boundary = uuid.uuid4().hex
        metas = [
            f"--{boundary}\r\nContent-Type: {ctype}\r\nContent-Range: bytes {s}-{e - 1}/{size}\r\n\r\n".encode()
            for s, e in ranges
        ]
        closing = f"\r\n--{boundary}--".encode()
        total = sum(map(len, metas)) + sum(e - s for s, e in ranges) + 2 * (len(ranges) - 1) + len(closing)
        resp = web.StreamResponse(status=206, headers=headers)
        resp.headers["Content-Type"] = f"multipart/byteranges;boundary={boundary}"
        resp.content_length = total
    # pull the first chunk before sending headers: a missing first segment is a 409
    first_iter = reader(spans[0][0], spans[0][1] - spans[0][0])
    try:
        first = await anext(first_iter, b"")
    except errors.SegmentError as exc:
        log.warning("large object %s/%s: %s", rec.container, rec.name, exc)
        return swift_error(409, method=request.method)
    except (errors.Unauthorized, errors.Forbidden) as exc:
        # a link segment in a manifest stored by an older lampi: 403, never its 0 bytes
        # (a segment container the caller may not read is a SegmentError: 409, as Swift)
        return to_response(exc, request.method)
    await resp.prepare(request)
    try:
        for i, (s, e) in enumerate(spans):
            if ranges and len(ranges) > 1:
                if i:
                    await resp.write(b"\r\n")
                await resp.write(metas[i])
            it = first_iter if i == 0 else reader(s, e - s)
            sent = 0
            if i == 0 and first:
                await resp.write(first)
                sent += len(first)
            async for chunk in it:
                sent += len(chunk)
                await resp.write(chunk)
            if sent != e - s:
                raise errors.SegmentError(f"segments changed while reading ({sent} of {e - s} bytes)")
        if ranges and len(ranges) > 1:
            await resp.write(closing)
    except errors.DomainError as exc:
        # Swift drops the connection mid-body when a later segment is missing, changed
        # or not readable by the caller (or, encrypted, cannot be decrypted)
        log.warning("large object %s/%s cut: %s", rec.container, rec.name, exc)
        if request.transport is not None:
            request.transport.close()
        return resp
    await resp.write_eof()
    return resp


# -- COPY -----------------------------------------------------------------------------------


async def copy_size(request: web.Request, src: ObjectRecord, src_project: str) -> int:
    """Bytes a copy of ``src`` writes: a large object's data (with ``?part-number=N``,
    that part's), its manifest body with ``?multipart-manifest=get`` (a DLO's manifest:
    0 bytes); what quotas count."""
    manifest_get = request.query.get("multipart-manifest") == "get"
    if is_slo(src) and manifest_get:
        return src.stored_size
    span = await part_span(request, src)
    if span is not None:
        return span[1] - span[0]
    if is_slo(src):
        return src.size
    if is_dlo(src) and not manifest_get:
        cont, prefix = M.parse_dlo(src.sysmeta["x-object-manifest"])
        await segment_access(request, src_project, listing=True)(cont)  # nothing learnt without it
        try:
            return (await M.dlo_totals(request.app[STORAGE], src_project, cont, prefix,
                                       dlo_follower(request, src_project)))[0]
        except errors.ContainerNotFound:
            return 0
    if is_dlo(src):
        return src.stored_size  # the manifest object itself
    return src.size  # a plain object; other manifests (S3 multipart) are copied as data


async def copy(
    request: web.Request,
    src: ObjectRecord,
    src_project: str,
    container: CKey,
    name: str,
    *,
    content_type: str,
    meta: dict[str, str],
    sysmeta: dict[str, str],
    delete_at: int | None,
    built: M.BuiltManifest | None = None,
) -> ObjectRecord:
    """Copy ``src`` to ``container/name``: large objects as their data (a plain object;
    ``?part-number=N``: that part), or, with ``?multipart-manifest=get``, the manifest
    itself (``built``: as validated again at the destination, slo.manifest_for_copy)."""
    storage = request.app[STORAGE]
    settings = request.app[SETTINGS]
    manifest_get = request.query.get("multipart-manifest") == "get"
    if built is not None:
        async def one() -> AsyncIterator[bytes]:
            yield built.body

        return await storage.put_object(
            container, name, one(), content_type=content_type, meta=meta, sysmeta=sysmeta, delete_at=delete_at,
            manifest=ManifestInfo(M.SLO, parts=built.parts), total_size=built.total, total_etag=built.etag,
        )
    span = await part_span(request, src)
    if span is not None:  # one part of an SLO (or S3 multipart object): its data
        access = segment_read_access(request, src_project) if is_slo(src) else None
        return await storage.put_object(
            container, name, M.read(storage, src, src_project, span[0], span[1] - span[0], access),
            content_type=content_type, meta=meta, sysmeta=sysmeta, delete_at=delete_at,
            expected_size=span[1] - span[0],
        )
    if is_slo(src):  # the data, its segments read with the caller's authority
        return await storage.put_object(
            container, name, M.read(storage, src, src_project, access=segment_read_access(request, src_project)),
            content_type=content_type, meta=meta, sysmeta=sysmeta, delete_at=delete_at, expected_size=src.size,
        )
    if is_dlo(src) and not manifest_get:
        cont, prefix = M.parse_dlo(src.sysmeta["x-object-manifest"])
        await segment_access(request, src_project, listing=True)(cont)
        follow = dlo_follower(request, src_project)
        total, _ = await M.dlo_totals(storage, src_project, cont, prefix, follow)
        if total > settings.max_object_size:
            raise errors.EntityTooLarge()
        sysmeta = {k: v for k, v in sysmeta.items() if k != "x-object-manifest"}
        return await storage.put_object(
            container, name, M.dlo_read(storage, src_project, cont, prefix, 0, total,
                                        segment_read_access(request, src_project), follow),
            content_type=content_type,
            meta=meta, sysmeta=sysmeta, delete_at=delete_at, expected_size=total, max_size=settings.max_object_size,
        )
    return await storage.copy_object(
        src, container, name, content_type=content_type, meta=meta, sysmeta=sysmeta, delete_at=delete_at,
    )
