"""Manifests: objects whose bytes are the concatenation of other stored bytes.

One model serves Swift's Static Large Objects and S3 multipart uploads
(DESIGN: "S3 multipart uploads and Swift SLOs are the same kind of manifest"):

* the manifest object is an ordinary ``ObjectRecord`` whose blob holds the manifest
  *body* (the segment list) and whose ``manifest`` field (``ManifestInfo``) says so;
  ``size``/``etag`` describe the whole large object, ``manifest.body_size`` the blob;
* a body parses into ``Segment`` s. An SLO segment names an object of the same account
  (``/container/object``, resolved and checked against its recorded ETag and size at
  read time, as Swift does) or holds its bytes inline (Swift's ``data`` segments,
  base64 in the body); an S3 part (``mpu``) names a blob directly, owned by the
  manifest (``MetaStore.complete_upload`` / ``release_manifest``).
* ``read`` streams a byte range of the whole, segment after segment, touching only
  the segments (and nested manifests) the range overlaps; memory is one parsed
  segment list per nesting level (bodies are capped).

Dynamic Large Objects (a header naming ``container/prefix``) are read here too
(``dlo_*``): their segments are the container listing at read time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from lampi.core import errors
from lampi.core.authz import account_name
from lampi.core.models import (
    SYMLINK_TARGET,
    SYMLINK_TARGET_ACCOUNT,
    SYMLINK_TARGET_ETAG,
    SYMLOOP_MAX,
    CKey,
    ListParams,
    ObjectRecord,
)

if TYPE_CHECKING:
    from lampi.core.storage import Storage

SLO = "slo"
MPU = "mpu"
MAX_DEPTH = 10  # Swift's max_slo_recursion_depth
MAX_BODY = 32 * 1024 * 1024  # cap when loading a stored manifest body (Swift caps the PUT at 8 MiB)
DLO_PAGE = 10000
T = TypeVar("T")

# An async check run before a segment container is read: raises to refuse.
SegmentAccess = Callable[[str], Awaitable[None]]
# Resolves a DLO segment that is a symlink to its target's record (raises to refuse).
LinkFollower = Callable[[ObjectRecord], Awaitable[ObjectRecord]]


@dataclass(frozen=True, slots=True)
class Segment:
    """One piece of a manifest: ``length`` bytes from ``start`` of a backing object."""

    container: str
    name: str
    etag: str  # ETag of the whole backing object when the manifest was made
    size: int  # size of the whole backing object
    start: int = 0
    length: int = 0
    nested: bool = False  # the backing object is itself a manifest (Swift's sub_slo)
    data: bytes | None = None  # an inline segment's bytes (no backing object)


@dataclass(frozen=True, slots=True)
class BuiltManifest:
    """An SLO manifest ready to store: its body and what the large object is."""

    body: bytes  # Swift's stored JSON
    total: int  # size of the large object
    etag: str  # its ETag (``slo_etag``)
    parts: int  # top-level segments


def inline_segment(raw: bytes) -> Segment:
    """A ``data`` segment: its bytes are in the manifest (no backing object to check)."""
    return Segment("", "", "", len(raw), 0, len(raw), False, raw)


def slo_segments(body: bytes) -> list[Segment]:
    """Parse a stored SLO body (Swift's JSON: name, bytes, hash, [range], [sub_slo];
    or ``data``: an inline segment, base64)."""
    try:
        items = json.loads(body)
        out = []
        for it in items:
            if "data" in it:
                out.append(inline_segment(base64.b64decode(it["data"], validate=True)))
                continue
            cont, _, obj = it["name"].lstrip("/").partition("/")
            size = int(it["bytes"])
            start, length = 0, size
            if it.get("range"):
                a, b = (int(x) for x in it["range"].split("-"))
                start, length = a, b - a + 1
            out.append(Segment(cont, obj, it["hash"], size, start, length, bool(it.get("sub_slo"))))
        return out
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise errors.SegmentError(f"unreadable manifest: {exc}") from None


def slo_etag(stored: list[dict]) -> str:
    """The SLO ETag: MD5 of the segments' ETags (``etag:range;`` for ranged ones; an
    inline ``data`` segment counts as the MD5 of its bytes)."""
    h = hashlib.md5(usedforsecurity=False)
    for it in stored:
        if "data" in it:
            r = hashlib.md5(base64.b64decode(it["data"]), usedforsecurity=False).hexdigest()
        else:
            r = f"{it['hash']}:{it['range']};" if it.get("range") else it["hash"]
        h.update(r.encode("ascii", "replace"))
    return h.hexdigest()


async def load_body(storage: Storage, rec: ObjectRecord) -> bytes:
    """The manifest body of ``rec`` (capped; a body is small by construction)."""
    if rec.stored_size > MAX_BODY:
        raise errors.SegmentError("manifest body too large")
    parts = [c async for c in storage.blobs.read(rec.blob_id, 0, rec.stored_size)]
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class Part:
    """One part of an S3 multipart object (``mpu``): a whole blob."""

    blob_id: str
    size: int
    etag: str  # MD5 hex of the part
    checksum: str | None = None


def mpu_body(parts: list[Part]) -> bytes:
    """The stored body of an ``mpu`` manifest: its parts in order."""
    items = [{"blob": p.blob_id, "bytes": p.size, "hash": p.etag, **({"checksum": p.checksum} if p.checksum else {})}
             for p in parts]
    return json.dumps(items, separators=(",", ":")).encode("ascii")


def mpu_parts(body: bytes) -> list[Part]:
    try:
        return [Part(str(it["blob"]), int(it["bytes"]), str(it["hash"]), it.get("checksum")) for it in json.loads(body)]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise errors.SegmentError(f"unreadable manifest: {exc}") from None


async def parts_of(storage: Storage, rec: ObjectRecord) -> list[Part]:
    if rec.manifest is None or rec.manifest.kind != MPU:
        raise errors.SegmentError("not a multipart object")
    return mpu_parts(await load_body(storage, rec))


def overlapping(items: Iterable[tuple[T, int]], first: int, end: int) -> Iterator[tuple[T, int, int]]:
    """Of ``(item, size)`` laid end to end, those overlapping bytes [first, end), each
    with the overlap's (start, stop) inside the item; stops at the first one past ``end``."""
    pos = 0
    for item, size in items:
        lo, hi = pos, pos + size
        pos = hi
        if hi <= first:
            continue
        if lo >= end:
            break
        yield item, max(first, lo) - lo, min(end, hi) - lo


