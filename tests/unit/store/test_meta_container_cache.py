"""The SQLite store's container records (and revoked tokens) kept across requests while the database is unchanged
(``SQLiteBase.changes``: the wal-index header; ``ContainersMixin._cached``).

A record is served from the process's cache only while no transaction has committed
since it was read: a commit by the same store, by another store on the same file (another
worker), or by another process with plain ``sqlite3`` (an operator's tool) is seen by the
next read."""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

from lampi.core.models import Domain, Project
from lampi.store.meta import memo
from lampi.store.meta.sqlite import SQLiteMetaStore
from lampi.store.meta.sqlite.conn import _WalMark
from tests.unit.store.test_meta_memo import _count_reads


async def _project(meta: SQLiteMetaStore) -> str:
    d = await meta.create_domain(Domain("default", "Default"))
    p = await meta.create_project(Project(uuid.uuid4().hex, "p", d.id))
    return p.id


async def test_mark_moves_with_every_commit_and_only_then(tmp_path: Path) -> None:
    meta = SQLiteMetaStore(tmp_path / "meta.db")
    other = SQLiteMetaStore(tmp_path / "meta.db")
    try:
        assert meta.changes() is None  # no read of this process's yet: not mapped
        pid = await _project(meta)
        await meta.create_container(pid, "c", {}, time.time())
        await meta.find_container("c", pid)
        first = meta.changes()
        assert first is not None and len(first) == 96
        await meta.find_container("c", pid)
        await meta.get_account(pid)  # a read is no commit
        assert meta.changes() == first
        await other.update_container_meta((await other.find_container("c", pid)).key, {"x": "1"})
        assert meta.changes() != first  # another store's (worker's) commit
        second = meta.changes()
        await meta.create_container(pid, "d", {}, time.time())
        assert meta.changes() != second  # its own
    finally:
        await meta.close()
        await other.close()


