"""S3 multipart uploads, protocol-neutral: uploads, parts, completion as a manifest.

* Each part is streamed into a blob of its own; the blob is committed (fsynced) before
  the part's row commits (``MetaStore.put_part``), so a listed part is always durable.
  Re-uploading a part number replaces it and releases the old blob.
* Complete writes a small manifest body (the parts' blob ids, sizes and MD5s;
  ``manifest.mpu_body``) into a blob, commits it, then one metadata transaction
  (``MetaStore.complete_upload``) drops the upload, hands the used part blobs to the
  new object (an ``mpu`` manifest) and makes it visible. Nothing is copied: reads go
  through the part blobs (``manifest.read``). Parts not named in Complete, and the
  replaced object's blob(s), are deleted after the commit.
* Abort (``abort_upload``, also for lifecycle's AbortIncompleteMultipartUpload)
  drops the upload and deletes its part blobs.

fsck counts the part blobs of uploads in progress and those owned by completed
multipart objects as referenced (``MetaStore.blob_refs``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from lampi.core import errors, sse
from lampi.core import manifest as M
from lampi.core.blobwrite import recording, stream_to_blob
from lampi.core.models import CKey, ManifestInfo, MultipartUpload, ObjectRecord, UploadPart, WriteCondition
from lampi.core.storage import Storage

MIN_PART_SIZE = 5 * 1024 * 1024  # every part but the last (S3)
UPLOAD_ID_KEY = "s3-upload-id"  # sysmeta of a completed upload's object: the upload it was
MAX_PART_SIZE = 5 * 1024**3
MAX_PARTS = 10000


class NoSuchUpload(errors.NotFound):
    """The specified upload does not exist."""


class InvalidPart(errors.DomainError):
    """One or more of the specified parts could not be found, or its ETag did not match."""


class InvalidPartOrder(errors.DomainError):
    """The list of parts was not in ascending order."""


class EntityTooSmall(errors.DomainError):
    """Your proposed upload is smaller than the minimum allowed object size."""


def new_upload_id() -> str:
    """Upload ids sort by creation time (S3 lists uploads of a key oldest first)."""
    return f"{time.time_ns():016x}" + secrets.token_hex(16)


async def create_upload(
    storage: Storage,
    container: CKey,
    name: str,
    project_id: str,
    *,
    content_type: str,
    meta: dict[str, str],
    sysmeta: dict[str, str],
    checksum_alg: str | None = None,
    checksum_type: str | None = None,
    owner: str = "",
    encryption: sse.Encryption | None = None,
) -> MultipartUpload:
    """A new upload. Its parts will be encrypted (``lampi.core.sse``) as ``encryption``
    asks, else as the container's default encryption says: the upload's data key is made
    now and recorded in its system metadata, which the completed object takes over."""
    sysmeta = sse.without_keys(sysmeta)
    if encryption is None:
        c = await storage.meta.get_container(container)
        encryption = sse.default_encryption(c.meta) if c is not None else None
    if encryption is not None:
        _key, enc_meta = await storage.encryption_keys().anew_data_key(encryption)
        sysmeta.update(enc_meta)
    up = MultipartUpload(new_upload_id(), container, name, project_id, time.time(), content_type, meta, sysmeta,
                         checksum_alg, checksum_type, owner)
    await storage.meta.create_upload(up)
    return up


async def get_upload(storage: Storage, upload_id: str, container: CKey, name: str) -> MultipartUpload:
    up = await storage.meta.get_upload(upload_id)
    if up is None or up.container != container or up.name != name:
        raise NoSuchUpload()
    return up


async def upload_part(
    storage: Storage,
    upload: MultipartUpload,
    part_number: int,
    body: AsyncIterable[bytes],
    *,
    expected_size: int | None = None,
    expected_etag: str | None = None,
    max_size: int = MAX_PART_SIZE,
    checksum: Callable[[], str | None] | None = None,
    customer_key: bytes | None = None,
) -> UploadPart:
    """Stream ``body`` into a new blob, commit it, then record it as part ``part_number``.

    ``checksum`` is called after the body was consumed (and verified) for the part's
    flexible checksum value, kept for ListParts and the composite checksum. The part is
    encrypted as the upload is (an SSE-C upload's key is ``customer_key``, checked) and
    written to the bucket's storage policy."""
    key = await storage.data_key(upload.sysmeta, customer_key)
    sealer = sse.Sealer(key) if key is not None else None
    blobs = storage.blobs_for(await storage.by_key(upload.container))  # the bucket's storage policy
    blob_id, size, etag = await stream_to_blob(blobs, body, max_size=max_size, expected_size=expected_size,
                                               expected_etag=expected_etag, sealer=sealer)
    etag = sse.etag_for(upload.sysmeta, key, etag)
    with recording(storage.blobs, blob_id):  # fsck leaves the blob alone until committed
        part = UploadPart(upload.upload_id, part_number, blob_id, size, etag, time.time(),
                          checksum() if checksum is not None else None)
        try:
            old = await storage.meta.put_part(part)
        except errors.NotFound:  # aborted or completed meanwhile
            await storage.blobs.delete(blob_id)
            raise NoSuchUpload() from None
        except asyncio.CancelledError:
            # as in Storage.put_object: a cancelled transaction may still commit, so the
            # blob stays (an orphan at worst, which fsck removes)
            raise
        except BaseException:
            await storage.blobs.delete(blob_id)
            raise
    if old is not None:
        await _delete_blob(storage, old)
    return part


async def _delete_blob(storage: Storage, blob_id: str) -> None:
    try:
        await storage.blobs.delete(blob_id)
    except Exception:  # an orphan is harmless; fsck collects it
        pass


async def list_parts(storage: Storage, upload: MultipartUpload, marker: int, limit: int) -> list[UploadPart]:
    return await storage.meta.list_parts(upload.upload_id, marker, limit)


@dataclass(frozen=True, slots=True)
class RequestedPart:
    """A ``<Part>`` of CompleteMultipartUpload."""

    number: int
    etag: str
    checksums: dict[str, str]  # algorithm → value the client gave, if any


def composite_etag(parts: list[UploadPart]) -> str:
    """S3's multipart ETag: MD5 of the concatenated binary part MD5s, ``-<count>``."""
    h = hashlib.md5(usedforsecurity=False)
    for p in parts:
        h.update(bytes.fromhex(p.etag))
    return f"{h.hexdigest()}-{len(parts)}"


def composite_checksum(new: Callable[[], Any], encode: Callable[[bytes], str], parts: list[UploadPart]) -> str | None:
    """S3's COMPOSITE checksum: the algorithm (``new()`` hasher) over the concatenated
    binary part checksums, ``encode`` d (base64), ``-<count>``. None unless every part
    has one."""
    if any(not p.checksum for p in parts):
        return None
    h = new()
    for p in parts:
        h.update(base64.b64decode(p.checksum or ""))
    return f"{encode(h.digest())}-{len(parts)}"


async def complete_upload(
    storage: Storage,
    upload: MultipartUpload,
    requested: list[RequestedPart],
    *,
    min_part_size: int = MIN_PART_SIZE,
    extra_sysmeta: Callable[[list[UploadPart]], dict[str, str]] | None = None,
    precheck: Callable[[int], Awaitable[None]] | None = None,
    cond: WriteCondition | None = None,
    null_write: bool = False,
) -> ObjectRecord:
    """Make the upload the object ``upload.name``: an ``mpu`` manifest over the named parts.

    ``extra_sysmeta(parts)`` adds system metadata computed from the parts used (the S3
    adapter's composite checksum); ``precheck(total size)`` may refuse (quotas) before
    anything is written. The object is written as ``Storage.put_object`` writes (a new
    version in a versioned container, default retention, ``cond`` checked and
    ``null_write`` applied in the completing transaction); it records the upload id
    (``UPLOAD_ID_KEY``), so a retried Complete can be recognised (``completed_as``)."""
    if not requested:
        raise errors.InvalidArgument("You must specify at least one part")
    last = 0
    for r in requested:
        if r.number < last:
            raise InvalidPartOrder()
        last = r.number
    # a part number listed twice counts once, with its last entry, as RGW (Allas) reads the
    # list (a map by number): a client that re-sent a part lists both uploads' answers
    requested = list({r.number: r for r in requested}.values())
    have = {p.part_number: p for p in await storage.meta.list_parts(upload.upload_id, 0, MAX_PARTS)}
    used: list[UploadPart] = []
    for r in requested:
        p = have.get(r.number)
        if p is None or r.etag.strip().strip('"').lower() != p.etag:
            raise InvalidPart(part_number=r.number, etag=r.etag)
        for alg, value in r.checksums.items():
            if p.checksum is not None and value and upload.checksum_alg == alg and value != p.checksum:
                raise InvalidPart(part_number=r.number, etag=r.etag)
        used.append(p)
    for p in used[:-1]:
        if p.size < min_part_size:
            raise EntityTooSmall(part_number=p.part_number, size=p.size, min_size=min_part_size)
    total = sum(p.size for p in used)
    if precheck is not None:
        await precheck(total)
    etag = composite_etag(used)
    sysmeta = dict(upload.sysmeta)
    sysmeta[UPLOAD_ID_KEY] = upload.upload_id
    if extra_sysmeta is not None:
        sysmeta.update(extra_sysmeta(used))
    body = M.mpu_body([M.Part(p.blob_id, p.size, p.etag, p.checksum) for p in used])
    md5 = hashlib.md5(body, usedforsecurity=False).hexdigest()
    writer = storage.blobs_for(await storage.by_key(upload.container)).writer(size_hint=len(body))
    try:
        await writer.write(body)
        body_blob = await writer.commit()
    except BaseException:
        await writer.abort()
        raise
    with recording(storage.blobs, body_blob):  # fsck leaves the blob alone until committed
        ts = time.time()
        record = ObjectRecord(
            container=upload.container, name=upload.name, blob_id=body_blob, size=total, etag=etag,
            content_type=upload.content_type, last_modified=ts, meta=dict(upload.meta), sysmeta=sysmeta,
            data_timestamp=ts, manifest=ManifestInfo(M.MPU, body_size=len(body), body_etag=md5, parts=len(used)),
        )
        try:
            record, (old, unused) = await storage.commit_record(
                record, lambda rec: storage.meta.complete_upload(upload.upload_id, rec, [p.blob_id for p in used],
                                                                 cond, null_write))
        except errors.ObjectNotFound:  # If-Match on a missing object
            await storage.blobs.delete(body_blob)
            raise
        except errors.NotFound:
            await storage.blobs.delete(body_blob)
            raise NoSuchUpload() from None
        except errors.Conflict:
            await storage.blobs.delete(body_blob)
            raise InvalidPart() from None
        except asyncio.CancelledError:  # the transaction may still commit: keep the blob
            raise
        except BaseException:
            await storage.blobs.delete(body_blob)
            raise
    for blob_id in unused:
        await _delete_blob(storage, blob_id)
    for blob_id in old:
        if blob_id != body_blob:
            await storage.release_blob(blob_id)
    return record


async def completed_as(storage: Storage, upload_id: str, container: CKey, name: str) -> ObjectRecord | None:
    """The current object ``name`` if it is what completing ``upload_id`` made (a client
    retrying a Complete whose answer it lost gets that answer again), else None."""
    try:
        rec = await storage.head_object(container, name)
    except errors.ObjectNotFound:
        return None
    return rec if upload_id and rec.sysmeta.get(UPLOAD_ID_KEY) == upload_id else None


async def abort_upload(storage: Storage, upload_id: str) -> bool:
    """Drop an upload in progress and delete its part blobs; False if there was none.
    (Lifecycle's AbortIncompleteMultipartUpload calls this too.)"""
    blobs = await storage.meta.abort_upload(upload_id)
    if blobs is None:
        return False
    for blob_id in blobs:
        await _delete_blob(storage, blob_id)
    return True


async def part_range(storage: Storage, rec: ObjectRecord, part_number: int) -> tuple[int, int, int] | None:
    """(start, end-exclusive, parts count) of part ``part_number`` of a multipart
    object; None when it has no such part."""
    if rec.manifest is None or rec.manifest.kind != M.MPU:
        return (0, rec.size, 1) if part_number == 1 else None
    parts = await M.parts_of(storage, rec)
    if not 1 <= part_number <= len(parts):
        return None
    start = sum(p.size for p in parts[: part_number - 1])
    return start, start + parts[part_number - 1].size, len(parts)