def part_pieces(parts: list[Part], first: int, end: int) -> Iterator[tuple[Part, int, int]]:
    """(part, offset in it, length) of the parts covering bytes [first, end)."""
    for p, a, b in overlapping(((p, p.size) for p in parts), first, end):
        yield p, a, b - a


@dataclass(frozen=True, slots=True)
class Piece:
    """Bytes [offset, offset + length) of a data blob of ``size`` bytes, encrypted under
    ``key`` (``lampi.core.sse``) or stored in clear (None)."""

    blob_id: str
    size: int
    key: bytes | None
    offset: int
    length: int


async def segments_of(storage: Storage, rec: ObjectRecord) -> list[Segment]:
    if rec.manifest is None or rec.manifest.kind != SLO:
        raise errors.SegmentError("not a static large object")
    return slo_segments(await load_body(storage, rec))


class _Resolver:
    def __init__(self, storage: Storage, project_id: str, access: SegmentAccess | None) -> None:
        self.storage = storage
        self.project_id = project_id
        self.access = access
        self.keys: dict[str, CKey] = {}  # segment container name → key, once checked

    async def record(self, seg: Segment) -> ObjectRecord:
        """The current record of a segment's backing object; it must be the one the
        manifest recorded (same ETag and size), else the read is cut (Swift: 409)."""
        key = self.keys.get(seg.container)
        if key is None:
            c = await self.storage.lookup(self.project_id, seg.container)
            if c is None or c.project_id != self.project_id:
                raise errors.SegmentError(f"segment container {seg.container} not found")
            if self.access is not None:
                await self.access(seg.container)
            key = self.keys[seg.container] = c.key
        rec = await self.storage.meta.get_object(key, seg.name, time.time())
        if rec is None:
            raise errors.SegmentError(f"segment /{seg.container}/{seg.name} not found")
        if SYMLINK_TARGET in rec.sysmeta:
            # a symlink stored as a segment (manifests PUT before links were followed at
            # PUT): its own bytes are none of its target's, which may be of another
            # project. Refused, rather than read as 0 bytes.
            raise errors.Forbidden(f"segment /{seg.container}/{seg.name} is a symlink")
        if rec.etag != seg.etag or rec.size != seg.size:
            raise errors.SegmentError(f"segment /{seg.container}/{seg.name} no longer valid")
        return rec

    async def pieces(
        self, segments: list[Segment], first: int, end: int, depth: int = 1
    ) -> AsyncIterator[Piece | bytes]:
        """The blob pieces covering bytes [first, end); an inline segment's bytes as they
        are. Encrypted segments are read with the server's keys; one encrypted with a
        customer's key (S3 SSE-C) cannot be."""
        for seg, a, b in overlapping(((seg, seg.length) for seg in segments), first, end):
            if seg.data is not None:
                yield seg.data[a:b]
                continue
            lo, hi = a + seg.start, b + seg.start
            rec = await self.record(seg)
            if rec.manifest is not None and rec.manifest.kind == MPU:  # an S3 multipart object as a segment
                key = await self.storage.data_key(rec.sysmeta)
                for p, off, n in part_pieces(await parts_of(self.storage, rec), lo, hi):
                    yield Piece(p.blob_id, p.size, key, off, n)
            elif seg.nested or rec.manifest is not None:
                if depth >= MAX_DEPTH:
                    raise errors.SegmentError("max recursion depth exceeded")
                subs = await segments_of(self.storage, rec)
                async for sub in self.pieces(subs, lo, hi, depth + 1):
                    yield sub
            else:
                yield Piece(rec.blob_id, rec.size, await self.storage.data_key(rec.sysmeta), lo, hi - lo)


