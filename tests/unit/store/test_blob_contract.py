"""The BlobStore contract over every implementation (FSBlobStore, MemoryBlobStore,
RadosBlobStore over a throw-away one-node Ceph: tests/conftest.py ``ceph``)."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from lampi.store.blob.base import READ_CHUNK
from lampi.store.blob.fs import WRITE_BUFFER, FSBlobStore
from lampi.store.blob.memory import MemoryBlobStore


@pytest.fixture(params=["fs", "memory", "rados"])
def blobs(request, tmp_path: Path):
    if request.param == "fs":
        return FSBlobStore(tmp_path / "blobs-root")
    if request.param == "rados":
        from lampi.store.blob.rados import RadosBlobStore
        from tests.conftest import CEPH_POOL

        ceph = request.getfixturevalue("ceph")
        # a RADOS namespace of its own per test: each sees an empty store; small stripes,
        # so that the contract's multi-chunk blobs span several RADOS objects
        return RadosBlobStore(CEPH_POOL, str(ceph.conf), "admin", namespace=uuid.uuid4().hex,
                              stripe_size=64 * 1024 + 1, in_flight=3)
    return MemoryBlobStore()


def payload(n: int, seed: int = 7) -> bytes:
    return bytes((i * 31 + seed) % 251 for i in range(n))


async def put(store, data: bytes, chunk: int = 1000) -> str:
    w = store.writer()
    for i in range(0, len(data), chunk):
        await w.write(data[i : i + chunk])
    assert w.size == len(data)
    return await w.commit()


async def read_all(store, blob_id: str, offset: int = 0, length: int | None = None) -> bytes:
    return b"".join([c async for c in store.read(blob_id, offset, length)])


def committed(store) -> dict[str, int]:
    return {b: size for b, size, _mtime in store.iter_blobs()}


def partials(store) -> set[str]:
    return {p for p, _mtime in store.iter_partials()}


async def test_write_commit_read(blobs):
    data = payload(3 * READ_CHUNK + 17)
    w = blobs.writer()
    assert partials(blobs) == {w.blob_id}
    await w.write(data[:10])
    await w.write(b"")
    await w.write(data[10:])
    blob_id = await w.commit()
    assert blob_id == w.blob_id
    assert await read_all(blobs, blob_id) == data
    assert committed(blobs) == {blob_id: len(data)}
    assert partials(blobs) == set()
    # chunks are bounded
    assert max([len(c) async for c in blobs.read(blob_id)]) <= READ_CHUNK


async def test_empty_blob(blobs):
    blob_id = await put(blobs, b"")
    assert await read_all(blobs, blob_id) == b""
    assert committed(blobs) == {blob_id: 0}


@pytest.mark.parametrize(
    "offset,length",
    [(0, 1), (5, 10), (0, None), (100, None), (READ_CHUNK - 1, 2), (1, READ_CHUNK + 5), (999, 1)],
)
async def test_ranged_reads(blobs, offset, length):
    data = payload(READ_CHUNK + 1000)
    blob_id = await put(blobs, data, chunk=4096)
    end = None if length is None else offset + length
    assert await read_all(blobs, blob_id, offset, length) == data[offset:end]


async def test_range_past_the_end(blobs):
    data = payload(100)
    blob_id = await put(blobs, data)
    assert await read_all(blobs, blob_id, 90, 50) == data[90:]
    assert await read_all(blobs, blob_id, 100, 10) == b""
    assert await read_all(blobs, blob_id, 500, None) == b""
    assert await read_all(blobs, blob_id, 0, 0) == b""


async def test_abort_leaves_nothing(blobs):
    keep = await put(blobs, b"keep me")
    w = blobs.writer()
    await w.write(payload(WRITE_BUFFER + 10))  # past the FS buffer: bytes hit the tmp file
    assert w.blob_id in partials(blobs)
    await w.abort()
    await w.abort()  # idempotent
    assert partials(blobs) == set()
    assert committed(blobs) == {keep: 7}
    if isinstance(blobs, FSBlobStore):
        assert os.listdir(blobs.tmp_dir) == []
        assert not blobs.path_for(w.blob_id).exists()


async def test_abort_before_any_write(blobs):
    w = blobs.writer()
    await w.abort()
    assert partials(blobs) == set()
    assert committed(blobs) == {}


async def test_commit_is_in_place_and_durable(tmp_path):
    store = FSBlobStore(tmp_path / "root")
    data = payload(WRITE_BUFFER * 2 + 3)
    blob_id = await put(store, data, chunk=65536)
    path = store.path_for(blob_id)
    assert path.is_file()
    assert path.read_bytes() == data
    assert store.local_path(blob_id) == path
    assert os.listdir(store.tmp_dir) == []
    # a new store on the same root (a restart) sees the committed blob
    again = FSBlobStore(tmp_path / "root")
    assert committed(again) == {blob_id: len(data)}
    assert await read_all(again, blob_id, 5, 5) == data[5:10]


def _write_and_hang(root: str, ready: Any) -> None:
    async def go() -> None:
        w = FSBlobStore(root).writer()
        await w.write(payload(WRITE_BUFFER + 1))
        ready.set()
        await asyncio.sleep(3600)

    asyncio.run(go())


async def test_interrupted_write_is_a_partial(tmp_path):
    """A writer never committed nor aborted shows up as a partial only; while its process
    lives the file is held (cannot be removed), once the process is killed it can."""
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    proc = ctx.Process(target=_write_and_hang, args=(str(tmp_path / "root"), ready), daemon=True)
    proc.start()
    try:
        assert await asyncio.to_thread(ready.wait, 60)
        store = FSBlobStore(tmp_path / "root")
        (ident,) = partials(store)
        assert committed(store) == {}
        assert store.remove_partial(ident) is False  # the upload holds it
        with store.claim_partial(ident) as free:
            assert not free
        assert partials(store) == {ident}
    finally:
        proc.kill()
        proc.join(60)
    restarted = FSBlobStore(tmp_path / "root")  # the writer's process is gone: a leftover
    assert partials(restarted) == {ident}
    assert restarted.remove_partial(ident) is True
    assert restarted.remove_partial(ident) is False  # gone: nothing to remove
    assert partials(restarted) == set()


async def test_writer_holds_its_blob_until_released(blobs):
    """From creation to release after commit, a blob's writer holds it: fsck's claims fail.
    (A blob of several RADOS stripes: a one-stripe blob's lock is left to lapse with its
    lease after release instead, test_rados_blobs.py.)"""
    data = payload(200 * 1024, seed=5)
    w = blobs.writer()
    await w.write(data)
    with blobs.claim_partial(w.blob_id) as free:
        assert not free
    assert blobs.remove_partial(w.blob_id) is False
    blob_id = await w.commit()
    with blobs.claim_blob(blob_id) as free:  # committed, metadata not recorded yet
        assert not free
    assert blobs.blob_size(blob_id) == len(data)
    blobs.release(blob_id)
    with blobs.claim_blob(blob_id) as free:
        assert free
    blobs.release(blob_id)  # twice is harmless
    await blobs.delete(blob_id)
    assert blobs.blob_size(blob_id) is None
    with blobs.claim_blob(blob_id) as free:
        assert not free  # nothing to claim


async def test_delete(blobs):
    a = await put(blobs, b"aaa")
    b = await put(blobs, b"bbbb")
    assert a != b
    await blobs.delete(a)
    await blobs.delete(a)  # deleting twice is fine
    await blobs.delete("0" * 32)  # so is deleting what never existed
    assert committed(blobs) == {b: 4}
    assert await read_all(blobs, b) == b"bbbb"
    with pytest.raises((FileNotFoundError, KeyError)):
        await read_all(blobs, a)


async def test_iter_blobs_and_partials(blobs):
    ids = {await put(blobs, payload(n, seed=n), chunk=7): n for n in (1, 10, 300)}
    w = blobs.writer()
    await w.write(b"x")
    assert committed(blobs) == ids
    assert w.blob_id in partials(blobs)
    assert w.blob_id not in committed(blobs)
    assert all(isinstance(m, float) for _b, _s, m in blobs.iter_blobs())
    await w.abort()
    assert partials(blobs) == set()
    await blobs.close()


async def test_memory_local_path_is_none():
    store = MemoryBlobStore()
    blob_id = await put(store, b"x")
    assert store.local_path(blob_id) is None


def test_check_passes_on_a_working_store(blobs):
    blobs.check()  # readiness (lampi.gateway.ops): raises only when the store cannot be reached


def test_fs_check_fails_when_the_directory_is_gone(tmp_path):
    from lampi.store.blob.fs import FSBlobStore

    store = FSBlobStore(tmp_path / "b")
    store.check()
    (tmp_path / "b" / "blobs").rename(tmp_path / "b" / "away")
    with pytest.raises(OSError):
        store.check()


async def test_writer_under_a_given_id_replaces_what_the_id_held(blobs):
    """``writer(blob_id=...)`` (lampi migrate): the blob is stored under that id; a blob
    committed under it, or an interrupted write's leftover, is replaced at commit."""
    bid = uuid.uuid4().hex
    w = blobs.writer(3, blob_id=bid)
    assert w.blob_id == bid
    await w.write(b"one")
    assert await w.commit() == bid
    blobs.release(bid)
    assert await read_all(blobs, bid) == b"one"
    big = payload(200 * 1024, seed=3)  # several RADOS stripes at the contract's stripe size
    assert await put_as(blobs, bid, big) == bid
    blobs.release(bid)
    assert await read_all(blobs, bid) == big
    assert blobs.blob_size(bid) == len(big)
    assert await put_as(blobs, bid, b"short again") == bid  # fewer stripes than before
    blobs.release(bid)
    assert await read_all(blobs, bid) == b"short again"
    assert committed(blobs) == {bid: 11}
    # an interrupted writer's leftover under the id (its process gone: nothing releases it)
    left = blobs.writer(None, blob_id=uuid.uuid4().hex)
    await left.write(payload(150 * 1024, seed=4))
    lost = left.blob_id
    # as a process killed mid-write would leave it: no abort, no release
    w2 = blobs.writer(None, blob_id=lost)
    await w2.write(b"fresh")
    assert await w2.commit() == lost
    blobs.release(lost)
    assert await read_all(blobs, lost) == b"fresh"
    await blobs.close()


async def put_as(store, blob_id: str, data: bytes) -> str:
    w = store.writer(len(data), blob_id=blob_id)
    for i in range(0, len(data), 4096):
        await w.write(data[i : i + 4096])
    return await w.commit()


def test_fs_writer_refuses_an_id_that_is_not_one_path_component(tmp_path):
    store = FSBlobStore(tmp_path / "b")
    for bad in ("../../etc/x", "a/b", "", "ab"):
        with pytest.raises(ValueError):
            store.writer(None, blob_id=bad)
    assert not list(store.iter_partials())
