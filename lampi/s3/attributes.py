"""GetObjectAttributes: an object's ETag, checksum, parts, storage class and size
without its bytes (``GET /<bucket>/<key>?attributes``, header
``x-amz-object-attributes``; parts paged by ``x-amz-max-parts`` and
``x-amz-part-number-marker``). Access as GetObject's read, with the policy action
``s3:GetObjectAttributes`` (``s3:GetObjectVersionAttributes`` with ``versionId``). A
version is read as GetObject reads it (``x-amz-version-id`` in versioned buckets); an
SSE-C object needs its key, as HeadObject does."""

from __future__ import annotations

from aiohttp import web

from lampi.core import manifest as M
from lampi.core.numbers import uint
from lampi.http.dates import http_date
from lampi.s3 import sse as s3sse
from lampi.s3.errors import invalid_argument
from lampi.s3.large import large_view
from lampi.s3.multipart import CHECKSUM_ELEMENTS
from lampi.s3.object import CHECKSUM_PREFIX, addressed
from lampi.s3.request import S3Request
from lampi.s3.xml import element, xml_doc, xml_response

ATTRIBUTES = ("ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize")
MAX_PARTS = 1000


def _requested(ctx: S3Request) -> list[str]:
    raw = ",".join(ctx.request.headers.getall("x-amz-object-attributes", []))
    names = [a.strip() for a in raw.split(",") if a.strip()]
    if not names:
        raise invalid_argument("The x-amz-object-attributes header specifying the attributes to be retrieved is "
                               "either missing or empty", "x-amz-object-attributes", raw)
    for a in names:
        if a not in ATTRIBUTES:
            raise invalid_argument("Invalid attribute name specified.", "x-amz-object-attributes", a)
    return names


def _int_header(ctx: S3Request, name: str, default: int) -> int:
    raw = ctx.request.headers.get(name)
    if raw is None:
        return default
    n = uint(raw.strip())
    if n is None:
        raise invalid_argument(f"Provided {name} not an integer or within integer range", name, raw)
    return n


async def get_object_attributes(ctx: S3Request) -> web.StreamResponse:
    bucket = await ctx.get_bucket(write=False)
    wanted = _requested(ctx)
    max_parts = min(_int_header(ctx, "x-amz-max-parts", MAX_PARTS), MAX_PARTS)
    marker = _int_header(ctx, "x-amz-part-number-marker", 0)
    s3sse.refuse_on_read(ctx)
    ck = s3sse.customer_key(ctx)
    rec, shown_vid = await addressed(ctx, bucket)
    await ctx.storage.data_key(rec.sysmeta, ck.key if ck else None)  # an SSE-C object's key, as HeadObject
    view, _ = await large_view(ctx, rec, ck.key if ck else None)
    kids: list[str] = []
    algs = [k[len(CHECKSUM_PREFIX):] for k in rec.sysmeta if k.startswith(CHECKSUM_PREFIX)]
    if "ETag" in wanted:
        kids.append(element("ETag", view.etag))
    if "Checksum" in wanted and algs:
        checks = [element(CHECKSUM_ELEMENTS[a], rec.sysmeta[CHECKSUM_PREFIX + a]) for a in algs
                  if a in CHECKSUM_ELEMENTS]
        if checks:
            composite = any("-" in rec.sysmeta[CHECKSUM_PREFIX + a] for a in algs)
            kids.append(element("Checksum", checks + [element("ChecksumType",
                                                              "COMPOSITE" if composite else "FULL_OBJECT")]))
    if "ObjectParts" in wanted and rec.manifest is not None and rec.manifest.kind == M.MPU:
        parts = await M.parts_of(ctx.storage, rec)
        page = [(i + 1, p) for i, p in enumerate(parts) if i + 1 > marker][:max_parts]
        truncated = bool(page) and page[-1][0] < len(parts)
        items = []
        for n, p in page:
            pk = []
            if p.checksum and algs and algs[0] in CHECKSUM_ELEMENTS:
                pk.append(element(CHECKSUM_ELEMENTS[algs[0]], p.checksum))
            items.append(element("Part", pk + [element("PartNumber", n), element("Size", p.size)]))
        kids.append(element("ObjectParts", [
            element("IsTruncated", truncated), element("MaxParts", max_parts),
            element("NextPartNumberMarker", page[-1][0] if page else marker),
            element("PartNumberMarker", marker), *items, element("PartsCount", len(parts))]))
    if "StorageClass" in wanted:
        kids.append(element("StorageClass", "STANDARD"))
    if "ObjectSize" in wanted:
        kids.append(element("ObjectSize", view.size))
    resp = xml_response(ctx, xml_doc("GetObjectAttributesResponse", kids))
    resp.headers["Last-Modified"] = http_date(rec.last_modified)
    if shown_vid is not None:
        resp.headers["x-amz-version-id"] = shown_vid
    return resp
