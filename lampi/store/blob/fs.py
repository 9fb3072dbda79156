"""Local-filesystem BlobStore.

Layout under the root: ``blobs/<id[:2]>/<id[2:4]>/<id>`` for committed blobs and
``tmp/<id>`` while a write is in progress. Commit = fsync the file, rename it into
place, fsync the target directory. A crash mid-write leaves only ``tmp/`` files (or a
committed blob no metadata points at), which ``lampi fsck`` removes.

Writer lock: a writer holds an exclusive ``flock`` on its file from the moment the
file appears in ``tmp/`` until ``release(blob_id)`` — after the metadata transaction
that refers to the committed blob has finished — or ``abort()``. The lock follows the
file through the rename into ``blobs/``. ``fsck`` and the server's start-up clean-up
(``claim_blob``/``claim_partial``/``remove_partial``) take the lock without waiting and
leave a file alone while a writer holds it; a crashed process's locks die with it.
See docs/operations.md ("What fsck guarantees on a live store").

Chunks are gathered to ``WRITE_BUFFER`` bytes and handed to a thread, so the event
loop does one thread hop per MiB, not per network chunk; the thread writes them as they
are (``writev``), never copied into a buffer first (that copy, on the event loop's
thread, was ~5% of a large PUT's rate here). One such write is kept in flight while the
next MiB is received (and hashed by the caller), so network, hashing and disk overlap;
at most two MiB per upload are held.

A full disk (``lampi.store.space``): a writer is refused before its first byte, and each
buffer before it is written, when it would leave less than the ``min_free`` floor free
(``InsufficientStorage``); ENOSPC/EDQUOT from the OS become the same error. The writer
is then aborted as for any failure: nothing of it stays in ``tmp/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import os
import re
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

from lampi.store.blob.base import READ_CHUNK
from lampi.store.fsmodes import fsync_dir
from lampi.store.space import FULL_ERRNOS, MinFree, Reserve, free_bytes, insufficient

WRITE_BUFFER = 1024 * 1024
SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>: start writeback of the range's dirty pages, do not wait


def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """libc's sync_file_range (the os module has no binding), or None off Linux. A
    ctypes call releases the GIL, as an os call does."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range  # the process's own symbols: libc's
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


_SYNC_RANGE = _sync_file_range()
_BLOB_ID = re.compile(r"[0-9A-Za-z_-]{4,128}")  # a given id: one path component, never ".."


