"""The file store's early writeback (lampi.store.blob.fs, module docstring): each MiB a
large upload writes is handed to the disk at once, so the commit's fsync finds little
left to write. Measured effect: docs/benchmarks.md (session 10)."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from lampi.store.blob import fs
from lampi.store.blob.fs import WRITE_BUFFER, FSBlobStore

pytestmark = pytest.mark.skipif(fs._SYNC_RANGE is None, reason="sync_file_range is Linux's")


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, int, int]]:
    """Every sync_file_range call as (offset, length, flags, return value); the real
    call is still made."""
    real: Callable[[int, int, int, int], int] = fs._SYNC_RANGE  # type: ignore[assignment]
    seen: list[tuple[int, int, int, int]] = []

    def recorded(fd: int, offset: int, length: int, flags: int) -> int:
        rv = real(fd, offset, length, flags)
        seen.append((offset, length, flags, rv if rv == 0 else -ctypes.get_errno()))
        return rv

    monkeypatch.setattr(fs, "_SYNC_RANGE", recorded)
    return seen


async def write_blob(store: FSBlobStore, body: bytes, chunk: int) -> str:
    w = store.writer(size_hint=len(body))
    for i in range(0, len(body), chunk):
        await w.write(body[i:i + chunk])
    blob_id = await w.commit()
    store.release(blob_id)
    return blob_id


async def read_blob(store: FSBlobStore, blob_id: str) -> bytes:
    return b"".join([c async for c in store.read(blob_id)])


@pytest.mark.parametrize("chunk", [64 * 1024, 300_000, 3 * WRITE_BUFFER])
async def test_each_written_mib_is_handed_to_the_disk_in_order(tmp_path: Path, calls: list, chunk: int) -> None:
    store = FSBlobStore(tmp_path)
    body = os.urandom(3 * WRITE_BUFFER + 123_457)
    blob_id = await write_blob(store, body, chunk)
    assert await read_blob(store, blob_id) == body
    # contiguous ranges from offset 0, each accepted by the kernel (0: the binding's
    # argument types are right); the tail goes out with the commit's fsync, not here
    assert calls and all(flags == fs.SYNC_FILE_RANGE_WRITE and rv == 0 for _, _, flags, rv in calls)
    offsets = [o for o, _, _, _ in calls]
    assert offsets[0] == 0 and all(o + n == nxt for (o, n, _, _), nxt in zip(calls, offsets[1:]))
    end = calls[-1][0] + calls[-1][1]
    assert 0 < len(body) - end < WRITE_BUFFER  # only what was still buffered at commit


async def test_small_blobs_and_ephemeral_stores_skip_it(tmp_path: Path, calls: list) -> None:
    small = os.urandom(WRITE_BUFFER - 1)
    store = FSBlobStore(tmp_path / "durable")
    assert await read_blob(store, await write_blob(store, small, 4096)) == small
    ephemeral = FSBlobStore(tmp_path / "ephemeral", durable=False)  # lampi serve --ephemeral: no fsync either
    big = os.urandom(4 * WRITE_BUFFER)
    assert await read_blob(ephemeral, await write_blob(ephemeral, big, 65536)) == big
    assert calls == []
