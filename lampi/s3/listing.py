"""ListObjects (v1) and ListObjectsV2 over the core's Swift-style listing.

The core folds keys into common prefixes (delimiter), honours prefix and an
exclusive marker, and counts a common prefix as one entry, as S3 does for max-keys.
We fetch one more entry than asked to know whether the result is truncated.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any
from urllib.parse import quote

from aiohttp import web

from lampi.core.models import MAY_DLO, Container, ListParams
from lampi.s3.bucket import iso_second, iso8601, owner, xml_response
from lampi.s3.errors import invalid_argument
from lampi.s3.router import S3Request
from lampi.s3.xml import element, xml_doc
from lampi.swift.listing import DIGITS3

MAX_KEYS = 1000


def _max_keys(ctx: S3Request) -> int:
    raw = ctx.query.get("max-keys")
    if raw is None:
        return MAX_KEYS
    try:
        n = int(raw)
    except ValueError:
        raise invalid_argument("Provided max-keys not an integer or within integer range", "max-keys", raw) from None
    if n < 0:
        raise invalid_argument("Argument maxKeys must be an integer between 0 and 2147483647", "max-keys", raw)
    return min(n, MAX_KEYS)


def _plain(s: str) -> str:
    return s


def _encoder(ctx: S3Request):  # noqa: ANN202
    et = ctx.query.get("encoding-type")
    if et is None:
        return _plain
    if et != "url":
        raise invalid_argument("Invalid Encoding Method specified in Request", "encoding-type", et)
    return lambda s: quote(s, safe="/")


# A page holds raw listing rows (MetaStore.list_objects(raw=True)): object rows are
# tuples ``(name, size, etag, content_type, last_modified, manifest JSON, flags)``,
# common prefixes ListingEntry(is_subdir=True). Speed: a ListingEntry per key, and a
# sysmeta query for every zero-byte key, made a 1,000-key page twice as slow.
Row = Any


async def _page(ctx: S3Request, marker: str, limit: int) -> tuple[list[Row], bool, Container]:
    """A page of rows, whether there are more, and the bucket (checked once per page)."""
    c = await ctx.get_bucket(write=False)
    if limit == 0:
        return [], False, c
    q = ctx.query
    params = ListParams(prefix=q.get("prefix", ""), delimiter=q.get("delimiter", ""), marker=marker,
                        limit=limit + 1)
    rows = await ctx.storage.list_object_rows(ctx.bucket, params)
    return await _dlo_sizes(ctx, c.project_id, rows[:limit]), len(rows) > limit, c


def _name(r: Row) -> str:
    return r[0] if isinstance(r, tuple) else r.name


async def _dlo_sizes(ctx: S3Request, project_id: str, rows: list[Row]) -> list[Row]:
    """Swift DLOs (0-byte manifest objects) list with their real size and the ``-N``
    ETag GetObject shows (Swift lists the manifest's 0 bytes, and so does Allas): a
    sync tool comparing sizes would otherwise see a mismatch. Only rows flagged
    ``MAY_DLO`` are looked at; the segment container is summed only if the caller may
    list it."""
    maybe = [r[0] for r in rows if isinstance(r, tuple) and r[6] & MAY_DLO]
    if not maybe:
        return rows
    import time

    from lampi.core import errors
    from lampi.core import manifest as M
    from lampi.swift.large_objects import segment_access

    sysmetas = await ctx.storage.meta.objects_sysmeta(ctx.bucket, maybe, time.time())
    out = []
    for r in rows:
        sysmeta = sysmetas.get(r[0]) if isinstance(r, tuple) and r[6] & MAY_DLO else None
        if sysmeta is not None and "x-object-manifest" in sysmeta:
            cont, prefix = M.parse_dlo(sysmeta["x-object-manifest"])
            try:
                await segment_access(ctx.request, project_id, listing=True)(cont)
                total, etag = await M.dlo_totals(ctx.storage, project_id, cont, prefix)
            except errors.DomainError:
                total, etag = 0, r[2]
            if total:
                r = (r[0], total, f"{etag}-N", *r[3:])
        out.append(r)
    return out


def _etag(r: Row) -> str:
    """A Swift SLO lists with ``-<segments>`` after its ETag, as on GET (``multipart.s3_etag``)."""
    if r[5]:
        m = json.loads(r[5])
        if m.get("kind") == "slo":
            return f"{r[2]}-{m.get('parts', 0)}"
    return r[2]


def _esc(s: str) -> str:
    """``xml.sax.saxutils.escape`` (``&``, ``<``, ``>``) without its function-call layers."""
    return s.replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;")


def _esc_all(texts: list[str]) -> list[str]:
    """``_esc`` of each text, as one escape of the texts joined by NUL (no name holds
    one): three string scans per page instead of three calls per key."""
    joined = "\x00".join(texts)
    if "&" not in joined and "<" not in joined and ">" not in joined:
        return texts
    return _esc(joined).split("\x00")


def _contents(ctx: S3Request, rows: list[Row], enc, with_owner: bool, project_id: str) -> list[str]:  # noqa: ANN001
    # The same bytes as element("Contents", [element("Key", ...), ...]), written as one
    # f-string per key: the nested element()/escape() calls were ~40% of a 1,000-key
    # page's server time (py-spy), and iso8601 per key a quarter of what was left, so
    # the whole-second text is looked up per row in a dict and the milliseconds taken
    # from a table (the same text as ``iso8601``). An ETag or a key can hold any
    # character, so both are still escaped; the size is an int, the owner the same for
    # every key.
    own = owner(ctx, project_id) if with_owner else ""
    objs = [r for r in rows if isinstance(r, tuple)]
    names = [r[0] for r in objs]
    keys = _esc_all(names if enc is _plain else [enc(n) for n in names])
    etags = _esc_all([r[2] if r[5] is None else _etag(r) for r in objs])
    seconds: dict[int, str] = {}
    digits = DIGITS3
    contents = []
    append = contents.append
    for r, key, etag in zip(objs, keys, etags):
        ts = r[4]
        whole = math.floor(ts)
        day = seconds.get(whole)
        if day is None:
            day = seconds[whole] = iso_second(whole) + "."
        append(f"<Contents><Key>{key}</Key><LastModified>{day}{digits[int(ts % 1 * 1000)]}Z"
               f"</LastModified><ETag>\"{etag}\"</ETag><Size>{r[1]}</Size>{own}"
               "<StorageClass>STANDARD</StorageClass></Contents>")
    # S3 lists all Contents before the CommonPrefixes
    if len(objs) < len(rows):
        append("".join(f"<CommonPrefixes><Prefix>{_esc(enc(r.name))}</Prefix></CommonPrefixes>"
                       for r in rows if not isinstance(r, tuple)))
    return contents


def _head(ctx: S3Request, enc) -> list[str]:  # noqa: ANN001
    """The first elements of every listing result: Name, Prefix."""
    return [element("Name", ctx.bucket), element("Prefix", enc(ctx.query.get("prefix", "")))]


def _tail(ctx: S3Request, enc, max_keys: int, truncated: bool) -> list[str]:  # noqa: ANN001
    """The elements every listing result has after its markers: MaxKeys, Delimiter,
    EncodingType, IsTruncated."""
    q = ctx.query
    kids = [element("MaxKeys", max_keys)]
    if q.get("delimiter"):
        kids.append(element("Delimiter", enc(q["delimiter"])))
    if "encoding-type" in q:
        kids.append(element("EncodingType", q["encoding-type"]))
    kids.append(element("IsTruncated", truncated))
    return kids


async def list_objects(ctx: S3Request) -> web.StreamResponse:
    q = ctx.query
    enc = _encoder(ctx)
    max_keys = _max_keys(ctx)
    marker = q.get("marker", "")
    entries, truncated, c = await _page(ctx, marker, max_keys)
    kids = _head(ctx, enc)
    kids.append(element("Marker", enc(marker)))
    if truncated and q.get("delimiter") and entries:
        kids.append(element("NextMarker", enc(_name(entries[-1]))))
    kids += _tail(ctx, enc, max_keys, truncated)
    kids += _contents(ctx, entries, enc, True, c.project_id)
    return xml_response(ctx, xml_doc("ListBucketResult", kids))


def _token(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode()


def _untoken(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise invalid_argument("The continuation token provided is incorrect", "continuation-token", token) from None


async def list_objects_v2(ctx: S3Request) -> web.StreamResponse:
    q = ctx.query
    enc = _encoder(ctx)
    max_keys = _max_keys(ctx)
    token = q.get("continuation-token")
    start_after = q.get("start-after", "")
    # an empty token starts at the beginning and is echoed, as RGW (Allas) does
    marker = _untoken(token) if token else start_after
    if token and start_after > marker:
        marker = start_after
    entries, truncated, c = await _page(ctx, marker, max_keys)
    kids = _head(ctx, enc)
    if token is not None:
        kids.append(element("ContinuationToken", token))
    if truncated and entries:
        kids.append(element("NextContinuationToken", _token(_name(entries[-1]))))
    if "start-after" in q:
        kids.append(element("StartAfter", enc(start_after)))
    kids.append(element("KeyCount", len(entries)))
    kids += _tail(ctx, enc, max_keys, truncated)
    fetch_owner = q.get("fetch-owner", "").lower() == "true"
    kids += _contents(ctx, entries, enc, fetch_owner, c.project_id)
    return xml_response(ctx, xml_doc("ListBucketResult", kids))


async def list_object_versions(ctx: S3Request) -> web.StreamResponse:
    """ListObjectVersions of an unversioned bucket: every object is its single version,
    ``null``, and the latest. ``version-id-marker`` can only be ``null`` (or empty)."""
    q = ctx.query
    enc = _encoder(ctx)
    max_keys = _max_keys(ctx)
    key_marker = q.get("key-marker", "")
    vid_marker = q.get("version-id-marker")
    if vid_marker is not None:
        if not key_marker:
            raise invalid_argument("A version-id marker cannot be specified without a key marker.",
                                   "version-id-marker", vid_marker)
        if vid_marker not in ("", "null"):
            raise invalid_argument("Invalid version id specified", "version-id-marker", vid_marker)
    entries, truncated, c = await _page(ctx, key_marker, max_keys)
    kids = _head(ctx, enc)
    kids.append(element("KeyMarker", enc(key_marker)))
    kids.append(element("VersionIdMarker", vid_marker or ""))
    if truncated and entries:
        kids.append(element("NextKeyMarker", enc(_name(entries[-1]))))
        if isinstance(entries[-1], tuple):
            kids.append(element("NextVersionIdMarker", "null"))
    kids += _tail(ctx, enc, max_keys, truncated)
    versions, prefixes = [], []
    for r in entries:
        if not isinstance(r, tuple):
            prefixes.append(element("CommonPrefixes", [element("Prefix", enc(r.name))]))
            continue
        versions.append(element("Version", [
            element("Key", enc(r[0])), element("VersionId", "null"), element("IsLatest", True),
            element("LastModified", iso8601(r[4])), element("ETag", f'"{_etag(r)}"'),
            element("Size", r[1]), owner(ctx, c.project_id), element("StorageClass", "STANDARD"),
        ]))
    kids += versions + prefixes
    return xml_response(ctx, xml_doc("ListVersionsResult", kids))
