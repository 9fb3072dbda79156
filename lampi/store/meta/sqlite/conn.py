"""Connections and threads of the SQLite MetaStore: the read thread, the writer thread
and its group commit (``_tx``), the revocations database and the identity-generation
reader. The record-family mixins build on ``SQLiteBase``.

A full disk (``lampi.store.space``): SQLITE_FULL is answered as ``InsufficientStorage``.
Transactions that free space (``_tx(..., frees=True)``: deletes, aborts, expiry) and the
opening of the database are retried after giving back a slice of the metadata reserve
(``meta.db-reserve``), so space can still be freed through the API when the disk is
full; the writer thread grows the reserve back once there is room.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import os
import queue
import sqlite3
import sys
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from lampi.store.meta import memo
from lampi.store.meta.sqlite.schema import REVOKE_SCHEMA, SCHEMA, migrate
from lampi.store.space import Reserve, insufficient, is_full

T = TypeVar("T")

RESERVE_CHECK_INTERVAL = 2.0  # seconds between the writer thread's looks at the reserve


class _Turn:
    """A writer's turn (``SQLiteBase._writers_turn``): an exclusive flock until released."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd
        if fd >= 0:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:
                self.fd = -1

    def release(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            self.fd = -1


# The wal-index header of a WAL database (its "-shm" file; sqlite.org/walformat.html,
# "The WAL-Index Header"): two copies of a 48-byte header, which every commit rewrites
# (iChange, mxFrame, the checksums, the salts after a restart), the second copy first.
_WAL_HEADER = 96
_WAL_VERSION = 3007000  # iVersion of the wal-index format SQLite has written since 3.7.0

# The "-shm" files this process reads headers from: path -> [descriptor, users].
# POSIX record locks belong to the process and the file, and closing *any* descriptor
# of a file drops all of the process's locks on it: SQLite's shared lock on "-shm"
# (which tells other processes that the file is in use and must not be truncated and
# re-initialised) would be gone while its connections still use the file. So each file
# is opened once per process and closed only when the last store using it has closed
# its connections; a forked child forgets the parent's without closing them.
_SHM: dict[str, list[int]] = {}


def _shm_open(path: str) -> int:
    entry = _SHM.get(path)
    if entry is not None:
        entry[1] += 1
        return entry[0]
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    _SHM[path] = [fd, 1]
    return fd


def _shm_release(path: str) -> None:
    entry = _SHM.get(path)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] <= 0:
        del _SHM[path]
        os.close(entry[0])


