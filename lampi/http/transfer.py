"""Sending an object's blob, as both front-ends answer a GET: opened before any header
is sent, then zero-copy from a local file or streamed from the store; and receiving a
request body chunk by chunk (``body_chunks``), as both read an upload."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from typing import IO

from aiohttp import web

from lampi import metrics
from lampi.core import errors, sse
from lampi.core.models import ObjectRecord, is_inline
from lampi.http.context import STORAGE
from lampi.http.sendfile import sendfile as zero_copy_sendfile

log = logging.getLogger("lampi.http")
INLINE_READ = 128 * 1024  # GET bodies up to this size are read on the loop (send_blob)


async def body_chunks(content: web.StreamReader) -> AsyncIterator[bytes]:
    """A request body's chunks as received, never joined: ``iter_any`` joins all the
    chunks buffered while the loop was busy (``b"".join``), one more copy of a large
    body's every byte, ~8% of the loop's time in a 1 GiB PUT here.

    Not ``iter_chunks``: it stops only on ``(b"", False)``, which aiohttp's shared empty
    body (``EMPTY_PAYLOAD``, every request without a body) returns once per process and
    never again, so the next body-less request would spin the event loop forever.
    ``readchunk`` also answers ``(b"", True)`` at a chunked-encoding boundary: skipped."""
    while True:
        data, _ = await content.readchunk()
        if data:
            yield data
        elif content.at_eof():
            return


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield  # an async generator yielding nothing


class PrimedRead:
    """A blob's bytes from a store that is not file-backed (RADOS), its first chunk
    already read: the read that would find the blob missing has happened."""

    def __init__(self, first: bytes, rest: AsyncIterator[bytes]) -> None:
        self.first = first
        self.rest = rest

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.first:
            yield self.first
        async for chunk in self.rest:
            yield chunk


async def open_blob(
    request: web.Request, rec: ObjectRecord, offset: int = 0, length: int | None = None
) -> IO[bytes] | PrimedRead | None:
    """The object's blob, opened *before* any header is sent, so a blob gone missing
    (lost disk, manual deletion; ``lampi fsck`` reports it) is a 503 rather than a 200
    cut short: a local file, or — for a store that is not file-backed — the read of
    bytes ``offset`` … ``offset + length`` with its first chunk in hand."""
    storage = request.app[STORAGE]
    if is_inline(rec.blob_id) and rec.manifest is None:  # in hand, or one read of the metadata store
        try:
            first = await storage.inline_range(rec.blob_id, rec.inline, offset, length)
        except FileNotFoundError:
            log.error("inline blob %s of object %s/%s is missing (run lampi fsck)", rec.blob_id, rec.container,
                      rec.name)
            metrics.note_error("missing_blob")
            raise errors.DataUnavailable() from None
        return PrimedRead(first, _nothing())
    blobs = storage.blobs
    path = blobs.local_path(rec.blob_id)
    if path is None:
        if rec.size == 0 or length == 0 or rec.manifest is not None or sse.is_encrypted(rec.sysmeta):
            return None
        # the length known (a stored object's blob holds its size): a small object's
        # read need not look the blob's size up (RadosBlobStore.read)
        it = blobs.read(rec.blob_id, offset, rec.size - offset if length is None else length)
        try:
            first = await anext(it, b"")
        except FileNotFoundError:
            log.error("blob %s of object %s/%s is missing (run lampi fsck)", rec.blob_id, rec.container, rec.name)
            metrics.note_error("missing_blob")
            raise errors.DataUnavailable() from None
        return PrimedRead(first, it)
    if rec.size == 0:
        return None
    if sse.is_encrypted(rec.sysmeta):  # decrypted as it is read (send_blob streams it)
        if not path.exists():
            log.error("blob %s of object %s/%s is missing (run lampi fsck)", rec.blob_id, rec.container, rec.name)
            metrics.note_error("missing_blob")
            raise errors.DataUnavailable()
        return None
    try:
        return open(path, "rb")
    except FileNotFoundError:
        log.error("blob %s of object %s/%s is missing (run lampi fsck)", rec.blob_id, rec.container, rec.name)
        metrics.note_error("missing_blob")
        raise errors.DataUnavailable() from None


class BlobResponse(web.StreamResponse):
    """An object's GET (or HEAD) response: its status line and headers go out with the
    body's first bytes, in one write, not in a write of their own at ``prepare()`` (a
    4 KiB GET was two ``write()`` calls and two TCP segments: the headers, the body).
    Nothing is held back: ``prepare()`` comes once the blob is open and its first bytes
    are at hand (``open_blob``), and ``write_eof()`` sends headers still waiting. (aiohttp
    >= 3.12 buffers them this way for ``web.Response``; older ones send them at once.)"""

    _send_headers_immediately = False


async def send_blob(
    request: web.Request, resp: web.StreamResponse, rec: ObjectRecord, offset: int, length: int,
    fh: IO[bytes] | PrimedRead | None = None,
) -> None:
    """Send ``length`` bytes of the object's blob from ``offset``; closes ``fh``.

    Zero-copy when the blob is a local file (``fh`` from ``open_blob``):
    ``loop.sendfile`` on asyncio's default loop, ``os.sendfile`` from a thread on
    uvloop (lampi.http.sendfile; uvloop has no sendfile and the chunked fallback
    reached only ~46% of loopback throughput), else streamed in chunks. Headers were
    already sent by ``prepare()``.
    """
    storage = request.app[STORAGE]
    transport = request.transport
    if isinstance(fh, PrimedRead):
        async for chunk in fh:
            await resp.write(chunk)
        return
    if fh is not None and 0 < length <= INLINE_READ:
        # Small objects: one pread on the loop and one write. The zero-copy path below
        # costs a thread hop, two dup()s, a 1 MiB buffer and a wait for the headers to
        # drain: for a 4 KiB GET, more than everything else the request does.
        try:
            data = os.pread(fh.fileno(), length, offset)
        finally:
            fh.close()
        if len(data) != length:  # the file is shorter than the record says
            raise ConnectionResetError("blob shorter than expected")
        await resp.write(data)
        return
    if fh is not None:
        try:
            if transport is not None and length > 0:
                await resp.write(b"")  # a BlobResponse's headers, before the file's bytes
                await resp.drain()
                await zero_copy_sendfile(transport, fh, offset, length)
                return
        except NotImplementedError:
            pass
        finally:
            fh.close()
    try:
        async for chunk in storage.read_object(rec, offset, length):
            await resp.write(chunk)
    except errors.DomainError as exc:  # headers are out: cut the reply (a damaged encrypted blob)
        log.error("object %s/%s cut: %s", rec.container, rec.name, exc)
        if transport is not None:
            transport.close()
