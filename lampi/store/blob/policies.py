"""Storage policies over blob stores: one BlobStore per policy, one BlobStore to callers.

Each storage policy (setting ``storage_policies``) keeps its blobs in a store of its own
(a directory, or a Ceph RADOS pool: ``lampi.store.blob.rados``, behind the same BlobStore
protocol). The policy without a path uses the base store: the data dir's files, or the
pool of setting ``blob_url``. A blob's id says which store holds it, so reads, deletes and fsck never
need the object's container: ids of the policy whose root is the data dir (and of every
store from before policies) are the inner store's ids as they are; the others are
``<policy name>:<inner id>``. A policy's name is therefore part of its blobs' ids: a
policy cannot be renamed once it holds data.

``PolicyBlobStore`` is the BlobStore of all of them (routing by id: read, delete,
release, claims; enumerating every store for fsck and the start-up clean-up) and
``for_policy(name)`` the store new blobs of a container of that policy are written to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from lampi.store.blob.base import BlobStore, BlobWriter

SEP = ":"


class _PrefixedWriter:
    def __init__(self, inner: BlobWriter, prefix: str) -> None:
        self._inner = inner
        self._prefix = prefix

    @property
    def blob_id(self) -> str:
        return self._prefix + self._inner.blob_id

    @property
    def size(self) -> int:
        return self._inner.size

    async def write(self, chunk: bytes) -> None:
        await self._inner.write(chunk)

    async def commit(self) -> str:
        return self._prefix + await self._inner.commit()

    async def abort(self) -> None:
        await self._inner.abort()

    def __getattr__(self, name: str) -> Any:  # anything else a writer offers (e.g. release)
        return getattr(self._inner, name)


class PolicyBlobStore:
    """``stores``: policy name → its BlobStore; ``prefixed``: the names whose blob ids
    carry ``<name>:`` (all but the policy on the data dir); ``base``: the store of ids
    without a prefix (the data dir's, also when no policy uses it any more: blobs of
    older stores); ``default``: the policy ``writer()`` uses."""

    def __init__(self, stores: dict[str, BlobStore], prefixed: set[str], base: BlobStore, default: str) -> None:
        self.stores = stores
        self.prefixed = prefixed
        self.base = base
        self.default = default
        by_upper = {n.upper(): n for n in stores}
        self._canonical = by_upper

    # -- policies ---------------------------------------------------------------------

    def names(self) -> list[str]:
        return list(self.stores)

    def canonical(self, name: str) -> str | None:
        """The configured spelling of policy ``name`` (matched case-insensitively, as
        Swift does), None when there is no such policy."""
        return self._canonical.get(name.upper())

    def for_policy(self, name: str | None) -> BlobStore:
        """The store new blobs of policy ``name`` go to (None or unknown: the default)."""
        name = self.canonical(name or "") or self.default
        if name in self.prefixed:
            return _PrefixedStore(self, name)  # type: ignore[return-value]
        return self.stores[name]

    def _route(self, blob_id: str) -> tuple[BlobStore, str]:
        head, sep, rest = blob_id.partition(SEP)
        if sep and head in self.prefixed:
            return self.stores[head], rest
        return self.base, blob_id

    # -- the BlobStore protocol ----------------------------------------------------------

    def writer(self, size_hint: int | None = None, blob_id: str | None = None) -> BlobWriter:
        """A new blob of the default policy; with ``blob_id`` (lampi migrate), under that
        id, in the store the id names."""
        if blob_id is None:
            return self.for_policy(self.default).writer(size_hint)
        store, inner = self._route(blob_id)
        w = store.writer(size_hint, blob_id=inner)
        prefix = blob_id[: len(blob_id) - len(inner)]
        return _PrefixedWriter(w, prefix) if prefix else w  # type: ignore[return-value]

    def store_of(self, blob_id: str) -> BlobStore:
        """The store that holds (or would hold) the blob ``blob_id``."""
        return self._route(blob_id)[0]

    def read(self, blob_id: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        store, inner = self._route(blob_id)
        return store.read(inner, offset, length)

    def local_path(self, blob_id: str) -> Path | None:
        store, inner = self._route(blob_id)
        return store.local_path(inner)

    async def delete(self, blob_id: str, size: int | None = None) -> None:
        store, inner = self._route(blob_id)
        await store.delete(inner, size)

    def release(self, blob_id: str) -> None:
        store, inner = self._route(blob_id)
        store.release(inner)

    def blob_size(self, blob_id: str) -> int | None:
        store, inner = self._route(blob_id)
        return store.blob_size(inner)

    def claim_blob(self, blob_id: str) -> AbstractContextManager[bool]:
        store, inner = self._route(blob_id)
        return store.claim_blob(inner)

    def check(self) -> None:
        for _prefix, store in self._all():
            store.check()

    def _all(self) -> Iterator[tuple[str, BlobStore]]:
        """(id prefix, store) of every store, each once."""
        yield "", self.base
        for name in self.prefixed:
            yield name + SEP, self.stores[name]

    def iter_blobs(self) -> Iterator[tuple[str, int, float]]:
        for prefix, store in self._all():
            for blob_id, size, mtime in store.iter_blobs():
                yield prefix + blob_id, size, mtime

    def iter_partials(self) -> Iterator[tuple[str, float]]:
        for prefix, store in self._all():
            for ident, mtime in store.iter_partials():
                yield prefix + ident, mtime

    def claim_partial(self, ident: str) -> AbstractContextManager[bool]:
        store, inner = self._route(ident)
        return store.claim_partial(inner)

    def remove_partial(self, ident: str) -> bool:
        store, inner = self._route(ident)
        return store.remove_partial(inner)

    async def close(self) -> None:
        for _prefix, store in self._all():
            await store.close()


class _PrefixedStore:
    """The BlobStore of one prefixed policy, as callers see it (ids with the prefix)."""

    def __init__(self, parent: PolicyBlobStore, name: str) -> None:
        self._parent = parent
        self._inner = parent.stores[name]
        self._prefix = name + SEP

    def writer(self, size_hint: int | None = None, blob_id: str | None = None) -> BlobWriter:
        return _PrefixedWriter(self._inner.writer(size_hint, blob_id), self._prefix)  # type: ignore[return-value]

    def __getattr__(self, name: str) -> Any:  # reads, deletes, claims: by the full id
        return getattr(self._parent, name)


def open_policy_stores(settings: Any, min_free: Any = None, reserve: Any = None) -> PolicyBlobStore:
    """The stores of ``settings``' storage policies (lampi.config.PolicySpec): the base
    store is the data dir's files, or the RADOS pool of setting ``blob_url``; a policy
    with a ``rados://`` path has that pool, one with a directory its directory.
    ``min_free`` and the metadata ``reserve`` apply to file stores as to a single store
    (the reserve only on the data dir's filesystem)."""
    from lampi.store.blob.fs import FSBlobStore
    from lampi.store.space import MinFree

    mf = min_free if min_free is not None else MinFree()
    durable = not getattr(settings, "ephemeral", False)
    base: Any
    if getattr(settings, "blob_url", ""):
        from lampi.store.blob.rados import RadosBlobStore

        base = RadosBlobStore.from_url(settings.blob_url)
    else:
        base = FSBlobStore(settings.data_path, mf, reserve, durable=durable)
    stores: dict[str, BlobStore] = {}
    prefixed: set[str] = set()
    default = ""
    for spec in settings.policies():
        if spec.in_data_dir:
            stores[spec.name] = base
        elif spec.url:
            from lampi.store.blob.rados import RadosBlobStore

            stores[spec.name] = RadosBlobStore.from_url(spec.url)  # type: ignore[assignment]
            prefixed.add(spec.name)
        else:
            spec.root.mkdir(parents=True, exist_ok=True)
            stores[spec.name] = FSBlobStore(spec.root, mf, durable=durable)  # type: ignore[assignment]
            prefixed.add(spec.name)
        if spec.default:
            default = spec.name
    return PolicyBlobStore(stores, prefixed, base, default)  # type: ignore[arg-type]
