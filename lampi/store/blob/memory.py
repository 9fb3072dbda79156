"""In-memory BlobStore for unit tests and throw-away servers. Not durable."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from lampi.store.blob.base import READ_CHUNK


class MemoryBlobWriter:
    def __init__(self, store: MemoryBlobStore, blob_id: str | None = None) -> None:
        self.store = store
        self.blob_id = blob_id or uuid.uuid4().hex
        self.size = 0
        self._parts: list[bytes] = []
        store.partials[self.blob_id] = time.time()

    async def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self._parts.append(bytes(chunk))

    async def commit(self) -> str:
        self.store.blobs[self.blob_id] = (b"".join(self._parts), time.time())
        self.store.partials.pop(self.blob_id, None)
        self.store.held.add(self.blob_id)
        return self.blob_id

    async def abort(self) -> None:
        self._parts = []
        self.store.partials.pop(self.blob_id, None)


class MemoryBlobStore:
    def __init__(self) -> None:
        self.blobs: dict[str, tuple[bytes, float]] = {}
        self.partials: dict[str, float] = {}  # writers in progress (no crash leaves any here)
        self.held: set[str] = set()  # committed, not yet released

    def writer(self, size_hint: int | None = None, blob_id: str | None = None) -> MemoryBlobWriter:
        return MemoryBlobWriter(self, blob_id)

    def local_path(self, blob_id: str) -> Path | None:
        return None

    def check(self) -> None:
        pass

    async def read(self, blob_id: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        data = self.blobs[blob_id][0]
        end = len(data) if length is None else min(len(data), offset + length)
        for i in range(offset, end, READ_CHUNK):
            yield data[i : min(end, i + READ_CHUNK)]

    async def delete(self, blob_id: str, size: int | None = None) -> None:
        self.blobs.pop(blob_id, None)

    def iter_blobs(self) -> Iterator[tuple[str, int, float]]:
        for k, (v, t) in list(self.blobs.items()):
            yield k, len(v), t

    def iter_partials(self) -> Iterator[tuple[str, float]]:
        yield from list(self.partials.items())

    def release(self, blob_id: str) -> None:
        self.held.discard(blob_id)

    def blob_size(self, blob_id: str) -> int | None:
        entry = self.blobs.get(blob_id)
        return None if entry is None else len(entry[0])

    @contextlib.contextmanager
    def claim_blob(self, blob_id: str) -> Iterator[bool]:
        yield blob_id in self.blobs and blob_id not in self.held

    @contextlib.contextmanager
    def claim_partial(self, ident: str) -> Iterator[bool]:
        yield False  # every partial here is a write in progress

    def remove_partial(self, ident: str) -> bool:
        return False

    async def close(self) -> None:
        return None
