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

from lampi.core import errors, versions
from lampi.core import manifest as M
from lampi.core.access import OBJECT_OWNER_KEY
from lampi.core.models import MAY_DLO, S3_OWNED, Container, ListingEntry, ListParams
from lampi.http.authz import segment_access
from lampi.s3 import versioning
from lampi.s3.bucket import iso_second, owner
from lampi.s3.errors import S3Error, invalid_argument
from lampi.s3.request import S3Request
from lampi.s3.xml import element, xml_doc, xml_response

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
    rows = await ctx.storage.list_object_rows(ctx.ckey, params)
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

    sysmetas = await ctx.storage.meta.objects_sysmeta(ctx.ckey, maybe, time.time())
    out = []
    for r in rows:
        sysmeta = sysmetas.get(r[0]) if isinstance(r, tuple) and r[6] & MAY_DLO else None
        if sysmeta is not None and "x-object-manifest" in sysmeta:
            cont, prefix = M.parse_dlo(sysmeta["x-object-manifest"])
            try:
                await segment_access(ctx.request, project_id, listing=True)(cont)
                follow = M.link_follower(ctx.storage, project_id, segment_access(ctx.request, project_id))
                total, etag = await M.dlo_totals(ctx.storage, project_id, cont, prefix, follow)
            except errors.DomainError:
                total, etag = 0, r[2]
            if total:
                r = (r[0], total, f"{etag}-N", *r[3:])
        out.append(r)
    return out


def _etag(r: Row) -> str:
    """A Swift SLO lists with ``-<segments>`` after its ETag, as on GET (``large.s3_etag``)."""
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


async def _owners(ctx: S3Request, c: Container, rows: list[Row]) -> tuple[str, dict[str, str]]:
    """The ``<Owner>`` of the bucket's own objects, and of each listed object an S3
    owner other than the bucket's project wrote (flagged ``S3_OWNED`` by the store)."""
    import time

    default = await owner(ctx, c.project_id)
    names = [r[0] for r in rows if isinstance(r, tuple) and r[6] & S3_OWNED]
    others: dict[str, str] = {}
    if names:
        sysmetas = await ctx.storage.meta.objects_sysmeta(c.key, names, time.time())
        for name, sysmeta in sysmetas.items():
            if sysmeta.get(OBJECT_OWNER_KEY):
                others[name] = await owner(ctx, sysmeta[OBJECT_OWNER_KEY])
    return default, others