async def part_lengths(storage: Storage, rec: ObjectRecord) -> list[int]:
    """The lengths of a large object's top-level parts, in order (Swift's
    ``?part-number=N`` addresses them): an SLO's segments (inline ones included), an
    S3 multipart object's parts."""
    if rec.manifest is not None and rec.manifest.kind == MPU:
        return [p.size for p in await parts_of(storage, rec)]
    return [seg.length for seg in await segments_of(storage, rec)]


async def read(
    storage: Storage,
    rec: ObjectRecord,
    project_id: str,
    offset: int = 0,
    length: int | None = None,
    access: SegmentAccess | None = None,
    customer_key: bytes | None = None,
) -> AsyncIterator[bytes]:
    """Stream ``length`` bytes from ``offset`` of the large object ``rec`` (SLO or mpu).

    Raises SegmentError when a segment is missing or changed — before the first byte
    if it is the first segment, otherwise mid-stream (the caller then cuts the
    connection, as Swift does). An S3 multipart object encrypted with a customer's key
    needs ``customer_key`` (``lampi.core.sse``)."""
    end = rec.size if length is None else min(rec.size, offset + length)
    if end <= offset:
        return
    if rec.manifest is not None and rec.manifest.kind == MPU:
        key = await storage.data_key(rec.sysmeta, customer_key)
        for p, off, n in part_pieces(await parts_of(storage, rec), offset, end):
            try:
                async for chunk in storage.read_blob(p.blob_id, p.size, key, off, n):
                    yield chunk
            except FileNotFoundError:
                raise errors.SegmentError(f"part blob {p.blob_id} missing") from None
        return
    if customer_key is not None:
        raise errors.EncryptionNotApplicable()
    res = _Resolver(storage, project_id, access)
    async for piece in res.pieces(await segments_of(storage, rec), offset, end):
        if isinstance(piece, bytes):
            yield piece
            continue
        async for chunk in storage.read_blob(piece.blob_id, piece.size, piece.key, piece.offset, piece.length):
            yield chunk


# -- dynamic large objects -----------------------------------------------------------


def parse_dlo(value: str) -> tuple[str, str]:
    """``X-Object-Manifest: <container>/<prefix>`` (URL-quoted parts) → (container, prefix)."""
    from urllib.parse import unquote

    container, _, prefix = value.partition("/")
    return unquote(container), unquote(prefix)


