"""fsck on a live store, the races made deterministic: real SQLite metadata and
filesystem blobs, a second "server" (its own stores on the same data, in another thread)
acting at the exact moment fsck is most exposed.

* an overwrite and a delete between fsck's object listing and its blob scan are not
  damage (re-checked), while a blob really lost at the same time is reported;
* a blob committed but not yet recorded in metadata (rename done, transaction not) is
  held by its writer and never taken for an orphan, however old and with no grace;
* an upload's temp file is held for as long as the upload lives, however long it pauses;
* a request cancelled during its metadata transaction keeps its blob held.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from lampi.bg.fsck import fsck
from lampi.core.blobwrite import recording
from lampi.core.models import Domain, ObjectRecord, Project
from lampi.core.storage import Storage
from lampi.store.blob.fs import FSBlobStore
from lampi.store.meta.sqlite import SQLiteMetaStore

HOUR_AGO = time.time() - 3600


async def _body(data: bytes):  # noqa: ANN202
    yield data


async def _open(tmp_path: Path) -> tuple[Storage, SQLiteMetaStore, FSBlobStore]:
    meta = SQLiteMetaStore(tmp_path / "meta.db")
    blobs = FSBlobStore(tmp_path)
    return Storage(meta, blobs), meta, blobs


async def _setup(tmp_path: Path) -> tuple[Storage, SQLiteMetaStore, FSBlobStore]:
    storage, meta, blobs = await _open(tmp_path)
    d = await meta.create_domain(Domain("default", "Default"))
    p = await meta.create_project(Project("p1", "p1", d.id))
    await meta.create_container(p.id, "c", {}, time.time())
    return storage, meta, blobs


def _other_server(tmp_path: Path, action: Callable[[Storage], Awaitable[None]]) -> None:
    """Run ``action`` to completion on stores of its own (another server process would
    do the same), in another thread with its own event loop; return when it is done."""

    async def go() -> None:
        storage, meta, _blobs = await _open(tmp_path)
        try:
            await action(storage)
        finally:
            await meta.close()

    t = threading.Thread(target=asyncio.run, args=(go(),))
    t.start()
    t.join(60)
    assert not t.is_alive()


class _At:
    """A ``progress`` for fsck that runs a callback when fsck starts a given phase."""

    def __init__(self, phase: str, fn: Callable[[], None]) -> None:
        self.phase, self.fn = phase, fn

    def add_task(self, name: str, total: Any = None) -> str:
        if name == self.phase:
            self.fn()
        return name

    def advance(self, task: str) -> None: ...
    def update(self, task: str, **kw: Any) -> None: ...


async def test_changes_between_listing_and_scan_are_not_damage(tmp_path: Path) -> None:
    storage, meta, blobs = await _setup(tmp_path)
    try:
        for name in ("over", "gone", "lost", "same"):
            await storage.put_object("c", name, _body(name.encode() * 100), content_type="x", meta={}, sysmeta={})
        lost = (await storage.head_object("c", "lost")).blob_id

        async def change(other: Storage) -> None:
            await other.put_object("c", "over", _body(b"new"), content_type="x", meta={}, sysmeta={})
            await other.delete_object("c", "gone")
            os.unlink(blobs.blob_path(lost))  # real damage, at the same moment

        # after fsck listed the objects, before it scans the blobs
        hook = _At("scanning blobs", lambda: _other_server(tmp_path, change))
        rep = await fsck(meta, blobs, repair=True, grace=0, progress=hook)
        assert rep.missing_blobs == [("c", "lost", lost)]
        assert rep.size_mismatches == [] and rep.rechecked == 2
        assert not rep.clean
        rep = await fsck(meta, blobs, repair=True, grace=0)  # quiet: the same verdict
        assert rep.missing_blobs == [("c", "lost", lost)] and rep.rechecked == 0
        assert rep.orphan_blobs == [] and rep.removed == 0
    finally:
        await meta.close()


async def test_a_wrong_size_is_reported_only_while_it_holds(tmp_path: Path) -> None:
    storage, meta, blobs = await _setup(tmp_path)
    try:
        await storage.put_object("c", "short", _body(b"x" * 100), content_type="x", meta={}, sysmeta={})
        await storage.put_object("c", "fixed", _body(b"y" * 100), content_type="x", meta={}, sysmeta={})
        for name in ("short", "fixed"):
            with open(blobs.blob_path((await storage.head_object("c", name)).blob_id), "r+b") as fh:
                fh.truncate(10)

        async def rewrite(other: Storage) -> None:  # "fixed" is uploaded again meanwhile
            await other.put_object("c", "fixed", _body(b"z" * 50), content_type="x", meta={}, sysmeta={})

        rep = await fsck(meta, blobs, repair=True, grace=0,
                         progress=_At("checking objects", lambda: _other_server(tmp_path, rewrite)))
        assert rep.size_mismatches == [("c", "short", 100, 10)] and rep.missing_blobs == []
    finally:
        await meta.close()


async def test_committed_blob_awaiting_its_metadata_is_never_an_orphan(tmp_path: Path) -> None:
    storage, meta, blobs = await _setup(tmp_path)
    try:
        w = blobs.writer()
        await w.write(b"committed, not yet recorded")
        blob_id = await w.commit()  # renamed into blobs/; the metadata transaction comes next
        os.utime(blobs.blob_path(blob_id), (HOUR_AGO, HOUR_AGO))
        with recording(blobs, blob_id):
            rep = await fsck(meta, blobs, repair=True, grace=0)
            assert rep.orphan_blobs == [] and rep.removed == 0 and rep.skipped_in_use == 1 and rep.clean
            assert blobs.blob_size(blob_id) == 27
            rec = ObjectRecord(container="c", name="o", blob_id=blob_id, size=27, etag="0" * 32,
                               content_type="x", last_modified=time.time(), data_timestamp=time.time())
            await meta.put_object(rec)
        rep = await fsck(meta, blobs, repair=True, grace=0)  # recorded and released: kept
        assert rep.orphan_blobs == [] and rep.skipped_in_use == 0 and rep.clean
        assert [c async for c in storage.read_object(await storage.head_object("c", "o"))] == [
            b"committed, not yet recorded"]

        # a writer whose transaction failed (and whose own delete did not happen, as after
        # a crash) releases its blob: a true orphan, removed
        w = blobs.writer()
        await w.write(b"never recorded")
        orphan = await w.commit()
        try:
            with recording(blobs, orphan):
                raise RuntimeError("metadata transaction failed")
        except RuntimeError:
            pass
        rep = await fsck(meta, blobs, repair=False, grace=0)
        assert rep.orphan_blobs == [orphan] and not rep.clean and blobs.blob_size(orphan) == 14
        rep = await fsck(meta, blobs, repair=True, grace=0)
        assert rep.orphan_blobs == [orphan] and rep.removed == 1 and rep.clean
        assert blobs.blob_size(orphan) is None
    finally:
        await meta.close()


async def test_paused_upload_keeps_its_temp_file(tmp_path: Path) -> None:
    storage, meta, blobs = await _setup(tmp_path)
    try:
        w = blobs.writer()
        await w.write(os.urandom(2 * 1024 * 1024))  # some of it on disk by now
        (ident,) = [i for i, _m in blobs.iter_partials()]
        deadline = time.monotonic() + 60
        while (blobs.tmp_dir / ident).stat().st_size < 2 * 1024 * 1024 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # the write runs in a thread
        os.utime(blobs.tmp_dir / ident, (HOUR_AGO, HOUR_AGO))  # paused for an hour
        for repair in (False, True):
            rep = await fsck(meta, blobs, repair=repair, grace=0)
            assert rep.partials == [] and rep.skipped_in_use == 1 and rep.clean
        await w.write(b"the rest")
        blob_id = await w.commit()  # the upload goes on as if nothing happened
        blobs.release(blob_id)
        assert blobs.blob_size(blob_id) == 2 * 1024 * 1024 + 8
    finally:
        await meta.close()


async def test_cancelled_metadata_transaction_keeps_the_blob_held(tmp_path: Path) -> None:
    """Cancelled while its metadata transaction runs (shutdown), a request keeps its blob
    held: the transaction may still commit in its thread, so fsck must not judge it."""
    blobs = FSBlobStore(tmp_path)
    w = blobs.writer()
    await w.write(b"x")
    blob_id = await w.commit()
    started = asyncio.Event()

    async def request() -> None:
        with recording(blobs, blob_id):
            started.set()
            await asyncio.sleep(3600)  # the transaction, still running

    task = asyncio.ensure_future(request())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with blobs.claim_blob(blob_id) as free:
        assert not free
