"""Streaming a request body into a new, committed blob, with its MD5 (the ETag).

Shared by object PUTs (``Storage.put_object``) and S3 part uploads
(``lampi.core.multipart.upload_part``).

Speed: MD5 is the most expensive thing a large upload does in Python's process
(~500 MB/s on one core here). Hashed on the event loop it took the loop's time from
receiving, so a large PUT ran below the disk's write rate. Here a body's chunks, as
received, go to the blob writer at once and, gathered in groups of a MiB, to a hashing
thread (hashlib drops the GIL), which works through a queue of up to ``HASH_QUEUE``
groups while the loop receives. No byte is copied on the way: the file store gathers
its own write buffers, the RADOS store hands a stripe's chunks to librados as they are.
Bodies under a MiB (small objects) are hashed inline: no thread hop.

A committed blob stays held by its writer (``BlobStore.claim_blob`` is False: fsck
leaves it alone) until the caller's metadata transaction has finished: callers wrap
that transaction in ``recording(blobs, blob_id)``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterable, Iterator

from lampi.core import errors, sse
from lampi.core.models import INLINE_PREFIX
from lampi.core.sse import Sealer
from lampi.store.blob.base import BlobStore

HASH_BUFFER = 1024 * 1024  # bytes of chunks hashed in one hand-over to the thread
HASH_QUEUE = 4  # hand-overs waiting for the hashing thread, at most


class PipelinedMD5:
    """``hashlib.md5`` of chunks handed over in order, hashed in a thread.

    Why a queue: with one hand-over in flight (the previous version), the loop waited
    for each MiB's hash before handing over the next, and the thread waited for the loop
    between two: in a 256 MiB PUT over RADOS both sat idle part of the time. Now the
    thread drains a queue of up to ``HASH_QUEUE`` groups (one thread at a time, so in
    order), and the loop waits only when the queue is full."""

    def __init__(self) -> None:
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._queue: collections.deque[list[bytes]] = collections.deque()
        self._drainer: asyncio.Future[None] | None = None  # the thread's run, if started

    def _drain(self) -> None:  # in a thread; the loop only appends meanwhile
        q, md5 = self._queue, self._md5
        while q:
            for chunk in q[0]:
                md5.update(chunk)
            q.popleft()

    async def update(self, chunks: list[bytes], size: int) -> None:
        """Hash ``chunks`` (``size`` bytes in all, not to be changed afterwards): inline
        when small and nothing is queued, else in the thread."""
        if self._drainer is None and size < HASH_BUFFER:
            for chunk in chunks:
                self._md5.update(chunk)
            return
        if len(self._queue) >= HASH_QUEUE:
            await self._wait()
        self._queue.append(chunks)
        if self._drainer is not None and self._drainer.done():
            fut, self._drainer = self._drainer, None
            fut.result()  # a failed hash fails the upload
        if self._drainer is None:
            self._start()

    def _start(self) -> None:
        self._drainer = asyncio.ensure_future(asyncio.to_thread(self._drain))

    async def _wait(self) -> None:
        """Until everything handed over is hashed (the thread may have found the queue
        empty just before the last hand-over: it is started again)."""
        while self._drainer is not None:
            fut, self._drainer = self._drainer, None
            await fut
            if self._queue:
                self._start()

    async def hexdigest(self) -> str:
        await self._wait()
        return self._md5.hexdigest()

    async def close(self) -> None:
        """Let a hash still running in its thread finish (after a failed upload)."""
        fut, self._drainer = self._drainer, None
        if fut is not None:
            await asyncio.wait([fut])


# Blobs whose metadata transaction was cancelled while it ran: it may still commit in its
# thread, so they stay held until the process exits (and with it any such thread).
_HELD_UNTIL_EXIT: list[tuple[BlobStore, str]] = []


@contextlib.contextmanager
def recording(blobs: BlobStore, blob_id: str) -> Iterator[None]:
    """Around the metadata transaction that makes a just-committed blob referenced: the
    blob stays held until the block is left, so fsck never takes it for an orphan in the
    window between the blob's rename into place and the metadata commit.

    Cancelled inside the block (shutdown), the transaction may still commit in its
    thread: the blob is then held until the process exits rather than released early."""
    try:
        yield
    except asyncio.CancelledError:
        _HELD_UNTIL_EXIT.append((blobs, blob_id))
        raise
    except BaseException:
        blobs.release(blob_id)
        raise
    blobs.release(blob_id)


async def stream_to_blob(
    blobs: BlobStore,
    body: AsyncIterable[bytes],
    *,
    max_size: int | None = None,
    expected_size: int | None = None,
    expected_etag: str | None = None,
    sealer: Sealer | None = None,
) -> tuple[str, int, str]:
    """Write ``body`` to a new blob and commit it (durable); ``(blob_id, size, md5 hex)``.
    The blob is held until ``blobs.release(blob_id)`` (use ``recording``).

    With ``sealer`` (``lampi.core.sse``) the blob holds the body encrypted; size, MD5 and
    every check are the plaintext's (the blob is ``sse.stored_size(size)`` bytes).

    ``EntityTooLarge`` past ``max_size``, ``IncompleteBody`` when the size is not
    ``expected_size``, ``ChecksumMismatch`` when the MD5 is not ``expected_etag``,
    ``InsufficientStorage`` when the disk is (about to be) full — with ``expected_size``
    before the body is read; on any failure the blob is aborted and nothing is left behind.
    """
    md5 = PipelinedMD5()
    hint = expected_size if sealer is None or expected_size is None else sse.stored_size(expected_size)
    writer = blobs.writer(size_hint=hint)
    size = 0
    buf = bytearray()  # with a sealer: what is sealed and written at once
    hashing: list[bytes] = []  # chunks not handed to the hash yet
    unhashed = 0
    try:
        async for chunk in body:
            size += len(chunk)
            if max_size is not None and size > max_size:
                raise errors.EntityTooLarge()
            if sealer is None:
                await writer.write(chunk)
                hashing.append(chunk)
                unhashed += len(chunk)
                if unhashed >= HASH_BUFFER:
                    await md5.update(hashing, unhashed)
                    hashing, unhashed = [], 0
                continue
            buf += chunk
            if len(buf) >= HASH_BUFFER:
                data, buf = buf, bytearray()
                await md5.update([data], len(data))
                await writer.write(await _seal(sealer, data))
        if hashing:
            await md5.update(hashing, unhashed)
        if buf:
            await md5.update([buf], len(buf))
            await writer.write(await _seal(sealer, buf))
        if sealer is not None:
            await writer.write(sealer.finish())
        if expected_size is not None and size != expected_size:
            raise errors.IncompleteBody(f"received {size} of {expected_size} bytes")
        etag = await md5.hexdigest()
        if expected_etag is not None and expected_etag.strip('"').lower() != etag:
            raise errors.ChecksumMismatch()
        blob_id = await writer.commit()
    except BaseException:
        await md5.close()
        await writer.abort()
        raise
    return blob_id, (writer.size if sealer is None else size), etag


async def read_inline(
    body: AsyncIterable[bytes],
    expected_size: int,
    *,
    max_size: int | None = None,
    expected_etag: str | None = None,
) -> tuple[str, bytes, str]:
    """A small body of a known size read whole for an inline blob (lampi.core.models.
    is_inline): ``(new inline blob id, bytes, md5 hex)``, with ``stream_to_blob``'s checks
    and errors. Nothing is written: the bytes go into the metadata transaction."""
    md5 = hashlib.md5(usedforsecurity=False)
    buf = bytearray()
    async for chunk in body:
        if len(buf) + len(chunk) > expected_size:
            if max_size is not None and len(buf) + len(chunk) > max_size:
                raise errors.EntityTooLarge()
            raise errors.IncompleteBody(f"received more than {expected_size} bytes")
        buf += chunk
    if len(buf) != expected_size:
        raise errors.IncompleteBody(f"received {len(buf)} of {expected_size} bytes")
    md5.update(buf)
    etag = md5.hexdigest()
    if expected_etag is not None and expected_etag.strip('"').lower() != etag:
        raise errors.ChecksumMismatch()
    return INLINE_PREFIX + uuid.uuid4().hex, bytes(buf), etag


async def _seal(sealer: Sealer, data: bytearray) -> bytes:
    """Encrypt a buffer: in a thread when large (as the MD5), inline when small."""
    if len(data) < HASH_BUFFER:
        return sealer.update(data)
    return await asyncio.to_thread(sealer.update, data)