async def test_container_served_from_cache_until_any_commit(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    meta = SQLiteMetaStore(tmp_path / "meta.db")
    worker2 = SQLiteMetaStore(tmp_path / "meta.db")
    try:
        pid = await _project(meta)
        await meta.create_container(pid, "c", {"x-container-read": "a"}, time.time())
        await meta.find_container("c", pid)  # maps the header
        reads = _count_reads(meta, monkeypatch)
        for _ in range(3):  # three requests
            with memo.scope():
                found = await meta.find_container("c", pid, "obj")
                assert found is not None and found.meta == {"x-container-read": "a"}
                assert await meta.get_container(found.key) is found
        assert reads[0] == 1  # read once, then from the cache

        # another worker changes the container: the next request reads it anew
        await worker2.update_container_meta(found.key, {"x-container-read": "b"})
        with memo.scope():
            assert (await meta.find_container("c", pid)).meta == {"x-container-read": "b"}
            assert (await meta.get_container(found.key)).meta == {"x-container-read": "b"}
        assert reads[0] == 2

        # a commit that does not touch the container still moves the mark: read anew
        await worker2.create_container(pid, "other", {}, time.time())
        with memo.scope():
            await meta.find_container("c", pid)
        assert reads[0] == 3

        # a deleted container is gone at once, and its absence is kept too
        await worker2.delete_container(pid, found.key)
        with memo.scope():
            assert await meta.find_container("c", pid) is None
            assert await meta.get_container(found.key) is None
        with memo.scope():
            assert await meta.find_container("c", pid) is None
        assert reads[0] == 5  # by name, by key; then the name's absence from the cache
    finally:
        await meta.close()
        await worker2.close()


async def test_a_request_keeps_what_it_saw_first(tmp_path: Path) -> None:
    """Within one request (its memo) the record stays the one read first, even when the
    cache has a newer one: what a request sees does not change with it."""
    meta = SQLiteMetaStore(tmp_path / "meta.db")
    worker2 = SQLiteMetaStore(tmp_path / "meta.db")
    try:
        pid = await _project(meta)
        await meta.create_container(pid, "c", {"v": "1"}, time.time())
        await meta.find_container("c", pid)
        with memo.scope():
            seen = await meta.find_container("c", pid)
            # another worker's write (not this request's: no memo of its own)
            await asyncio.create_task(worker2.update_container_meta(seen.key, {"v": "2"}),
                                      context=contextvars.Context())
            with memo.scope():  # another request meanwhile
                assert (await meta.find_container("c", pid)).meta["v"] == "2"
            assert (await meta.find_container("c", pid)).meta["v"] == "1"
    finally:
        await meta.close()
        await worker2.close()


def test_a_write_by_another_program_is_seen(tmp_path: Path) -> None:
    """An operator's ``sqlite3`` in another process: no lampi code to tell the cache,
    the wal-index header moves all the same."""
    path = tmp_path / "meta.db"

    async def run() -> None:
        meta = SQLiteMetaStore(path)
        try:
            pid = await _project(meta)
            await meta.create_container(pid, "c", {"v": "1"}, time.time())
            await meta.find_container("c", pid)
            with memo.scope():
                assert (await meta.find_container("c", pid)).meta == {"v": "1"}
            script = ("import sqlite3, sys\n"
                      "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                      "c.execute(\"UPDATE containers SET meta = '{\\\"v\\\": \\\"2\\\"}' WHERE name = 'c'\")\n")
            await asyncio.to_thread(subprocess.run, [sys.executable, "-c", script, str(path)], check=True,
                                    timeout=120)
            with memo.scope():
                assert (await meta.find_container("c", pid)).meta == {"v": "2"}
        finally:
            await meta.close()

    asyncio.run(run())


def test_header_of_an_unknown_format_is_not_used(tmp_path: Path) -> None:
    keeper = sqlite3.connect(tmp_path / "w.db", isolation_level=None)  # a WAL connection
    try:
        keeper.execute("PRAGMA journal_mode=WAL")
        keeper.execute("CREATE TABLE t (x)")
        db = tmp_path / "x.db"  # a "-shm" no SQLite connection uses
        (tmp_path / "x.db-shm").write_bytes(b"\x01" * 32768)  # not SQLite's wal-index
        assert _WalMark(db, keeper).mark() is None
        (tmp_path / "x.db-shm").write_bytes(b"")  # too short
        assert _WalMark(db, keeper).mark() is None
    finally:
        keeper.close()


_DMS_PROBE = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 128)  # the unix VFS's DMS byte
except OSError:
    print("held")
else:
    print("free")
"""


def test_the_header_reader_keeps_sqlites_lock_on_the_shm_file(tmp_path: Path) -> None:
    """SQLite's shared lock on the "-shm" file's DMS byte tells other processes the file is
    in use: one that finds it free truncates and re-initialises the file. Closing any
    descriptor of the file drops the process's POSIX locks on it, so the header reader
    must not (in CI, a worker mapping the header died of SIGBUS when ``lampi fsck``
    re-initialised the file). Checked from another process, as ``lampi fsck`` opens it."""
    path = tmp_path / "meta.db"

    def probe() -> str:
        return subprocess.run([sys.executable, "-c", _DMS_PROBE, str(path) + "-shm"], check=True,
                              capture_output=True, text=True, timeout=120).stdout.strip()

    async def run() -> None:
        meta = SQLiteMetaStore(path)
        other: SQLiteMetaStore | None = SQLiteMetaStore(path)  # a second store on the file (tests, tools)
        assert other is not None
        try:
            pid = await _project(meta)
            await meta.create_container(pid, "c", {}, time.time())
            await meta.find_container("c", pid)
            await other.find_container("c", pid)
            assert meta.changes() is not None and other.changes() is not None
            assert await meta.revoked_tokens() == set()
            assert await asyncio.to_thread(probe) == "held"
            closing, other = other, None
            await closing.close()  # one store closed: the other's connections keep their lock
            assert await asyncio.to_thread(probe) == "held"
            assert meta.changes() is not None
        finally:
            await meta.close()
            if other is not None:
                await other.close()

    asyncio.run(run())


def test_a_left_over_header_beside_a_database_not_in_wal_mode_is_not_used(tmp_path: Path) -> None:
    """A "-shm" file from an earlier WAL session, valid-looking, beside a database now in
    another journal mode: SQLite no longer writes it, so it would never move."""
    wal_db = tmp_path / "w.db"
    conn = sqlite3.connect(wal_db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x)")
    assert _WalMark(wal_db, conn).mark() is not None  # a live header
    header = (tmp_path / "w.db-shm").read_bytes()
    conn.close()
    db = tmp_path / "d.db"
    plain = sqlite3.connect(db, isolation_level=None)
    try:
        plain.execute("CREATE TABLE t (x)")
        (tmp_path / "d.db-shm").write_bytes(header)
        assert _WalMark(db, plain).mark() is None
    finally:
        plain.close()


async def test_closed_store_stops_using_the_mapping(tmp_path: Path) -> None:
    meta = SQLiteMetaStore(tmp_path / "meta.db")
    pid = await _project(meta)
    await meta.create_container(pid, "c", {}, time.time())
    await meta.find_container("c", pid)
    assert meta.changes() is not None
    await meta.close()
    assert meta.changes() is None


async def test_revocations_seen_at_once_from_every_writer(tmp_path: Path) -> None:
    """The revoked set is kept while revocations.db's wal-index header is unchanged: a
    revocation by this store, by another worker's, or by another program is seen by
    the next check."""
    meta = SQLiteMetaStore(tmp_path / "meta.db")
    worker2 = SQLiteMetaStore(tmp_path / "meta.db")
    try:
        assert await meta.revoked_tokens() == set()
        assert meta._revoke_watch is not None and meta._revoke_watch.mark() is not None
        assert await meta.revoked_tokens() == set()  # from the kept set
        await meta.revoke_token("own", time.time() + 3600)
        assert await meta.revoked_tokens() == {"own"}
        await worker2.revoke_token("other-worker", time.time() + 3600)
        assert await meta.revoked_tokens() == {"own", "other-worker"}
        script = ("import sqlite3, sys\n"
                  "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                  "c.execute(\"INSERT INTO revoked (audit_id, expires_at) VALUES ('tool', 9e9)\")\n")
        await asyncio.to_thread(subprocess.run, [sys.executable, "-c", script, str(tmp_path / "revocations.db")],
                                check=True, timeout=120)
        assert await meta.revoked_tokens() == {"own", "other-worker", "tool"}
    finally:
        await meta.close()
        await worker2.close()


async def test_a_header_it_cannot_use_is_not_tried_again_and_held_until_close(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """A header of an unknown version: the cache stays off, the descriptor is kept (closing
    it would drop SQLite's lock) until the store closes, and no new one per request."""
    import lampi.store.meta.sqlite.conn as conn_mod

    monkeypatch.setattr(conn_mod, "_WAL_VERSION", 1)  # no SQLite writes this one
    meta = SQLiteMetaStore(tmp_path / "meta.db")
    try:
        pid = await _project(meta)
        await meta.create_container(pid, "c", {}, time.time())
        for _ in range(5):
            await meta.find_container("c", pid)
            await meta.revoked_tokens()
        assert meta.changes() is None and meta._revoke_watch is None
        assert len(meta._unused_watches) == 2  # meta.db's and revocations.db's, once each
        shm = str(tmp_path / "meta.db") + "-shm"
        assert conn_mod._SHM[shm][1] == 1
    finally:
        await meta.close()
    assert shm not in conn_mod._SHM  # released with the store