def link_follower(storage: Storage, project_id: str, access: SegmentAccess | None) -> LinkFollower:
    """Follow a DLO segment that is a symlink, as Swift's segment GET does: at most
    ``SYMLOOP_MAX`` links, each target container checked with ``access`` (the caller's
    authority), a static link's ETag checked. A target in another account is refused
    (403), as segments of other accounts are; a dangling or changed link is a
    SegmentError (Swift: 409 before the first byte, a cut connection after)."""

    async def follow(rec: ObjectRecord) -> ObjectRecord:
        from urllib.parse import unquote

        hops = 0
        while SYMLINK_TARGET in rec.sysmeta:
            if hops >= SYMLOOP_MAX:
                raise errors.SegmentError(f"segment /{rec.container}/{rec.name}: too many levels of symbolic links")
            hops += 1
            account = unquote(rec.sysmeta.get(SYMLINK_TARGET_ACCOUNT, ""))
            if account and account != account_name(project_id):
                raise errors.Forbidden(f"segment /{rec.container}/{rec.name} links into another account")
            cont, _, obj = unquote(rec.sysmeta[SYMLINK_TARGET]).partition("/")
            c = await storage.lookup(project_id, cont)
            if c is None or c.project_id != project_id:
                raise errors.SegmentError(f"segment /{rec.container}/{rec.name}: link target container not found")
            if access is not None:
                await access(cont)
            target = await storage.meta.get_object(c.key, obj, time.time())
            if target is None:
                raise errors.SegmentError(f"segment /{rec.container}/{rec.name}: link target not found")
            want = rec.sysmeta.get(SYMLINK_TARGET_ETAG)
            if want and target.etag != want:
                raise errors.SegmentError(f"segment /{rec.container}/{rec.name}: link target changed")
            rec = target
        return rec

    return follow


async def dlo_listing(
    storage: Storage, project_id: str, container: str, prefix: str, follow: LinkFollower | None = None,
) -> AsyncIterator[ObjectRecord]:
    """The DLO's segments: objects under ``prefix`` in listing order, paged. A segment
    that is a symlink stands for its target (``follow``; without it, refused): Swift
    reads each segment with a GET, which follows links."""
    key = (await storage.container(project_id, container)).key
    marker = ""
    while True:
        rows = await storage.list_objects(key, ListParams(prefix=prefix, marker=marker, limit=DLO_PAGE))
        for r in rows:
            rec = await storage.meta.get_object(key, r.name, time.time())
            if rec is not None and SYMLINK_TARGET in rec.sysmeta:
                if follow is None:
                    raise errors.SegmentError(f"segment /{container}/{r.name} is a symlink")
                rec = await follow(rec)
            if rec is not None:
                yield rec
        if len(rows) < DLO_PAGE:
            return
        marker = rows[-1].name


async def dlo_totals(
    storage: Storage, project_id: str, container: str, prefix: str, follow: LinkFollower | None = None,
) -> tuple[int, str]:
    """(total size, ETag) of a DLO: sum of segment sizes; MD5 of their ETags."""
    total = 0
    h = hashlib.md5(usedforsecurity=False)
    async for rec in dlo_listing(storage, project_id, container, prefix, follow):
        total += rec.size
        h.update(rec.etag.strip('"').encode("ascii", "replace"))
    return total, h.hexdigest()


async def dlo_read(
    storage: Storage, project_id: str, container: str, prefix: str, offset: int, length: int,
    access: SegmentAccess | None = None, follow: LinkFollower | None = None,
) -> AsyncIterator[bytes]:
    """Stream ``length`` bytes from ``offset`` of the concatenated segments."""
    pos = 0
    end = offset + length
    async for rec in dlo_listing(storage, project_id, container, prefix, follow):
        lo, hi = pos, pos + rec.size
        pos = hi
        if hi <= offset or rec.size == 0:
            continue
        if lo >= end:
            return
        a = max(offset, lo) - lo
        b = min(end, hi) - lo
        if rec.manifest is not None:
            source = read(storage, rec, project_id, a, b - a, access)  # a nested SLO
        else:
            source = storage.read_object(rec, a, b - a)  # decrypted (never an SSE-C segment)
        async for chunk in source:
            yield chunk
