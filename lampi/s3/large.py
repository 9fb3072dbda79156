"""GetObject/HeadObject of large objects (S3 multipart uploads, Swift SLOs and DLOs):
the record as S3 shows it, a reader of its bytes, ``partNumber`` ranges, streaming."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace

from aiohttp import web

from lampi.core import errors
from lampi.core import manifest as M
from lampi.core import multipart as mp
from lampi.core.models import ObjectRecord
from lampi.core.numbers import uint
from lampi.http.authz import segment_access
from lampi.s3.errors import S3Error, invalid_argument
from lampi.s3.request import S3Request

Reader = Callable[[int, int], AsyncIterator[bytes]]


def s3_etag(rec: ObjectRecord) -> str:
    """The ETag S3 shows: an S3 multipart object's own ``<md5>-N``; a Swift SLO's ETag
    with ``-<segments>`` appended (as Swift's s3api does), so clients do not take it
    for an MD5 of the bytes."""
    if rec.manifest is not None and rec.manifest.kind == M.SLO:
        return f"{rec.etag}-{rec.manifest.parts}"
    return rec.etag


async def large_view(
    ctx: S3Request, rec: ObjectRecord, customer_key: bytes | None = None
) -> tuple[ObjectRecord, Reader | None]:
    """For a large object (S3 multipart, Swift SLO or DLO): the record as S3 shows it
    (real size, ETag) and a reader of its bytes (an SSE-C multipart object's parts
    decrypted with ``customer_key``); (rec, None) for a plain object."""
    storage = ctx.storage
    if rec.manifest is not None:
        view = replace(rec, etag=s3_etag(rec))
        c = await storage.meta.get_container(rec.container)
        project_id = c.project_id if c is not None else ""
        # a Swift SLO's segments are read with the caller's authority, as Swift does: a
        # public manifest over a private segment container does not leak the segments
        access = segment_access(ctx.request, project_id) if rec.manifest.kind == M.SLO else None

        def reader(off: int, n: int) -> AsyncIterator[bytes]:
            return M.read(storage, rec, project_id, off, n, access, customer_key=customer_key)

        return view, reader
    if "x-object-manifest" in rec.sysmeta:  # Swift DLO: segments listed at read time
        c = await storage.meta.get_container(rec.container)
        project_id = c.project_id if c is not None else ""
        cont, prefix = M.parse_dlo(rec.sysmeta["x-object-manifest"])
        # Swift lists the segment container with the caller's authority (AccessDenied)
        await segment_access(ctx.request, project_id, listing=True)(cont)
        access = segment_access(ctx.request, project_id)
        follow = M.link_follower(storage, project_id, access)  # segments that are symlinks: their targets
        try:
            total, etag = await M.dlo_totals(storage, project_id, cont, prefix, follow)
        except errors.ContainerNotFound:
            total, etag = 0, rec.etag

        def dlo_reader(off: int, n: int) -> AsyncIterator[bytes]:
            return M.dlo_read(storage, project_id, cont, prefix, off, n, access, follow)

        return replace(rec, size=total, etag=f"{etag}-N" if total else rec.etag), dlo_reader
    return rec, None


async def part_number_range(ctx: S3Request, rec: ObjectRecord) -> tuple[int, int, int]:
    """GetObject/HeadObject ``partNumber=N``: (start, end-exclusive, parts count)."""
    raw = ctx.query.get("partNumber", "")
    number = uint(raw)
    if number is None or not 1 <= number <= mp.MAX_PARTS:
        raise invalid_argument("Part number must be an integer between 1 and 10000, inclusive", "partNumber", raw)
    if "Range" in ctx.request.headers:
        raise S3Error(400, "InvalidRequest", "Cannot specify both Range header and partNumber query parameter")
    found = await mp.part_range(ctx.storage, rec, number)
    if found is None:  # 400 InvalidPart, as Ceph RGW (Allas) answers (AWS: 416 InvalidPartNumber)
        raise S3Error(400, "InvalidPart", "The requested partnumber is not satisfiable", PartNumberRequested=raw,
                      ActualPartCount=str(rec.manifest.parts if rec.manifest is not None and rec.manifest.kind == M.MPU
                                          else 1))
    return found


async def send_large(request: web.Request, resp: web.StreamResponse, reader: Reader, start: int, length: int) -> None:
    """Prepare ``resp`` and stream ``length`` bytes from ``start``. A missing or changed
    segment before the first byte is a 409; after it the connection is cut (a short
    body the client notices), as Swift does."""
    it = reader(start, length)
    try:
        first = await anext(it, b"")
    except errors.SegmentError:
        raise S3Error(409, "InvalidObjectState", "A segment of this large object is missing or no longer matches "
                      "its manifest.") from None
    await resp.prepare(request)
    sent = len(first)
    try:
        if first:
            await resp.write(first)
        async for chunk in it:
            sent += len(chunk)
            await resp.write(chunk)
        if sent != length:
            raise errors.SegmentError(f"segments changed while reading ({sent} of {length} bytes)")
    except errors.DomainError:  # a segment changed, or (encrypted) failed its integrity check
        if request.transport is not None:
            request.transport.close()
