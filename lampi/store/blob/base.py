"""The BlobStore protocol: object bytes, written once, read by range, deleted.

A writer goes ``write(chunk)* → commit()`` (durable: data and directory fsynced
before commit returns) or ``abort()``. Nothing a writer wrote is reachable until
commit returns its blob id and the metadata store records it. A committed blob stays
held by its writer — ``claim_blob`` says False, so fsck leaves it alone although no
metadata refers to it yet — until ``release(blob_id)``, which the caller makes once the
metadata transaction referring to it has finished (``lampi.core.blobwrite.recording``). Implementations:
``fs.FSBlobStore`` (local files), ``memory.MemoryBlobStore`` (tests, ephemeral).
``tests/unit/store/test_blob_contract.py`` is the contract.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

READ_CHUNK = 256 * 1024


class BlobStoreUnavailable(RuntimeError):
    """The blob store cannot be reached or opened at all (a Ceph cluster not answering,
    a pool that does not exist, librados not installed); the message says which."""


class BlobWriter(Protocol):
    blob_id: str
    size: int

    # the writer may keep ``chunk`` (not a copy) until it is written out: not changed once given
    async def write(self, chunk: bytes) -> None: ...
    async def commit(self) -> str: ...
    async def abort(self) -> None: ...


class BlobStore(Protocol):
    def writer(self, size_hint: int | None = None, blob_id: str | None = None) -> BlobWriter:
        """A new blob. ``size_hint`` (the bytes announced, when known) lets a store refuse
        it at once (``InsufficientStorage``) rather than part way. ``blob_id``: write it
        under this id, an id another store of lampi gave it (``lampi migrate``); what the
        store holds under that id already, committed or partial, is replaced at commit
        (the caller makes sure nothing else uses the id). Default: a new id."""
        ...

    def read(self, blob_id: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]: ...
    def local_path(self, blob_id: str) -> Path | None:
        """A file holding the blob's bytes, for zero-copy sends; None if not file-backed."""
        ...

    async def delete(self, blob_id: str, size: int | None = None) -> None:
        """Remove the blob (nothing if there is none). ``size``: its size when the
        caller knows it (from the metadata), which may spare a store a look-up."""
        ...
    def iter_blobs(self) -> Iterator[tuple[str, int, float]]:
        """(blob_id, size, mtime) of every committed blob, for fsck/GC."""
        ...

    def release(self, blob_id: str) -> None:
        """Stop holding a blob this process committed (see the module docstring)."""
        ...

    def iter_partials(self) -> Iterator[tuple[str, float]]:
        """(identifier, mtime) of uncommitted files: writes in progress, or leftovers of
        interrupted ones."""
        ...

    def blob_size(self, blob_id: str) -> int | None:
        """The committed blob's size now, None when there is no such blob."""
        ...

    def claim_blob(self, blob_id: str) -> AbstractContextManager[bool]:
        """While the ``with`` block runs, keep any writer from holding the blob: True when
        no writer held it (its metadata transaction, if any, has finished), False when a
        writer holds it or it is gone. fsck judges (and deletes) orphans only under it."""
        ...

    def claim_partial(self, ident: str) -> AbstractContextManager[bool]:
        """``claim_blob`` for an uncommitted file: False while a write is in progress."""
        ...

    def remove_partial(self, ident: str) -> bool:
        """Remove an uncommitted leftover unless a write still holds it; True if removed."""
        ...
    def check(self) -> None:
        """Raise OSError when the store cannot be reached (readiness)."""
        ...

    async def close(self) -> None: ...