def _contents(ctx: S3Request, rows: list[Row], enc, own: str = "",  # noqa: ANN001
              owners: dict[str, str] | None = None) -> list[str]:
    # The same bytes as element("Contents", [element("Key", ...), ...]), written as one
    # f-string per key: the nested element()/escape() calls were ~40% of a 1,000-key
    # page's server time (py-spy), and iso8601 per key a quarter of what was left, so
    # the text of each second is looked up per row in a dict. LastModified is the second
    # HEAD's Last-Modified shows (rounded up, as Swift's), ``.000Z`` as AWS and Ceph RGW
    # list it: a client comparing the two sees one time. An ETag or a key can hold any
    # character, so both are still escaped; the size is an int, the owner (``own``, "":
    # none) the same for every key but the few ``owners`` names.
    owners = owners or {}
    objs = [r for r in rows if isinstance(r, tuple)]
    names = [r[0] for r in objs]
    keys = _esc_all(names if enc is _plain else [enc(n) for n in names])
    etags = _esc_all([r[2] if r[5] is None else _etag(r) for r in objs])
    seconds: dict[int, str] = {}
    contents = []
    append = contents.append
    for r, key, etag in zip(objs, keys, etags):
        whole = math.ceil(r[4])
        day = seconds.get(whole)
        if day is None:
            day = seconds[whole] = iso_second(whole) + ".000Z"
        append(f"<Contents><Key>{key}</Key><LastModified>{day}"
               f"</LastModified><ETag>\"{etag}\"</ETag><Size>{r[1]}</Size>{owners.get(r[0], own)}"
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
    kids += _contents(ctx, entries, enc, *await _owners(ctx, c, entries))
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
    kids += _contents(ctx, entries, enc, *(await _owners(ctx, c, entries) if fetch_owner else ("", {})))
    return xml_response(ctx, xml_doc("ListBucketResult", kids))


def _entry_etag(e: ListingEntry) -> str:
    """A version's ETag as S3 shows it (a Swift SLO's with ``-<segments>``)."""
    m = (e.extra or {}).get("manifest")
    if m and m.get("kind") == "slo":
        return f"{e.hash}-{m.get('parts', 0)}"
    return e.hash


async def _store_marker(ctx: S3Request, key_marker: str, raw: str | None) -> str | None:
    """``version-id-marker`` as the store's ``version_marker``: an S3 ``null`` is the
    unversioned current object ("null") or the version row kept as null (its id)."""
    if raw is None or raw == "":
        return None
    vid = versioning.parse_id(raw)
    if vid != "null":
        return vid
    c = await ctx.lookup()
    if c is None:
        return "null"  # the caller's get_bucket answers NoSuchBucket
    try:
        cur = await ctx.storage.head_object(c.key, key_marker)
        if cur.version_id is None:
            return "null"
    except errors.ObjectNotFound:
        pass
    return await ctx.storage.null_version(c.key, key_marker) or "null"


async def list_object_versions(ctx: S3Request) -> web.StreamResponse:
    """ListObjectVersions: the container's versions (lampi/s3/versioning.py), newest
    first per key, delete markers among them; an unversioned object is its one version
    ``null``. Paged with key-marker + version-id-marker (NextKeyMarker and
    NextVersionIdMarker name the last entry given); max-keys counts versions, delete
    markers and common prefixes."""
    q = ctx.query
    enc = _encoder(ctx)
    max_keys = _max_keys(ctx)
    key_marker = q.get("key-marker", "")
    vid_marker = q.get("version-id-marker")
    if vid_marker is not None and vid_marker != "" and not key_marker:
        raise invalid_argument("A version-id marker cannot be specified without a key marker.",
                               "version-id-marker", vid_marker)
    try:
        store_marker = await _store_marker(ctx, key_marker, vid_marker)
    except S3Error:
        raise invalid_argument("Invalid version id specified", "version-id-marker", vid_marker or "") from None
    c = await ctx.get_bucket(write=False)
    rows: list[ListingEntry] = []
    if max_keys:
        params = ListParams(prefix=q.get("prefix", ""), delimiter=q.get("delimiter", ""), marker=key_marker,
                            limit=max_keys + 1)
        rows = await ctx.storage.list_versions(ctx.ckey, params, store_marker)
    truncated = len(rows) > max_keys
    rows = rows[:max_keys]
    kids = _head(ctx, enc)
    kids.append(element("KeyMarker", enc(key_marker)))
    kids.append(element("VersionIdMarker", vid_marker or ""))
    own = await owner(ctx, c.project_id)
    # a version an S3 owner other than the bucket's project wrote names that owner
    # (lampi.core.access.OBJECT_OWNER_KEY), as ListObjects does
    owners = {o: await owner(ctx, o) for o in {(e.extra or {}).get("owner") for e in rows} - {None, c.project_id}}
    # Swift DLOs among the unversioned objects: their real size and -N ETag, as ListObjects
    dlo = {r[0]: r for r in await _dlo_sizes(ctx, c.project_id, [
        (e.name, e.bytes, e.hash, e.content_type, e.last_modified, None, MAY_DLO) for e in rows
        if not e.is_subdir and e.bytes == 0 and (e.extra or {}).get("version_id") == "null"
        and not (e.extra or {}).get("manifest")])}
    entries, prefixes, last_vid = [], [], ""
    for e in rows:
        if e.is_subdir:
            prefixes.append(element("CommonPrefixes", [element("Prefix", enc(e.name))]))
            last_vid = ""
            continue
        x = e.extra or {}
        vid = "null" if x.get("version_id") == "null" or x.get("null") else str(x.get("version_id"))
        last_vid = vid
        common = [element("Key", enc(e.name)), element("VersionId", vid), element("IsLatest", bool(x.get("is_latest"))),
                  element("LastModified", iso_second(math.ceil(e.last_modified)) + ".000Z")]  # HEAD's second
        who = owners.get(x.get("owner"), own)
        if e.content_type == versions.DELETE_MARKER:
            entries.append(element("DeleteMarker", [*common, who]))
        else:
            size, etag = e.bytes, _entry_etag(e)
            if x.get("version_id") == "null" and e.name in dlo:
                size, etag = dlo[e.name][1], dlo[e.name][2]
            entries.append(element("Version", [*common, element("ETag", f'"{etag}"'), element("Size", size),
                                               who, element("StorageClass", "STANDARD")]))
    if truncated and rows:
        kids.append(element("NextKeyMarker", enc(rows[-1].name)))
        kids.append(element("NextVersionIdMarker", last_vid))
    kids += _tail(ctx, enc, max_keys, truncated)
    kids += entries + prefixes
    return xml_response(ctx, xml_doc("ListVersionsResult", kids))
