"""lampi.store.space and its use by the stores: what counts as a full disk, the upload
floor, and the metadata reserve given back a slice at a time. (A real full filesystem:
tests/functional/test_full_disk.py.)"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

import pytest

from lampi.core import errors
from lampi.core.blobwrite import stream_to_blob
from lampi.store.blob.fs import FSBlobStore
from lampi.store.meta.sqlite import SQLiteMetaStore
from lampi.store.space import RESERVE_SLICE, MinFree, Reserve, is_full

MiB = 1024 * 1024


def sqlite_full(tmp_path: Path) -> sqlite3.OperationalError:
    """A real SQLITE_FULL: an insert past the database's page limit."""
    conn = sqlite3.connect(tmp_path / "tiny.db")
    conn.execute("CREATE TABLE t (b BLOB)")
    conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
    try:
        conn.execute("INSERT INTO t VALUES (?)", (os.urandom(100_000),))
    except sqlite3.OperationalError as exc:
        return exc
    finally:
        conn.close()
    raise AssertionError("no SQLITE_FULL")


def test_what_a_full_disk_looks_like(tmp_path: Path) -> None:
    assert is_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert is_full(errors.InsufficientStorage())
    full = sqlite_full(tmp_path)
    assert is_full(full)
    try:  # a ROLLBACK failing after it: the full disk is still found, in the context
        try:
            raise full
        except sqlite3.OperationalError:
            raise sqlite3.OperationalError("cannot rollback - no transaction is active") from None
    except sqlite3.OperationalError as exc:
        assert exc.__context__ is full and is_full(exc)
    assert not is_full(OSError(errno.EIO, "I/O error"))
    assert not is_full(sqlite3.OperationalError("database is locked"))
    assert not is_full(ValueError("x"))


def test_reserve_is_given_back_a_slice_at_a_time_and_grown_back(tmp_path: Path) -> None:
    r = Reserve(tmp_path / "meta.db-reserve", size=3 * MiB)
    assert r.ensure() and r.current() == 3 * MiB
    assert os.stat(r.path).st_blocks * 512 >= 3 * MiB  # real blocks, not a sparse file
    assert os.stat(r.path).st_mode & 0o777 == 0o600
    sizes = []
    while r.release():
        sizes.append(r.current())
    assert sizes == [2 * MiB, 1 * MiB, 0] and not r.path.exists()
    assert not r.release()
    assert r.ensure() and r.current() == 3 * MiB


def test_reserve_is_at_most_a_sixteenth_of_the_filesystem(tmp_path: Path) -> None:
    st = os.statvfs(tmp_path)
    r = Reserve(tmp_path / "x", size=st.f_blocks * st.f_frsize)
    assert r.size <= st.f_blocks * st.f_frsize // 16 and r.size % 4096 == 0


async def chunks(n: int):
    for _ in range(n):
        yield os.urandom(MiB)


async def test_uploads_below_the_floor_are_refused_before_a_byte(tmp_path: Path) -> None:
    st = os.statvfs(tmp_path)
    blobs = FSBlobStore(tmp_path / "root", MinFree(bytes=st.f_blocks * st.f_frsize))  # more than there is
    with pytest.raises(errors.InsufficientStorage) as info:
        await stream_to_blob(blobs, chunks(3), expected_size=3 * MiB)
    assert info.value.detail["drive"] == "root"
    with pytest.raises(errors.InsufficientStorage):
        await stream_to_blob(blobs, chunks(3))  # no length announced: refused all the same
    assert list(blobs.iter_partials()) == [] and list(blobs.iter_blobs()) == []
    ok = FSBlobStore(tmp_path / "root")  # no floor: no check
    blob_id, size, _ = await stream_to_blob(ok, chunks(2), expected_size=2 * MiB)
    assert size == 2 * MiB and [b[0] for b in ok.iter_blobs()] == [blob_id]


async def test_a_declared_length_past_the_free_space_is_refused(tmp_path: Path) -> None:
    st = os.statvfs(tmp_path)
    blobs = FSBlobStore(tmp_path / "root", MinFree(bytes=1))
    with pytest.raises(errors.InsufficientStorage):
        blobs.writer(size_hint=st.f_bavail * st.f_frsize + 1)
    w = blobs.writer(size_hint=1)  # fits
    await w.abort()


def test_uploads_leave_the_missing_part_of_the_reserve_free(tmp_path: Path) -> None:
    r = Reserve(tmp_path / "meta.db-reserve", size=MiB)
    assert r.ensure()
    blobs = FSBlobStore(tmp_path / "root", MinFree(bytes=1), r)
    blobs.check_space(MiB)  # the reserve is whole: only the floor counts
    r.size = 1 << 60  # a reserve bigger than any disk, almost all of it given back
    with pytest.raises(errors.InsufficientStorage):
        blobs.check_space(0)


async def test_a_full_metadata_store_is_insufficient_storage_and_only_deletes_use_the_reserve(
        tmp_path: Path) -> None:
    """SQLITE_FULL (here: the database's page limit) is InsufficientStorage; a
    transaction that frees space is retried once per slice of the reserve given back,
    any other is not."""
    meta = SQLiteMetaStore(tmp_path / "meta.db")
    try:
        whole = meta.reserve.current()
        assert whole == meta.reserve.size > 0

        def grow(c: sqlite3.Connection) -> None:
            c.execute(f"PRAGMA max_page_count = {c.execute('PRAGMA page_count').fetchone()[0]}")
            c.execute("CREATE TABLE IF NOT EXISTS filler (b BLOB)")
            c.execute("INSERT INTO filler VALUES (?)", (os.urandom(200_000),))

        with pytest.raises(errors.InsufficientStorage):
            await meta._tx(grow)
        assert meta.reserve.current() == whole  # not a delete: the reserve is left alone
        with pytest.raises(errors.InsufficientStorage):
            await meta._tx(grow, frees=True)  # the page limit stays: every retry fails
        assert meta.reserve.current() == 0  # given back slice by slice, then the error
        assert whole // RESERVE_SLICE >= 1

        def lift(c: sqlite3.Connection) -> None:
            c.execute("PRAGMA max_page_count = 1073741823")
            c.execute("CREATE TABLE filler (b BLOB)")  # (the failed transactions made none)

        await meta._tx(lift)
        await meta._tx(lambda c: c.execute("INSERT INTO filler VALUES (?)", (os.urandom(200_000),)))
        assert (await meta._run(lambda c: c.execute("SELECT COUNT(*) FROM filler").fetchone()))[0] == 1
    finally:
        await meta.close()
