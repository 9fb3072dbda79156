"""In-memory BlobStore for unit tests and throw-away servers. Not durable."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from lampi.store.blob.base import READ_CHUNK


class MemoryBlobWriter:
    def __init__(self, store: MemoryBlobStore) -> None:
        self.store = store
        self.blob_id = uuid.uuid4().hex
        self.size = 0
        self._parts: list[bytes] = []
        store.partials[self.blob_id] = time.time()

    async def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self._parts.append(bytes(chunk))

    async def commit(self) -> str:
        self.store.blobs[self.blob_id] = (b"".join(self._parts), time.time())
        self.store.partials.pop(self.blob_id, None)
        return self.blob_id

    async def abort(self) -> None:
        self._parts = []
        self.store.partials.pop(self.blob_id, None)


class MemoryBlobStore:
    def __init__(self) -> None:
        self.blobs: dict[str, tuple[bytes, float]] = {}
        self.partials: dict[str, float] = {}

    def writer(self, size_hint: int | None = None) -> MemoryBlobWriter:
        return MemoryBlobWriter(self)

    def local_path(self, blob_id: str) -> Path | None:
        return None

    async def read(self, blob_id: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        data = self.blobs[blob_id][0]
        end = len(data) if length is None else min(len(data), offset + length)
        for i in range(offset, end, READ_CHUNK):
            yield data[i : min(end, i + READ_CHUNK)]

    async def delete(self, blob_id: str) -> None:
        self.blobs.pop(blob_id, None)

    def iter_blobs(self) -> Iterator[tuple[str, int, float]]:
        for k, (v, t) in list(self.blobs.items()):
            yield k, len(v), t

    def iter_partials(self) -> Iterator[tuple[str, float]]:
        yield from list(self.partials.items())

    def remove_partial(self, ident: str) -> None:
        self.partials.pop(ident, None)

    async def close(self) -> None:
        return None