def _try_lock(fd: int) -> bool:
    """Take the exclusive writer lock on ``fd`` without waiting; False if it is held."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _same_file(fd: int, path: str | Path) -> bool:
    """``path`` names the file open as ``fd``."""
    st = os.fstat(fd)
    try:
        now = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return (now.st_ino, now.st_dev) == (st.st_ino, st.st_dev)


def _create_locked(directory: Path) -> tuple[str, Path, int]:
    """A new file in ``directory`` under a fresh id, open for writing and locked.

    The file exists for a moment before the lock is taken; a cleaner (fsck, start-up)
    that locks and removes it in that moment must not win: if the lock is taken already,
    or the name no longer leads to this file once it is locked, start over with a new id."""
    for _ in range(100):
        ident = uuid.uuid4().hex
        path = directory / ident
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            if _try_lock(fd):
                if _same_file(fd, path):
                    return ident, path, fd
            else:  # a cleaner holds it and is removing it
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    raise OSError("could not create a locked temp file")  # pragma: no cover


@contextlib.contextmanager
def _full_disk(root: Path) -> Iterator[None]:
    """ENOSPC/EDQUOT raised inside as ``InsufficientStorage``; other errors as they are."""
    try:
        yield
    except OSError as exc:
        if exc.errno in FULL_ERRNOS:
            raise insufficient(root, exc) from exc
        raise


IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 16


def _writev_all(fd: int, chunks: list[bytes | bytearray | memoryview]) -> None:
    """Write ``chunks`` in order, all of them (``writev`` may write fewer bytes than
    asked, and takes at most ``IOV_MAX`` buffers at once)."""
    views = [memoryview(c) for c in chunks if len(c)]
    i = 0
    while i < len(views):
        n = os.writev(fd, views[i : i + IOV_MAX])
        while n and i < len(views):
            if n >= len(views[i]):
                n -= len(views[i])
                i += 1
            else:
                views[i] = views[i][n:]
                n = 0


class FSBlobWriter:
    def __init__(self, store: FSBlobStore, size_hint: int | None = None, blob_id: str | None = None) -> None:
        self.store = store
        self.size = 0
        store.check_space(size_hint or 0)  # before the body is read ("100 Continue" not sent)
        # the fd carries the writer lock (module docstring): open until release/abort
        with _full_disk(store.root):
            self.blob_id, self._tmp, fd = _create_locked(store.tmp_dir)
        if blob_id is not None:  # an id given (lampi migrate): the temp file keeps its own name
            if not _BLOB_ID.fullmatch(blob_id):
                os.unlink(self._tmp)
                os.close(fd)
                raise ValueError(f"not a blob id of the file store: {blob_id!r}")
            self.blob_id = blob_id
        self._fd: int | None = fd
        self._written = 0  # bytes written to the file so far (the next write's offset)
        self._parts: list[bytes | bytearray | memoryview] = []  # chunks not written yet
        self._held = 0  # their bytes
        self._done = False
        self._inflight: asyncio.Future[None] | None = None  # the buffer being written by a thread
        # Held by the worker thread for every fd operation. A cancelled await (client
        # gone, shutdown grace period over) does not stop the thread, so abort() must
        # wait for it instead of closing the fd under it (the number could be reused by
        # another file by the time the thread writes).
        self._lock = threading.Lock()

    def _flush_sync(self, data: list[bytes | bytearray | memoryview], writeback: bool = False) -> None:
        """Write the chunks ``data`` at the end of the file, in order (``writev``: not
        joined first); ``writeback``: and start writing them to the disk now (module
        docstring: early writeback; never needed right before the commit's fsync)."""
        size = sum(len(c) for c in data)
        with self._lock:
            if self._fd is None:
                raise OSError("blob writer aborted")
            self.store.check_space(size)
            with _full_disk(self.store.root):
                _writev_all(self._fd, data)
            offset, self._written = self._written, self._written + size
            if writeback and _SYNC_RANGE is not None and self.store.durable:
                # a failure here only loses the head start: the fsync at commit reports
                # any error writing these pages
                _SYNC_RANGE(self._fd, offset, size, SYNC_FILE_RANGE_WRITE)

    async def write(self, chunk: bytes | bytearray) -> None:
        """Gather ``chunk`` (not to be changed by the caller afterwards) until
        ``WRITE_BUFFER`` bytes are held, then write them in a thread as they are: the
        chunks, not a buffer they were copied into (one copy of every byte of a large
        upload less on the event loop's thread)."""
        n = len(chunk)
        self.size += n
        self._parts.append(chunk)
        self._held += n
        if self._held < WRITE_BUFFER:
            return
        data, self._parts, self._held = self._parts, [], 0
        # Pipelined: wait for the previous buffer's write (errors surface here), then
        # start this one and return at once. Awaiting every write left the event loop
        # idle during each 1 MiB write (large PUT: ~67% of the disk's write+fsync
        # rate). Writes stay in order: one in flight at a time.
        await self._wait_inflight()
        self._inflight = asyncio.ensure_future(asyncio.to_thread(self._flush_sync, data, True))

    async def _wait_inflight(self) -> None:
        fut, self._inflight = self._inflight, None
        if fut is not None:
            await fut

    def _commit_sync(self, data: list[bytes | bytearray | memoryview]) -> None:
        with _full_disk(self.store.root):  # fsync, mkdir and rename can meet a full disk too
            self._commit_files(data)

    def _commit_files(self, data: list[bytes | bytearray | memoryview]) -> None:
        if data:
            self._flush_sync(data)
        with self._lock:
            if self._fd is None:
                raise OSError("blob writer aborted")
            if self.store.durable:
                os.fsync(self._fd)  # the fd stays open: its lock holds the blob until release()
        final = self.store.blob_path(self.blob_id)
        leaf = final.rpartition("/")[0]
        try:
            os.rename(self._tmp, final)
        except FileNotFoundError:  # the first blob of its directory
            self._make_dirs(leaf)
            os.rename(self._tmp, final)
        if self.store.durable:
            fsync_dir(leaf)

    @staticmethod
    def _make_dirs(leaf: str) -> None:
        """Create ``blobs/<aa>/<bb>`` and make each new entry durable: fsync the parent
        a directory was made in (one fsync for a new leaf, two when ``<aa>`` is new too,
        where ``mkdir(parents=True)`` + two fsyncs every time was the rule before). A
        directory another worker made just now is fsynced too: its maker may not have
        done so yet, and this blob must not be lost with it."""
        top = leaf.rpartition("/")[0]
        if not os.path.isdir(top):
            with contextlib.suppress(FileExistsError):
                os.mkdir(top)
            fsync_dir(top.rpartition("/")[0])
        with contextlib.suppress(FileExistsError):
            os.mkdir(leaf)
        fsync_dir(top)

    async def commit(self) -> str:
        data, self._parts, self._held = self._parts, [], 0
        try:
            await self._wait_inflight()  # every byte written before the fsync
            await asyncio.to_thread(self._commit_sync, data)
        except BaseException:
            await self.abort()
            raise
        self._done = True
        self.store._held[self.blob_id] = self
        return self.blob_id

    def release(self) -> None:
        """Close the file, dropping the writer lock (``FSBlobStore.release``)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _abort_sync(self) -> None:
        with self._lock:
            # removed while still locked, so no cleaner ever sees it unlocked in tmp/
            try:
                # after a cancelled commit the file may already be renamed into blobs/:
                # then it stays as an unreferenced blob, which fsck removes
                os.unlink(self._tmp)
            except FileNotFoundError:
                pass
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    async def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._parts, self._held = [], 0
        fut, self._inflight = self._inflight, None
        if fut is not None:  # let the thread finish with the fd first (its error no longer matters)
            await asyncio.wait([fut])
            if not fut.cancelled():
                fut.exception()  # retrieved: no "never retrieved" warning
        await asyncio.to_thread(self._abort_sync)


class FSBlobStore:
    def __init__(self, root: str | Path, min_free: MinFree = MinFree(), reserve: Reserve | None = None,
                 durable: bool = True) -> None:
        """``min_free``: the free space uploads must leave (none: no check);
        ``reserve``: the metadata store's reserve on the same filesystem, whose missing
        part uploads must leave free too; ``durable=False`` (``lampi serve
        --ephemeral``): no fsync at commit, for a throw-away store."""
        self.root = Path(root)
        self.durable = durable
        self.blob_dir = self.root / "blobs"
        self.tmp_dir = self.root / "tmp"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self._blob_prefix = str(self.blob_dir) + "/"
        self._held: dict[str, FSBlobWriter] = {}  # committed, lock kept until release()
        self.min_free = min_free
        self.reserve = reserve

    def check(self) -> None:
        """Readiness: the blob directory is there, and a file can be made and removed in
        ``tmp/`` (OSError otherwise: unmounted, read-only, gone)."""
        if not self.blob_dir.is_dir():
            raise FileNotFoundError(f"{self.blob_dir} is not a directory")
        probe = self.tmp_dir / f".ready-{os.getpid()}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        os.unlink(probe)

    def check_space(self, need: int) -> None:
        """``InsufficientStorage`` when writing ``need`` more bytes would leave less than
        the ``min_free`` floor free, plus whatever the metadata reserve has given back."""
        if not self.min_free:
            return
        free, total = free_bytes(self.root)
        floor = self.min_free.floor(total)
        left = free - need
        if left >= floor + (self.reserve.size if self.reserve is not None else 0):
            return  # the common case: no need to look at the reserve
        if self.reserve is not None:
            floor += self.reserve.size - self.reserve.current()
        if left < floor:
            raise insufficient(self.root)

    def path_for(self, blob_id: str) -> Path:
        return Path(self.blob_path(blob_id))

    def blob_path(self, blob_id: str) -> str:
        """``path_for`` as a string, built without pathlib (a few µs less per request)."""
        return f"{self._blob_prefix}{blob_id[:2]}/{blob_id[2:4]}/{blob_id}"

    def writer(self, size_hint: int | None = None, blob_id: str | None = None) -> FSBlobWriter:
        """A new blob; ``size_hint``, the bytes announced (e.g. Content-Length), is checked
        against the free space before anything is written. ``blob_id``: under that id
        (the commit's rename replaces a blob of that id)."""
        return FSBlobWriter(self, size_hint, blob_id)

    def release(self, blob_id: str) -> None:
        """Drop the writer lock of a blob this process committed: call once the metadata
        transaction referring to it has finished (committed or failed). Until then fsck
        leaves the blob alone, though no metadata refers to it yet."""
        w = self._held.pop(blob_id, None)
        if w is not None:
            w.release()

    def local_path(self, blob_id: str) -> Path | None:
        return self.path_for(blob_id)

    async def read(
        self, blob_id: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        fh = await asyncio.to_thread(open, self.path_for(blob_id), "rb", buffering=0)
        try:
            if offset:
                fh.seek(offset)
            remaining = length
            while remaining is None or remaining > 0:
                n = READ_CHUNK if remaining is None else min(READ_CHUNK, remaining)
                chunk = await asyncio.to_thread(fh.read, n)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            fh.close()

    async def delete(self, blob_id: str, size: int | None = None) -> None:
        try:
            await asyncio.to_thread(os.unlink, self.blob_path(blob_id))
        except FileNotFoundError:
            pass

    def iter_blobs(self) -> Iterator[tuple[str, int, float]]:
        for a in sorted(os.scandir(self.blob_dir), key=lambda e: e.name):
            if not a.is_dir():
                continue
            for b in os.scandir(a.path):
                if not b.is_dir():
                    continue
                for f in os.scandir(b.path):
                    try:
                        st = f.stat()
                    except FileNotFoundError:  # deleted since the directory was read
                        continue
                    yield f.name, st.st_size, st.st_mtime

    def iter_partials(self) -> Iterator[tuple[str, float]]:
        for f in os.scandir(self.tmp_dir):
            try:
                mtime = f.stat().st_mtime
            except FileNotFoundError:  # finished meanwhile
                continue
            yield f.name, mtime

    def blob_size(self, blob_id: str) -> int | None:
        """The committed blob's size now, None if there is none."""
        try:
            return os.stat(self.blob_path(blob_id)).st_size
        except FileNotFoundError:
            return None

    @staticmethod
    @contextlib.contextmanager
    def _claim(path: str | Path) -> Iterator[bool]:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:  # gone (or not a file lampi wrote)
            yield False
            return
        try:
            # locked, and the name still leads to this file (its writer may have removed
            # or renamed it, under its lock, between our open and our lock)
            yield _try_lock(fd) and _same_file(fd, path)
        finally:
            os.close(fd)

    def claim_blob(self, blob_id: str) -> contextlib.AbstractContextManager[bool]:
        """Hold a committed blob's writer lock for the ``with`` block: True when taken (no
        writer holds the blob: its metadata transaction, if any, has finished), False when
        a writer still holds it or it is gone."""
        return self._claim(self.blob_path(blob_id))

    def claim_partial(self, ident: str) -> contextlib.AbstractContextManager[bool]:
        """``claim_blob`` for a file in ``tmp/``: False while an upload is writing it."""
        return self._claim(self.tmp_dir / ident)

    def remove_partial(self, ident: str) -> bool:
        """Remove a leftover in ``tmp/`` unless an upload still holds it; True if removed."""
        with self.claim_partial(ident) as free:
            if free:
                os.unlink(self.tmp_dir / ident)  # still locked by us: no writer has it
            return free

    async def close(self) -> None:
        return None
