"""Ceph RADOS BlobStore: blobs striped over RADOS objects of at most ``STRIPE`` bytes.

Naming (in the store's pool and RADOS namespace): a blob ``<id>`` (32 hex digits) is the
head object ``<id>``, holding the first stripe, and ``<id>.<i>`` (i = 1, 2, … in hex) for
the others. The head carries, once the blob is committed, the xattr ``lampi.blob`` =
``<size>:<stripe size>``; a head without it is a partial (a write in progress, or the
leftover of an interrupted one). Enumerating heads (names without a dot) is what
``iter_blobs``/``iter_partials`` — fsck and the start-up clean-up — do.

Writing: the writer takes an exclusive RADOS lock (``lampi.writer``, with a lease of
``LEASE`` seconds, renewed while it writes) on the head, which creates it: from then on
other gateways' fsck sees a partial it must leave alone. Bytes are cut into stripes and
each full stripe sent at once, up to ``IN_FLIGHT`` of them in flight (memory: the stripe
being filled plus ``IN_FLIGHT`` stripes, whatever the blob's size). A stripe goes as one
write operation of the chunks it was given (``pack``): librados copies each into its
buffer, so the stripe is never joined in Python first. ``commit`` waits for every
stripe write, then writes the last stripe and — in one atomic operation on the head,
after all other stripes are on the OSDs — the ``lampi.blob`` xattr: durable before
acknowledged. The lock stays until ``release`` (after the metadata transaction referring
to the blob), as the file store's flock does — a one-stripe blob's (lock, bytes and
mark in one operation) until its lease runs out, an unlock saved per small PUT; a
crashed gateway's locks lapse when their lease runs out.

Reading touches only the stripes a range needs, one RADOS read per stripe (at most
``STRIPE`` bytes), ``READ_AHEAD`` of them requested ahead; a range within the first
stripe that comes back whole is one read (the head's mark is not looked up). Deleting removes the other
stripes first and the head last, so an interrupted delete leaves a committed blob that
fsck finds unreferenced and removes again. Completions of librados' asynchronous calls
come back on librados' threads and are handed to the event loop with
``call_soon_threadsafe``; the few synchronous calls (head lookups, locks) run in threads.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import concurrent.futures
import contextlib
import errno
import os
import struct
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from lampi.config import parse_blob_url as parse_url
from lampi.core import errors
from lampi.store.blob import radosbind
from lampi.store.blob.base import READ_CHUNK, BlobStoreUnavailable
from lampi.store.space import FULL_ERRNOS, insufficient

STRIPE = 4 * 1024 * 1024  # as RGW's rgw_obj_stripe_size
IN_FLIGHT = 4  # stripe writes in flight per writer
READ_AHEAD = 4  # stripe reads in flight per reader (16 MiB: RGW's rgw_get_obj_window_size)
LEASE = 300  # seconds a writer's lock outlives a crashed gateway
LOCK = "lampi.writer"
XATTR = "lampi.blob"
LOCK_FLAG_RENEW = 1  # LIBRADOS_LOCK_FLAG_RENEW


def _str(text: str) -> bytes:
    b = text.encode()
    return struct.pack("<I", len(b)) + b


def _versioned(body: bytes) -> bytes:
    """Ceph's ENCODE_START(1, 1) … ENCODE_FINISH framing."""
    return struct.pack("<BBI", 1, 1, len(body)) + body


def lock_op(cookie: str, lease: int, renew: bool = False, desc: str = "lampi upload") -> bytes:
    """cls_lock's ``lock`` input (cls_lock_lock_op): an exclusive lock named ``LOCK``.
    Encoded here so that taking the lock can be part of a write operation (one OSD
    round trip for a small blob's lock, bytes and commit together)."""
    return _versioned(_str(LOCK) + struct.pack("<B", 1) + _str(cookie) + _str("") + _str(desc)
                      + struct.pack("<IIB", lease, 0, LOCK_FLAG_RENEW if renew else 0))


def unlock_op(cookie: str) -> bytes:
    """cls_lock's ``unlock`` input (cls_lock_unlock_op)."""
    return _versioned(_str(LOCK) + _str(cookie))