class _WalMark:
    """The state a WAL database was committed to, read from its wal-index header: the
    same bytes mean no transaction committed in between, by any process or connection.
    What ``PRAGMA data_version`` tells, without a statement (a read transaction and its
    file locks: ~9 us here): one ``pread`` of 96 bytes. Read, not mapped: a file
    truncated under a mapping would kill the process (SIGBUS); a short read is only an
    unknown mark.

    Made after a connection of this process (``keeper``) has read the database in WAL
    mode. A database in another journal mode, or a header whose version or init flag is
    not the documented one, is not used (``mark`` is then None, and callers read the
    database). ``close`` only after the store's connections are closed (``_SHM``)."""

    __slots__ = ("_fd", "_ok", "_path", "keeper")

    def __init__(self, path: Path, keeper: sqlite3.Connection) -> None:
        self.keeper = keeper
        self._fd = -1
        self._ok = False
        self._path = str(path) + "-shm"
        # a "-shm" file is live only in WAL mode: one left over beside a database in
        # another journal mode would never change
        if str(keeper.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
            return
        self._fd = _shm_open(self._path)  # from here on, released only by ``close``
        try:
            head = os.pread(self._fd, _WAL_HEADER, 0)
        except OSError:
            return
        self._ok = (len(head) == _WAL_HEADER and int.from_bytes(head[0:4], sys.byteorder) == _WAL_VERSION
                    and head[12] == 1)

    def mark(self) -> bytes | None:
        if not self._ok:
            return None
        try:
            head = os.pread(self._fd, _WAL_HEADER, 0)
        except OSError:
            return None
        return head if len(head) == _WAL_HEADER else None

    def close(self) -> None:
        self._ok = False
        if self._fd >= 0:
            self._fd = -1
            _shm_release(self._path)


_WATCHED: weakref.WeakSet[SQLiteBase] = weakref.WeakSet()


def _forked() -> None:
    # a forked process holds none of its parent's SQLite locks: it reads anew, after a
    # read of its own (SQLiteBase._read); the parent's descriptors are left open
    for store in list(_WATCHED):
        store._wal = None
        store._revoke_watch = None
        store._unused_watches = []
        store._wal_tried = store._revoke_tried = float("-inf")
    _SHM.clear()


os.register_at_fork(after_in_child=_forked)


class SQLiteBase:
    # reads requests may share (lampi.store.meta.memo.Shared): none here, a SQLite read
    # costs less than the sharing; the PostgreSQL store shares container and account reads
    _shared: Any = None
    _turn_fd: int | None = None  # the writers' turn file (_writers_turn), per process
    _turn_pid = 0
    _wal: _WalMark | None = None  # this process's view of meta.db's wal-index header (``changes``)
    _wal_tried = float("-inf")  # when reading it was last tried (monotonic): tried again after a while
    _revoke_tried = float("-inf")  # the same for revocations.db's

    def __init__(self, path: str | Path, durable: bool = True) -> None:
        """``durable=False`` (``lampi serve --ephemeral``): ``synchronous=OFF``, no fsync
        per commit; a crash may lose the last transactions (of a throw-away store)."""
        self.path = Path(path)
        self.durable = durable
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._local = threading.local()
        self._revoke_path = self.path.with_name("revocations.db")
        self._revoked: set[str] = set()
        self._revoke_version: int | None = None
        self._revoke_lock = threading.Lock()
        # headroom for the metadata on a full disk, made before anything else is written
        self.reserve = Reserve(self.path.with_name(self.path.name + "-reserve"))
        self.reserve.ensure()
        self._reserve_next = 0.0
        self._revoke_conn = self._opening(lambda: self._open(self._revoke_path, REVOKE_SCHEMA, check_same_thread=False))
        # revocations.db's wal-index header (``revoked_tokens``): mapped once the set is
        # first read, while ``_revoke_conn`` (this process's, it read the database
        # opening it) keeps the "-shm" file from being truncated
        self._revoke_watch: _WalMark | None = None
        self._revoke_mark: bytes | None = None
        self._revoke_pid = os.getpid()
        self._unused_watches: list[_WalMark] = []  # opened, no usable header: closed with the store
        # create the schema once, synchronously, so start-up errors surface at once
        conn = self._opening(lambda: self._open(self.path, SCHEMA))
        try:
            migrate(conn)
        finally:
            conn.close()
        # read on the event loop (see identity_generation): a plain read, short busy wait
        self._gen_lock = threading.Lock()
        self._gen_conn = sqlite3.connect(str(self.path), timeout=1, isolation_level=None, check_same_thread=False)
        # write transactions: one writer thread per process, started on first use
        self._wq: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._writer_pid = 0
        self._writer_lock = threading.Lock()

    # -- plumbing ---------------------------------------------------------------

    def _open(self, path: Path, schema: str, check_same_thread: bool = True) -> sqlite3.Connection:
        conn = sqlite3.connect(
            str(path), timeout=60, isolation_level=None, check_same_thread=check_same_thread
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL" if getattr(self, "durable", True) else "PRAGMA synchronous=OFF")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=60000")
        for attempt in range(50):
            try:
                conn.executescript(schema)
                break
            except sqlite3.OperationalError as exc:  # concurrent first start of workers
                if "locked" not in str(exc) or attempt == 49:
                    raise
                time.sleep(0.05)
        return conn

    def _opening(self, opener: Callable[[], T]) -> T:
        """``opener()``; on a full disk (the WAL and its index are made when a database is
        first opened), again after each slice of the reserve given back."""
        while True:
            try:
                return opener()
            except sqlite3.Error as exc:
                if not is_full(exc):
                    raise
                if not self.reserve.release():
                    raise insufficient(self.path.parent, exc) from exc

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open(self.path, SCHEMA)
            self._local.conn = conn
        return conn

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, lambda: fn(self._conn()))
        except sqlite3.Error as exc:
            if is_full(exc):
                raise insufficient(self.path.parent, exc) from exc
            raise

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A point read (one indexed lookup) run right here on the event loop.

        Speed: ``_run`` costs a thread hop per read (submit, wake, GIL hand-offs), more
        than a lookup of one row by its key on a WAL database (tens of microseconds,
        pages in cache). A small object request did three or four such reads (bucket,
        object, account, quota). On the loop they cost about 12% less server CPU per
        request (A/B, 3 rounds of 4×3,000 small ops at c16: 0.56–0.66 against
        0.68–0.73 ms per op) and HEAD ran ~1.5× faster. WAL readers never wait for the
        writer; the connection has no busy timeout, so a database that is busy for
        another reason (a checkpoint restarting the WAL, a schema change) makes the read
        go to the thread instead of blocking the loop. Listings and scans stay on the
        thread (``_run``).
        """
        local = self._local
        conn = getattr(local, "rconn", None)
        if conn is None or local.rconn_pid != os.getpid():  # none yet, or inherited over a fork
            conn = sqlite3.connect(str(self.path), timeout=0, isolation_level=None)
            local.rconn, local.rconn_pid = conn, os.getpid()
        try:
            result = fn(conn)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            return await self._run(fn)
        if self._wal is None:
            self._watch(conn)
        return result

    def _watch(self, keeper: sqlite3.Connection) -> None:
        """Read the wal-index header from now on (``changes``), ``keeper`` having just
        read the database; tried again 5 s after a failure to open the file."""
        now = time.monotonic()
        if now - self._wal_tried < 5.0:
            return
        self._wal_tried = now
        wal = self._new_watch(self.path, keeper)
        if wal is not None:
            self._wal = wal

    def _watch_revocations(self) -> None:
        now = time.monotonic()
        if now - self._revoke_tried < 5.0:
            return
        self._revoke_tried = now
        watch = self._new_watch(self._revoke_path, self._revoke_conn)
        if watch is not None:
            self._revoke_watch = watch

    def _new_watch(self, path: Path, keeper: sqlite3.Connection) -> _WalMark | None:
        """A header reader for ``path``, or None. One that opened the file but found no
        header it can use is kept until ``close`` (its descriptor must outlive the
        connections), and no other is tried for that file."""
        try:
            watch = _WalMark(path, keeper)
        except (OSError, ValueError, sqlite3.Error):
            return None  # the file could not be opened: nothing held, tried again later
        _WATCHED.add(self)
        if watch.mark() is None:
            self._unused_watches.append(watch)
            if path == self.path:
                self._wal_tried = float("inf")
            else:
                self._revoke_tried = float("inf")
            return None
        return watch

    def changes(self) -> bytes | None:
        """A mark of what meta.db was committed to: equal marks mean no transaction
        committed between them (any process's). None when not known (no read yet in
        this process, the header not mapped): callers then read the database. Take the
        mark *before* the read whose result it files."""
        wal = self._wal
        return None if wal is None else wal.mark()

    def run_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the store's thread from synchronous code (CLI)."""
        return self._executor.submit(lambda: fn(self._conn())).result()

    shares_keys = False  # one node: its keys stay files in keys/ unless a master key is set

    def _sync_read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` on a connection of its own, on this thread (the keys table)."""
        conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
        try:
            return fn(conn)
        finally:
            conn.close()

    def _sync_tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` in a write transaction of its own, on this thread (the keys table)."""
        return self._sync_read(lambda conn: self._write(conn, fn))

    @staticmethod
    def _write(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite may have rolled back already (SQLITE_FULL, IOERR)
                conn.execute("ROLLBACK")
            raise
        return result

    async def _tx(self, fn: Callable[[sqlite3.Connection], T], frees: bool = False, queue: str | None = None) -> T:
        """Run ``fn`` in a write transaction; returns once it is committed (durable).

        ``queue``: writers of the same queue (a container's objects) run one after the
        other on PostgreSQL (see its ``_tx``); SQLite has one writer anyway.

        ``frees``: the transaction frees space (a delete): on a full disk it is run again,
        alone, after giving back a slice of the metadata reserve. Others then fail with
        ``InsufficientStorage``.

        Group commit: write transactions run on their own thread and connection. Each
        WAL commit costs an fsync (``synchronous=FULL``); under concurrent writes the
        thread takes every transaction already queued (up to ``_GROUP_MAX``) and runs them
        in one ``BEGIN IMMEDIATE ... COMMIT``, each inside its own SAVEPOINT, so a failing
        one is rolled back alone, exactly as if it had run by itself. No caller hears
        back before that COMMIT has returned, so acknowledged still means durable; no
        delay is added to wait for company (a lone write commits at once). Reads stay on
        the other thread and connection, so they no longer queue behind a commit's fsync
        (WAL readers see the last committed state).
        """
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._start_writer()
        memo.forget()  # the request's remembered reads (lampi.store.meta.memo): before and after
        try:
            self._wq.put((fn, fut, frees))
            return await asyncio.wrap_future(fut)
        finally:
            memo.forget()

    _GROUP_MAX = 64

    def _start_writer(self) -> None:
        if self._writer is not None and self._writer_pid == os.getpid():
            return
        with self._writer_lock:
            if self._writer is None or self._writer_pid != os.getpid():  # none yet, or forked
                self._wq = queue.SimpleQueue()
                self._writer = threading.Thread(target=self._writer_loop, args=(self._wq,),
                                                name="sqlite-writer", daemon=True)
                self._writer_pid = os.getpid()
                self._writer.start()

    def _writer_loop(self, wq: queue.SimpleQueue[Any]) -> None:
        conn: sqlite3.Connection | None = None
        stop = False
        while not stop:
            job = wq.get()
            if job is None:
                break
            batch = [job]
            while len(batch) < self._GROUP_MAX:
                try:
                    job = wq.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                batch.append(job)
            # a caller cancelled before its turn: skip it (as a not yet started executor job)
            batch = [job for job in batch if job[1].set_running_or_notify_cancel()]
            if not batch:
                continue
            results: list[tuple[bool, Any]] = []
            turn = self._writers_turn()
            try:
                if conn is None:
                    conn = self._opening(lambda: self._open(self.path, SCHEMA))
                if len(batch) == 1:  # the common case at low concurrency: no savepoint
                    results.append((True, self._write(conn, batch[0][0])))
                else:
                    conn.execute("BEGIN IMMEDIATE")
                    for fn, _fut, _frees in batch:
                        conn.execute("SAVEPOINT grouped")
                        try:
                            r = fn(conn)
                        except Exception as exc:
                            conn.execute("ROLLBACK TO grouped")
                            conn.execute("RELEASE grouped")
                            results.append((False, exc))
                        else:
                            conn.execute("RELEASE grouped")
                            results.append((True, r))
                    conn.execute("COMMIT")
            except BaseException as exc:  # BEGIN/COMMIT failed, or a lone write raised
                if conn is not None and conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                results = [(False, exc)] * len(batch)
            finally:
                turn.release()
            if conn is not None:
                results = [self._freeing(conn, fn, ok, value) if frees else (ok, value)
                           for (fn, _fut, frees), (ok, value) in zip(batch, results)]
            for (_fn, fut, _frees), (ok, value) in zip(batch, results):
                if ok:
                    fut.set_result(value)
                elif is_full(value):
                    fut.set_exception(insufficient(self.path.parent, value))
                else:
                    fut.set_exception(value)
            if conn is not None and time.monotonic() >= self._reserve_next:
                self._reserve_next = time.monotonic() + RESERVE_CHECK_INTERVAL
                self.reserve.ensure()  # grown back once there is room again
        if conn is not None:
            conn.close()

    def _writers_turn(self) -> _Turn:
        """This process's turn among the workers' writers (held until ``release``).

        Each worker has a writer thread of its own, and SQLite lets one write at a time:
        a writer that finds the database locked sleeps in SQLite's busy handler (1, 2, 5,
        10 … 100 ms), while the writer holding it, its queue never empty under load,
        begins its next transaction at once. With two workers one of them made nearly
        every write and the other's clients waited (a DELETE phase: 94% of the writes'
        CPU in one worker). So the writers take turns on an ``flock`` of a file beside
        the database first: the kernel wakes a waiting writer as soon as the lock is
        free, and the one that just wrote finds it taken by then. Without the file (a
        read-only directory) a writer goes on as before."""
        fd = self._turn_fd
        if fd is None or self._turn_pid != os.getpid():
            try:
                fd = os.open(str(self.path) + ".writers", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:
                fd = -1
            self._turn_fd, self._turn_pid = fd, os.getpid()
        return _Turn(fd)

    def _freeing(self, conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], Any], ok: bool,
                 value: Any) -> tuple[bool, Any]:
        """A transaction that frees space but failed on a full disk: run it again, alone,
        after each slice of the metadata reserve given back, until it commits or the
        reserve is gone."""
        while not ok and isinstance(value, Exception) and is_full(value) and self.reserve.release():
            try:
                ok, value = True, self._write(conn, fn)
            except Exception as exc:
                value = exc
        return ok, value

    def _stop_writer(self) -> None:
        if self._writer is not None and self._writer_pid == os.getpid():
            self._wq.put(None)
            self._writer.join()
            self._writer = None

    # -- whole tables (lampi.store.meta.sqlite.rows) ------------------------------------
    _UPSERT = False  # see RowsMixin._imported


    async def _rows_read(self, table: str | None, fn: Callable[[sqlite3.Connection], T]) -> T:
        if table == "revoked":  # in the revocations database
            return await asyncio.to_thread(self._on_revocations, fn, False)
        return await self._run(fn)

    async def _rows_write(self, table: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        if table == "revoked":
            return await asyncio.to_thread(self._on_revocations, fn, True)
        return await self._tx(fn)

    def _on_revocations(self, fn: Callable[[sqlite3.Connection], T], write: bool) -> T:
        with self._revoke_lock:
            c = self._revoke_conn
            if not write:
                return fn(c)
            c.execute("BEGIN IMMEDIATE")
            try:
                result = fn(c)
                c.execute("COMMIT")
            except BaseException:
                if c.in_transaction:
                    c.execute("ROLLBACK")
                raise
            return result

    def _list_tables(self, c: sqlite3.Connection) -> list[str]:
        sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
        names = [r[0] for r in c.execute(sql)]
        with self._revoke_lock:
            names += [r[0] for r in self._revoke_conn.execute(sql)]
        return names

    @staticmethod
    def _list_columns(c: sqlite3.Connection, table: str) -> list[str]:
        quoted = '"' + table.replace('"', '""') + '"'
        return [r[1] for r in c.execute(f"PRAGMA table_info({quoted})")]

    async def ping(self) -> None:
        """Raise (sqlite3.Error, OSError) when the database cannot be reached: a query on
        this process's connection, and the file opened anew (an open connection keeps
        working on a file that was removed, moved or unmounted under it)."""
        path = self.path

        def fn(conn: sqlite3.Connection) -> None:
            conn.execute("SELECT 1").fetchone()
            fresh = sqlite3.connect(f"file:{urllib.parse.quote(str(path))}?mode=rw", uri=True, timeout=2.0)
            try:
                fresh.execute("SELECT count(*) FROM sqlite_master").fetchone()
            finally:
                fresh.close()

        await self._run(fn)

    async def close(self) -> None:
        def _close(conn: sqlite3.Connection) -> None:
            conn.close()
            self._local.conn = None

        watches = (self._wal, self._revoke_watch, *self._unused_watches)
        self._wal = self._revoke_watch = None  # no more reads of the headers
        self._unused_watches = []
        try:
            await self._run(_close)
        finally:
            self._executor.shutdown(wait=True)
            self._stop_writer()
            self._revoke_conn.close()
            self._gen_conn.close()
            rconn = getattr(self._local, "rconn", None)  # this thread's point-read connection
            if rconn is not None:
                rconn.close()
                self._local.rconn = None
            for watch in watches:  # after the connections: closing a "-shm" descriptor drops the process's locks on it
                if watch is not None:
                    watch.close()
