"""stream_to_blob: the one path request bodies take into a blob (PUT, UploadPart)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from lampi.core import errors
from lampi.core.blobwrite import HASH_BUFFER, stream_to_blob
from lampi.store.blob.fs import FSBlobStore
from lampi.store.blob.memory import MemoryBlobStore


@pytest.fixture(params=["fs", "memory"])
def blobs(request, tmp_path: Path):
    if request.param == "fs":
        return FSBlobStore(tmp_path / "root")
    return MemoryBlobStore()


async def chunks(data: bytes, sizes: list[int]):
    i = k = 0
    while i < len(data):
        n = sizes[k % len(sizes)]
        yield data[i: i + n]
        i, k = i + n, k + 1


async def read_all(store, blob_id: str) -> bytes:
    return b"".join([c async for c in store.read(blob_id)])


@pytest.mark.parametrize("size", [0, 1, HASH_BUFFER - 1, HASH_BUFFER, 3 * HASH_BUFFER + 12345])
async def test_bytes_and_md5_whatever_the_chunking(blobs, size: int) -> None:
    data = os.urandom(size)
    for sizes in ([65536], [1, 1000, 300000, 2 * HASH_BUFFER + 7]):
        blob_id, n, etag = await stream_to_blob(blobs, chunks(data, sizes), expected_size=size,
                                                expected_etag=hashlib.md5(data).hexdigest())
        assert n == size and etag == hashlib.md5(data).hexdigest()
        assert await read_all(blobs, blob_id) == data


@pytest.mark.parametrize("kwargs, exc", [
    ({"max_size": 2 * HASH_BUFFER}, errors.EntityTooLarge),
    ({"expected_size": 3 * HASH_BUFFER}, errors.IncompleteBody),
    ({"expected_etag": '"' + "0" * 32 + '"'}, errors.ChecksumMismatch),
])
async def test_refused_bodies_leave_nothing(blobs, kwargs: dict, exc: type) -> None:
    data = os.urandom(2 * HASH_BUFFER + 1)
    with pytest.raises(exc):
        await stream_to_blob(blobs, chunks(data, [70000]), **kwargs)
    assert list(blobs.iter_blobs()) == [] and list(blobs.iter_partials()) == []


async def test_a_failing_body_leaves_nothing(blobs) -> None:
    async def broken():
        yield os.urandom(HASH_BUFFER + 5)
        yield os.urandom(10)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await stream_to_blob(blobs, broken())
    assert list(blobs.iter_blobs()) == [] and list(blobs.iter_partials()) == []


async def test_hashing_queue_keeps_order_and_bounds_while_the_thread_lags(blobs, monkeypatch) -> None:
    """The loop hands chunks to the hashing thread faster than it hashes (slowed here):
    the digest is still the body's (groups hashed in order, none twice or lost) and the
    queue never holds more than ``HASH_QUEUE`` groups."""
    import time

    from lampi.core import blobwrite

    deepest = 0
    drain = blobwrite.PipelinedMD5._drain

    def slow_drain(self) -> None:  # noqa: ANN001
        nonlocal deepest
        deepest = max(deepest, len(self._queue))
        time.sleep(0.01)
        drain(self)

    monkeypatch.setattr(blobwrite.PipelinedMD5, "_drain", slow_drain)
    data = os.urandom(10 * HASH_BUFFER + 3)
    blob_id, n, etag = await stream_to_blob(blobs, chunks(data, [65536, 1, 200000]))
    assert (n, etag) == (len(data), hashlib.md5(data).hexdigest())
    assert await read_all(blobs, blob_id) == data
    assert 1 <= deepest <= blobwrite.HASH_QUEUE


async def test_small_bodies_are_hashed_without_a_thread(blobs, monkeypatch) -> None:
    import asyncio

    def no_thread(*a, **kw):  # noqa: ANN002, ANN003
        raise AssertionError("a small body went to a thread to be hashed")

    monkeypatch.setattr(asyncio, "to_thread", no_thread)
    if isinstance(blobs, FSBlobStore):
        pytest.skip("the file store writes in a thread of its own")
    data = os.urandom(HASH_BUFFER - 1)
    _blob_id, _n, etag = await stream_to_blob(blobs, chunks(data, [4096]))
    assert etag == hashlib.md5(data).hexdigest()