PACK = 64 * 1024  # chunks smaller than this are joined (``pack``)


def pack(parts: list[bytes | bytearray | memoryview]) -> list[bytes]:
    """A stripe's chunks as the ``bytes`` a write operation takes (librados' Python
    binding accepts nothing else), runs of small ones joined into pieces of at least
    ``PACK`` bytes: each piece is a write in the operation, which the OSD applies one
    by one, and a body of many tiny chunks (a chunked upload) would make thousands.

    Why not one joined stripe: joining 4 MiB in Python and librados copying it again
    were two copies of every byte on the event loop's thread; librados' copy of each
    piece is the only one left. With the hashing queue (``lampi.core.blobwrite``) a
    256 MiB PUT over RADOS went from 242 to 296 MB/s here (docs/benchmarks.md, session
    12; joining each stripe instead: 281)."""
    out: list[bytes] = []
    small: list[bytes | bytearray | memoryview] = []
    held = 0
    for p in parts:
        if len(p) >= PACK:
            if small:
                out.append(b"".join(small))
                small, held = [], 0
            out.append(p if type(p) is bytes else bytes(p))
            continue
        small.append(p)
        held += len(p)
        if held >= PACK:
            out.append(b"".join(small))
            small, held = [], 0
    if small:
        out.append(b"".join(small))
    return out


def stripe_name(blob_id: str, i: int) -> str:
    return blob_id if i == 0 else f"{blob_id}.{i:x}"


# -- connections: one per (conf, client) and process ----------------------------------

_clusters: dict[tuple[str, str, int], Any] = {}
_clusters_lock = threading.Lock()


CONNECT_TIMEOUT = 30  # seconds to reach the monitors
OP_TIMEOUT = 30  # seconds an operation may wait for its OSD (unless ceph.conf sets rados_osd_op_timeout)
UNAVAILABLE = frozenset({errno.ETIMEDOUT, errno.ESHUTDOWN, errno.ENOTCONN, errno.EAGAIN})


_pid = os.getpid()  # this process's id, kept current across forks: _io() is on every read


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def _cluster(conf: str, client: str) -> Any:
    key = (conf, client, _pid)  # a forked worker connects anew
    with _clusters_lock:
        c = _clusters.get(key)
        if c is None:
            try:
                rados = radosbind.load()
            except (radosbind.RadosUnavailable, ImportError) as exc:
                raise BlobStoreUnavailable(str(exc)) from None
            try:
                c = rados.Rados(conffile=conf or "", rados_id=client)
                for opt in ("rados_osd_op_timeout", "rados_mon_op_timeout"):
                    if float(c.conf_get(opt) or 0) == 0:  # librados' default: wait for ever
                        c.conf_set(opt, str(OP_TIMEOUT))
                c.connect(timeout=CONNECT_TIMEOUT)
            except rados.Error as exc:
                raise BlobStoreUnavailable(f"cannot connect to Ceph as client.{client} (conf {conf or 'default'}): "
                                           f"{exc}") from None
            _clusters[key] = c
        return c


@atexit.register
def disconnect() -> None:
    """Shut this process's connections down (before a fork: a child makes its own)."""
    with _clusters_lock:
        for (_c, _i, pid), cluster in list(_clusters.items()):
            if pid == _pid:
                with contextlib.suppress(Exception):
                    cluster.shutdown()
        _clusters.clear()


