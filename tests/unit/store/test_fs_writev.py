"""The file store writes a large upload's chunks as they came (``writev`` of the chunks
gathered to ``WRITE_BUFFER``, lampi.store.blob.fs): every byte in order, however the
kernel splits the writes and however many chunks there are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lampi.store.blob import fs
from lampi.store.blob.fs import IOV_MAX, WRITE_BUFFER, FSBlobStore


async def put(store: FSBlobStore, chunks: list[bytes]) -> bytes:
    w = store.writer()
    for c in chunks:
        await w.write(c)
    blob_id = await w.commit()
    store.release(blob_id)
    return b"".join([c async for c in store.read(blob_id)])


async def test_short_writes_are_resumed_where_they_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``writev`` may write fewer bytes than asked (a signal, a full pipe, a quota): the
    rest follows, from inside a chunk as well as at a chunk's edge."""
    real = os.writev
    sizes: list[int] = []

    def short(fd: int, buffers: list) -> int:  # noqa: ANN001
        first = memoryview(buffers[0])
        n = real(fd, [first[:7777]] if len(first) > 7777 else buffers[:3])
        sizes.append(n)
        return n

    monkeypatch.setattr(fs.os, "writev", short)
    chunks = [os.urandom(n) for n in (100_000, 1, 65_536, 900_000, 3, 500_000, 7777, 12)]
    assert await put(FSBlobStore(tmp_path / "r"), chunks) == b"".join(chunks)
    assert len(sizes) > len(chunks)  # it did take several calls


async def test_more_chunks_than_one_writev_takes(tmp_path: Path) -> None:
    n = IOV_MAX * 2 + 5
    chunks = [bytes([i % 251]) * (WRITE_BUFFER // n + 1) for i in range(n)]
    assert sum(map(len, chunks)) >= WRITE_BUFFER  # one write of them all, from the loop's side
    assert await put(FSBlobStore(tmp_path / "r"), chunks) == b"".join(chunks)


async def test_chunks_of_every_kind_and_empty_ones(tmp_path: Path) -> None:
    data = os.urandom(3 * WRITE_BUFFER + 11)
    chunks: list = []
    pos, kinds = 0, [bytes, bytearray, memoryview]
    for i, size in enumerate([0, 1, WRITE_BUFFER - 1, 0, 2 * WRITE_BUFFER, 5, 10**9]):
        part = data[pos : pos + size]
        chunks.append(kinds[i % 3](part))
        pos += len(part)
    assert await put(FSBlobStore(tmp_path / "r"), chunks) == data
