"""fsck counts object versions' blobs as referenced, and a deleted version's blob is gone
(real SQLite MetaStore and filesystem BlobStore through the storage core)."""

from __future__ import annotations

import time

import pytest

from lampi.bg.fsck import fsck
from lampi.core import errors
from lampi.core.storage import Storage
from lampi.core.versions import ENABLED_KEY, VERSIONED_KEY
from lampi.store.blob.fs import FSBlobStore
from lampi.store.meta.sqlite import SQLiteMetaStore
from lampi.core.models import Domain, ListParams, Project


async def _body(data: bytes):  # noqa: ANN202
    yield data


async def _storage(tmp_path, container_meta: dict[str, str]) -> tuple[Storage, SQLiteMetaStore, FSBlobStore]:  # noqa: ANN001
    """Real SQLite metadata and filesystem blobs, project ``p1`` and its container ``c``."""
    meta = SQLiteMetaStore(tmp_path / "meta" / "lampi.db")
    blobs = FSBlobStore(tmp_path / "blobs")
    d = await meta.create_domain(Domain("default", "Default"))
    p = await meta.create_project(Project("p1", "p1", d.id))
    await meta.create_container(p.id, "c", container_meta, time.time())
    return Storage(meta, blobs), meta, blobs


async def test_fsck_keeps_version_blobs(tmp_path) -> None:  # noqa: ANN001
    storage, meta, blobs = await _storage(tmp_path, {ENABLED_KEY: "True", VERSIONED_KEY: "1"})
    try:
        recs = []
        for data in (b"first", b"second!", b"third"):
            recs.append(await storage.put_object("c", "o", _body(data), content_type="text/plain", meta={},
                                                 sysmeta={}))
        assert all(r.version_id for r in recs)
        existed, _marker = await storage.delete_current("c", "o")
        assert existed
        on_disk = {b for b, _s, _m in blobs.iter_blobs()}
        assert {r.blob_id for r in recs} <= on_disk  # every version keeps its blob
        rep = await fsck(meta, blobs, repair=True, grace=0)
        assert rep.clean and rep.orphan_blobs == [] and rep.missing_blobs == [] and rep.size_mismatches == []
        assert rep.objects == 3  # the three versions (the marker has no blob)
        assert {r.blob_id for r in recs} <= {b for b, _s, _m in blobs.iter_blobs()}
        # a deleted version's blob is released; fsck finds nothing else to remove
        found, _cur = await storage.delete_version("c", "o", recs[1].version_id)
        assert found and recs[1].blob_id not in {b for b, _s, _m in blobs.iter_blobs()}
        rep = await fsck(meta, blobs, repair=True, grace=0)
        assert rep.clean and rep.removed == 0 and rep.objects == 2
        assert (await meta.get_container("c")).bytes_used == len(b"first") + len(b"third")
        assert len(await storage.list_versions("c", ListParams(), None)) == 3
    finally:
        await meta.close()


async def test_conditional_delete_spares_a_replacement(tmp_path) -> None:  # noqa: ANN001
    """Storage.delete_object(if_record=...) (the lifecycle pass): an upload that replaced
    the judged version between the read and the delete is left alone, with its blob."""
    storage, meta, blobs = await _storage(tmp_path, {})
    try:
        old = await storage.put_object("c", "o", _body(b"old"), content_type="text/plain", meta={}, sysmeta={})
        new = await storage.put_object("c", "o", _body(b"new!"), content_type="text/plain", meta={}, sysmeta={})
        with pytest.raises(errors.PreconditionFailed):
            await storage.delete_object("c", "o", if_record=old)
        assert (await storage.head_object("c", "o")).blob_id == new.blob_id
        assert new.blob_id in {b for b, _s, _m in blobs.iter_blobs()}
        await storage.delete_object("c", "o", if_record=new)
        with pytest.raises(errors.ObjectNotFound):
            await storage.head_object("c", "o")
        with pytest.raises(errors.ObjectNotFound):
            await storage.delete_object("c", "o", if_record=new)
    finally:
        await meta.close()