class RadosBlobWriter:
    def __init__(self, store: RadosBlobStore, blob_id: str | None = None) -> None:
        self.store = store
        if blob_id is not None and (len(blob_id) != 32 or "." in blob_id):
            raise ValueError(f"not a blob id of the RADOS store (32 characters, no dot): {blob_id!r}")
        self.blob_id = blob_id or uuid.uuid4().hex
        # a given id (lampi migrate): whatever the pool holds under it (a committed blob, or
        # the leftover of an interrupted copy, locked by a writer that is gone) goes first
        self._clear = blob_id is not None
        self.size = 0
        self.peak_in_flight = 0  # most stripe writes in flight at once (measured, for tests)
        self._cookie = uuid.uuid4().hex
        # the bytes of the stripe being gathered: the chunks as given (or views of them),
        # joined once into the stripe sent (``write``)
        self._parts: list[bytes | bytearray | memoryview] = []
        self._have = 0
        self._next = 0  # index of the next stripe to send
        self._head: asyncio.Future[Any] | None = None  # the first stripe's write (it takes the lock)
        self._inflight: set[asyncio.Future[Any]] = set()
        self._locked_at: float | None = None  # monotonic time of the last lock (re)newal
        self._done = False
        store._writing[self.blob_id] = time.time()

    async def _renew(self) -> None:
        if self._locked_at is not None and time.monotonic() - self._locked_at > self.store.lease / 3:
            now = time.monotonic()
            io = self.store._io()
            data = lock_op(self._cookie, self.store.lease, renew=True)
            await self.store._aio(lambda cb: io.aio_execute(self.blob_id, "lock", "lock", data, oncomplete=cb))
            self._locked_at = now

    def _reap(self) -> None:
        for fut in [f for f in self._inflight if f.done()]:
            self._inflight.discard(fut)
            fut.result()  # a failed stripe write fails the upload

    async def _send(self, data: list[bytes]) -> None:
        await self._renew()
        while len(self._inflight) >= self.store.in_flight:
            await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
            self._reap()
        i = self._next
        self._next += 1
        if i == 0 and self._clear:
            await self._cleared()
        if i == 0:  # the head: lock and first stripe in one operation
            fut = self.store._write_op(self.blob_id, lock=self._cookie, data=data)
            self._locked_at = time.monotonic()
            self._head = fut
        else:
            if i == 1 and self._head is not None:
                # no other stripe before the head exists (and is locked): a crash never
                # leaves stripes that the head does not lead to
                await asyncio.shield(self._head)
            fut = self.store._write_op(stripe_name(self.blob_id, i), data=data)
        self._inflight.add(fut)
        self.peak_in_flight = max(self.peak_in_flight, len(self._inflight))

    async def write(self, chunk: bytes | bytearray) -> None:
        """Gather ``chunk`` into stripes; each full stripe is sent (``IN_FLIGHT`` at once).

        The chunks are kept as given until their stripe is full, then sent as they are
        (``pack``; the caller does not change a chunk once given: ``stream_to_blob``
        hands over the request's chunks as received). Gathering them in a bytearray,
        then slicing and converting the stripe out of it, was three copies of every byte:
        in a 256 MiB PUT over RADOS, ~60% of the event loop's time was this method's own."""
        if self._done:
            raise OSError("blob writer finished")
        n = len(chunk)
        self.size += n
        stripe = self.store.stripe_size
        pos = 0
        while self._have + n - pos >= stripe:
            take = stripe - self._have
            self._parts.append(chunk if pos == 0 and take == n else memoryview(chunk)[pos : pos + take])
            parts, self._parts, self._have = self._parts, [], 0
            pos += take
            await self._send(pack(parts))
        if pos < n:
            self._parts.append(chunk if pos == 0 else memoryview(chunk)[pos:])
            self._have += n - pos

    async def _drain(self) -> None:
        while self._inflight:
            await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
            self._reap()

    async def commit(self) -> str:
        try:
            tail = pack(self._parts)
            self._parts, self._have = [], 0
            if self._next > 0 and tail:  # a last, partial stripe of a multi-stripe blob
                await self._send(tail)
            await self._drain()  # every stripe on the OSDs before the blob is marked committed
            mark = f"{self.size}:{self.store.stripe_size}".encode()
            if self._next == 0:  # one stripe: lock, bytes and mark in one operation
                if self._clear:
                    await self._cleared()
                self._locked_at = time.monotonic()
                await self.store._write_op(self.blob_id, lock=self._cookie, data=tail, mark=mark)
            else:
                await self.store._write_op(self.blob_id, mark=mark)
        except BaseException:
            await self.abort()
            raise
        self._done = True
        self.store._writing.pop(self.blob_id, None)
        # a blob of one stripe was locked, written and marked in one operation: its lock is
        # left to lapse (``release``); a longer one's is dropped when released
        self.store._held[self.blob_id] = "" if self._next == 0 else self._cookie
        return self.blob_id

    async def _cleared(self) -> None:
        """Remove what the pool holds under this writer's (given) id: a RADOS lock is
        advisory, so a dead writer's lock goes with its head."""
        self._clear = False
        store = self.store
        io = store._io()
        rados = radosbind.load()
        try:
            await asyncio.to_thread(io.stat, self.blob_id)
        except rados.ObjectNotFound:
            return
        head = await asyncio.to_thread(store._head, self.blob_id)
        await store._remove_all(self.blob_id, None if head is None else max(1, -(-head[0] // head[1])))

    async def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._parts, self._have = [], 0
        if self._inflight:  # let them finish before removing what they wrote
            await asyncio.wait(self._inflight)
            for f in self._inflight:
                if not f.cancelled():
                    f.exception()
            self._inflight.clear()
        try:
            if self._locked_at is not None:
                await self.store._remove_all(self.blob_id, max(self._next, 1))
        finally:
            self.store._writing.pop(self.blob_id, None)


class RadosBlobStore:
    def __init__(self, pool: str, conf: str = "", client: str = "admin", namespace: str = "",
                 stripe_size: int = STRIPE, in_flight: int = IN_FLIGHT, lease: int = LEASE) -> None:
        self.pool = pool
        self.conf = conf
        self.client = client
        self.namespace = namespace
        self.stripe_size = stripe_size
        self.in_flight = in_flight
        self.lease = lease
        self._ioctx: Any = None
        self._ioctx_pid = 0
        self._ioctx_lock = threading.Lock()
        self._cluster: Any = None
        self._writing: dict[str, float] = {}  # writers of this process not committed yet
        self._held: dict[str, str] = {}  # committed, not released: blob id → lock cookie ("": left to lapse)
        self._releasing: dict[str, concurrent.futures.Future[None]] = {}

    @classmethod
    def from_url(cls, url: str, **kw: Any) -> RadosBlobStore:
        p = parse_url(url)
        return cls(p["pool"], p["conf"], p["client"], p["namespace"], **kw)

    def __repr__(self) -> str:
        return f"RadosBlobStore(pool={self.pool!r}, namespace={self.namespace!r})"

    # -- librados plumbing -------------------------------------------------------------

    def _io(self) -> Any:
        if self._ioctx is not None and self._ioctx_pid == _pid and not _cluster_gone(self):
            return self._ioctx
        with self._ioctx_lock:
            if self._ioctx is None or self._ioctx_pid != _pid or _cluster_gone(self):
                cluster = _cluster(self.conf, self.client)
                try:
                    io = cluster.open_ioctx(self.pool)
                except radosbind.load().ObjectNotFound:
                    raise BlobStoreUnavailable(f"Ceph pool {self.pool!r} does not exist (create it: "
                                               f"ceph osd pool create {self.pool})") from None
                if self.namespace:
                    io.set_namespace(self.namespace)
                self._ioctx, self._ioctx_pid, self._cluster = io, _pid, cluster
        return self._ioctx

    def connect(self) -> None:
        """Connect now (and fail now, naming the problem, if the cluster or pool is not there)."""
        self._io()

    def _error(self, code: int, what: str) -> BaseException:
        code = abs(code)
        if code == errno.ENOENT:
            return FileNotFoundError(code, os.strerror(code), what)
        exc = OSError(code, f"RADOS: {os.strerror(code)}", what)
        if code in FULL_ERRNOS:
            return insufficient(Path(self.pool), exc)
        if code in UNAVAILABLE:  # an OSD not answering in OP_TIMEOUT: 503, try again later
            err = errors.DataUnavailable(f"RADOS pool {self.pool}: {os.strerror(code)}")
            err.__cause__ = exc
            return err
        return exc

    def _aio(self, start: Callable[[Callable[..., None]], Any], read: bool = False) -> asyncio.Future[Any]:
        """Start an asynchronous librados call; its result (or error) arrives on the loop.
        ``read``: the call is an ``aio_read``, whose result is the bytes read (the binding
        hands a read of 0 bytes, past the end, the whole unfilled buffer: cut to the
        return value)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()

        def settle(rv: int, data: Any) -> None:
            if fut.done():
                return
            if rv < 0:
                fut.set_exception(self._error(rv, self.pool))
            elif read:
                fut.set_result(data[:rv] if len(data) > rv else data)
            else:
                fut.set_result(data if data is not None else rv)

        def done(comp: Any, *data: Any) -> None:  # on a librados thread, holding the GIL
            rv = comp.get_return_value()
            try:
                loop.call_soon_threadsafe(settle, rv, data[0] if data else None)  # aio_stat: (size, mtime)
            except RuntimeError:  # the loop closed meanwhile
                pass

        start(done)
        return fut

    def _try_lock(self, blob_id: str, cookie: str) -> bool:
        rados = radosbind.load()
        try:
            self._io().lock_exclusive(blob_id, LOCK, cookie, "lampi fsck", self.lease, 0)
        except (rados.ObjectBusy, rados.ObjectExists):
            return False
        return True

    def _unlock(self, blob_id: str, cookie: str) -> None:
        rados = radosbind.load()
        with contextlib.suppress(rados.ObjectNotFound):
            self._io().unlock(blob_id, LOCK, cookie)

    def check(self) -> None:
        """Readiness: the cluster answers for the pool (a head of an object that need not
        exist goes to an OSD); OSError or BlobStoreUnavailable when it does not."""
        self._head("lampi-readiness-probe")

    def _head(self, blob_id: str) -> tuple[int, int] | None:
        """(size, stripe size) of a committed blob; None for a partial or nothing."""
        rados = radosbind.load()
        try:
            raw = self._io().get_xattr(blob_id, XATTR)
        except (rados.ObjectNotFound, rados.NoData):
            return None
        except rados.Error as exc:
            code = getattr(exc, "errno", None)
            if isinstance(code, int):
                raise self._error(code, blob_id) from exc
            raise
        size, _, stripe = bytes(raw).decode().partition(":")
        return int(size), int(stripe)

    def _write_op(self, blob_id: str, lock: str | None = None, data: list[bytes] | None = None,
                  mark: bytes | None = None) -> asyncio.Future[Any]:
        """One atomic operation on a head (or a stripe): take the writer lock (cookie
        ``lock``), write its bytes (the pieces ``data``, the object's whole content), set
        the committed mark — whichever are given."""
        io = self._io()
        op = io.create_write_op()
        try:
            if lock is not None:
                op.execute("lock", "lock", lock_op(lock, self.lease))
            if data is not None:
                op.write_full(data[0] if data else b"")
                at = len(data[0]) if data else 0
                for piece in data[1:]:
                    op.write(piece, at)
                    at += len(piece)
            if mark is not None:
                op.set_xattr(XATTR, mark)
            return self._aio(lambda cb: io.operate_aio_write_op(op, blob_id, oncomplete=cb))
        finally:
            op.release()  # the operation was handed to librados when submitted

    async def _remove(self, name: str) -> bool:
        io = self._io()
        try:
            await self._aio(lambda cb: io.aio_remove(name, oncomplete=cb))
        except FileNotFoundError:
            return False
        return True

    async def _remove_all(self, blob_id: str, stripes: int | None) -> None:
        """Remove the stripes other than the head (``stripes`` of them in all; None: as
        many as are found, a leftover's count being unknown), then the head."""
        batch = max(self.in_flight, 1) * 4
        if stripes is not None:
            for i in range(1, stripes, batch):
                await asyncio.gather(*(self._remove(stripe_name(blob_id, j))
                                       for j in range(i, min(stripes, i + batch))))
        else:
            # stripe i is sent only once stripe i - IN_FLIGHT is written: a crash leaves
            # gaps shorter than the in-flight count; past a longer run of misses is nothing
            i, misses = 1, 0
            while misses <= self.in_flight + 1:
                found = await asyncio.gather(*(self._remove(stripe_name(blob_id, j)) for j in range(i, i + batch)))
                for hit in found:
                    misses = 0 if hit else misses + 1
                i += batch
        await self._remove(blob_id)

    # -- the BlobStore protocol ----------------------------------------------------------

    def writer(self, size_hint: int | None = None, blob_id: str | None = None) -> RadosBlobWriter:
        return RadosBlobWriter(self, blob_id)

    def local_path(self, blob_id: str) -> Path | None:
        return None

    async def read(self, blob_id: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        io = self._io()
        guess: asyncio.Future[Any] | None = None
        if offset < self.stripe_size and length != 0:
            # the head's first bytes are asked for while the head is looked up (one round
            # trip less for a small object); used if the blob has this store's stripe size
            n = self.stripe_size - offset if length is None else min(self.stripe_size - offset, length)
            guess = self._aio(lambda cb: io.aio_read(blob_id, n, offset, oncomplete=cb), read=True)
            if n == length:
                # a range within the head's first bytes (a small object's GET: the caller
                # knows its size from the metadata): the head holds a blob's first
                # stripe whatever the layout, so the bytes are the range's if they all
                # came, and the head's mark need not be looked up (an OSD round trip and
                # a thread hop less). Fewer (a blob shorter than asked): as below.
                data = await guess
                if len(data) == n:
                    if n <= READ_CHUNK:
                        yield data
                        return
                    view = memoryview(data)
                    for k in range(0, n, READ_CHUNK):
                        yield bytes(view[k : k + READ_CHUNK])
                    return
            else:
                guess.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved, if unused
        head = await asyncio.to_thread(self._head, blob_id)
        if head is None:
            raise FileNotFoundError(errno.ENOENT, "no such blob", blob_id)
        size, stripe = head
        end = size if length is None else min(size, offset + length)
        if offset >= end:
            return

        def request(pos: int) -> asyncio.Future[Any]:
            i, within = divmod(pos, stripe)
            n = min(stripe - within, end - pos)
            return self._aio(lambda cb: io.aio_read(stripe_name(blob_id, i), n, within, oncomplete=cb), read=True)

        # up to READ_AHEAD stripe reads in flight (memory: READ_AHEAD stripes at most)
        pending: collections.deque[tuple[int, asyncio.Future[Any]]] = collections.deque()
        asked = offset  # where the next request starts
        if guess is not None and stripe == self.stripe_size:
            pending.append((offset, guess))
            asked = min(end, stripe)
        try:
            while True:
                while asked < end and len(pending) < READ_AHEAD:
                    pending.append((asked, request(asked)))
                    asked = min(end, (asked // stripe + 1) * stripe)
                if not pending:
                    return
                pos, fut = pending.popleft()
                data = await fut
                expected = min(stripe - pos % stripe, end - pos)
                if len(data) < expected:
                    raise OSError(errno.EIO, f"RADOS: stripe of blob {blob_id} at {pos} short "
                                  f"({len(data)} of {expected} bytes)")
                view = memoryview(data)[:expected]
                for k in range(0, len(view), READ_CHUNK):
                    yield bytes(view[k : k + READ_CHUNK])
        finally:
            for _pos, fut in pending:
                if not fut.done():
                    fut.cancel()

    async def delete(self, blob_id: str, size: int | None = None) -> None:
        if size is not None and 0 < size < self.stripe_size:
            # the blob's size known (a deleted object's, from its metadata): a head holding
            # all of it, less than a stripe, is the whole blob, one RADOS object (a head
            # leading other stripes holds exactly one stripe; the stripe size is the
            # store's, not a setting); removed without looking up its mark (a thread hop
            # saved). Otherwise, or if it is gone, as below.
            io = self._io()
            try:
                held = await self._aio(lambda cb: io.aio_stat(blob_id, oncomplete=cb))
            except FileNotFoundError:
                held = None
            if held == size:
                await self._remove(blob_id)
                return
        head = await asyncio.to_thread(self._head, blob_id)
        if head is None:
            await self._remove(blob_id)  # a partial's head, if any, still goes
            return
        size, stripe = head
        await self._remove_all(blob_id, max(1, -(-size // stripe)))

    def _heads(self) -> Iterator[tuple[str, float]]:
        io = self._io()
        for obj in io.list_objects():
            name = obj.key
            if "." in name or len(name) != 32:
                continue
            try:
                _size, mtime = io.stat(name)
            except radosbind.load().ObjectNotFound:
                continue
            yield name, time.mktime(mtime)

    def iter_blobs(self) -> Iterator[tuple[str, int, float]]:
        for name, mtime in self._heads():
            head = self._head(name)
            if head is not None:
                yield name, head[0], mtime

    def iter_partials(self) -> Iterator[tuple[str, float]]:
        seen = set()
        for name, mtime in self._heads():
            if self._head(name) is None:
                seen.add(name)
                yield name, mtime
        for name, t in list(self._writing.items()):  # this process's writers not sent a byte yet
            if name not in seen:
                yield name, t

    def release(self, blob_id: str) -> None:
        """Drop the writer lock, in the background (an asynchronous librados call); a
        one-stripe blob's lock is left to lapse with its lease.

        Why: the unlock is a RADOS operation of its own, a write of the head's lock
        attribute that the OSD commits as any write. For a small PUT it was a third of the
        OSD's work and an eighth of the gateway's librados work (one lock-and-write, one
        unlock). What a lock left to lapse changes: a claim on the blob (fsck's, before
        it removes an unreferenced blob) fails until the lease runs out, LEASE seconds at
        most. A released blob is referenced by committed metadata, so fsck claims one
        only if it became an orphan afterwards (its object deleted and the blob's removal
        failed); it is then removed by a later fsck run instead of this one."""
        cookie = self._held.pop(blob_id, None)
        if not cookie:
            return
        fut: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._releasing[blob_id] = fut

        def done(comp: Any, _data: Any = None) -> None:  # on a librados thread
            self._releasing.pop(blob_id, None)
            fut.set_result(None)  # ENOENT (deleted meanwhile) or not: the lock is gone

        self._io().aio_execute(blob_id, "lock", "unlock", unlock_op(cookie), oncomplete=done)

    def _settle_release(self, blob_id: str) -> None:
        fut = self._releasing.get(blob_id)
        if fut is not None:
            with contextlib.suppress(Exception):
                fut.result(60)

    def blob_size(self, blob_id: str) -> int | None:
        head = self._head(blob_id)
        return None if head is None else head[0]

    @contextlib.contextmanager
    def _claim(self, blob_id: str, committed: bool) -> Iterator[bool]:
        if blob_id in self._held or blob_id in self._writing:
            yield False
            return
        self._settle_release(blob_id)
        io = self._io()
        rados = radosbind.load()
        try:
            io.stat(blob_id)
        except rados.ObjectNotFound:
            yield False
            return
        if (self._head(blob_id) is not None) != committed:
            yield False
            return
        cookie = "claim-" + uuid.uuid4().hex
        if not self._try_lock(blob_id, cookie):
            yield False
            return
        try:
            # locked: but the blob may have gone between the look and the lock, and locking
            # then made an empty head of its own (removed again here). A partial gone so
            # is an empty partial now, which the caller may remove as any other.
            if committed and self._head(blob_id) is None:
                with contextlib.suppress(rados.ObjectNotFound):
                    io.remove_object(blob_id)
                yield False
                return
            yield True
        finally:
            self._unlock(blob_id, cookie)

    def claim_blob(self, blob_id: str) -> contextlib.AbstractContextManager[bool]:
        """True while no writer holds the committed blob (locked for the ``with`` block)."""
        return self._claim(blob_id, True)

    def claim_partial(self, ident: str) -> contextlib.AbstractContextManager[bool]:
        """``claim_blob`` for a partial: False while an upload (of any gateway) writes it."""
        return self._claim(ident, False)

    def remove_partial(self, ident: str) -> bool:
        with self.claim_partial(ident) as free:
            if free:
                _run_sync(self._remove_all(ident, None))
            return free

    async def close(self) -> None:
        for fut in list(self._releasing.values()):
            with contextlib.suppress(Exception):
                await asyncio.wrap_future(fut)


def _cluster_gone(store: RadosBlobStore) -> bool:
    """The store's connection was shut down (``disconnect``): it opens a new one."""
    return store._cluster is not None and (store.conf, store.client, _pid) not in _clusters


def _run_sync(coro: Any) -> Any:
    """Run ``coro`` to completion from synchronous code (fsck's and start-up's clean-up
    run outside, or inside, an event loop: in the latter case on a thread of its own)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        return ex.submit(asyncio.run, coro).result()
