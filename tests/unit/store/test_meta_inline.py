"""The MetaStore contract for inline blobs (lampi.core.models.is_inline): bytes written
in the transaction recording their object, read with it, deleted by the transaction
releasing them. Every implementation (``meta_backend`` params) must pass."""

from __future__ import annotations

import time
import uuid

from lampi.core.versions import version_id
from tests.unit.store.test_meta_contract import counters, rec, setup_project


def iid() -> str:
    return "~" + uuid.uuid4().hex


async def test_inline_bytes_written_read_and_released_with_their_object(meta):
    p = await setup_project(meta)
    await meta.create_container(p.id, "c", {}, time.time())
    first = rec("c", "o", size=5, blob_id=iid(), inline=b"hello")
    assert await meta.put_object(first) == []
    got = await meta.get_object("c", "o", time.time())
    assert got == first  # (its bytes are read with it by a GET's find_container: test_postgres_store.py)
    assert await meta.read_inline(first.blob_id) == b"hello"
    assert await counters(meta, p.id, "c") == (1, 1, 5, 1, 5)
    assert first.blob_id in await meta.blob_refs()
    assert await meta.objects_with_blobs() == []  # not the blob store's to check

    # replaced by another inline object: the old bytes go in the same transaction,
    # nothing is left for the caller to delete
    second = rec("c", "o", size=3, blob_id=iid(), inline=b"abc")
    assert await meta.put_object(second) == []
    assert await meta.read_inline(first.blob_id) is None
    assert await meta.read_inline((await meta.get_object("c", "o", time.time())).blob_id) == b"abc"
    # replaced by an object with a blob in the blob store, and back
    third = rec("c", "o", size=4)
    assert await meta.put_object(third) == []
    assert await meta.read_inline(second.blob_id) is None
    assert (await meta.get_object("c", "o", time.time())).blob_id == third.blob_id
    fourth = rec("c", "o", size=0, blob_id=iid(), inline=b"")
    assert await meta.put_object(fourth) == [third.blob_id]
    assert await meta.read_inline((await meta.get_object("c", "o", time.time())).blob_id) == b""
    assert await counters(meta, p.id, "c") == (1, 1, 0, 1, 0)

    assert await meta.delete_object("c", "o") == ""  # found; its bytes deleted with it
    assert await meta.read_inline(fourth.blob_id) is None
    assert await meta.delete_object("c", "o") is None
    assert await counters(meta, p.id, "c") == (1, 0, 0, 0, 0)
    assert await meta.inline_orphans() == [] and await meta.inline_missing() == []


async def test_inline_versions_and_expiry(meta):
    p = await setup_project(meta)
    await meta.create_container(p.id, "c", {}, time.time())
    t = time.time()
    v1 = rec("c", "o", size=3, blob_id=iid(), inline=b"one", last_modified=t, version_id=version_id(t))
    v2 = rec("c", "o", size=3, blob_id=iid(), inline=b"two", last_modified=t + 1, version_id=version_id(t + 1))
    await meta.put_object(v1)
    await meta.put_object(v2)
    assert await meta.read_inline(v1.blob_id) == b"one"  # kept with its version
    assert (await meta.get_version("c", "o", version_id(t))).blob_id == v1.blob_id
    found, blob, _current = await meta.delete_version("c", "o", version_id(t))
    assert found and not blob  # deleted in the transaction
    assert await meta.read_inline(v1.blob_id) is None
    assert await meta.read_inline(v2.blob_id) == b"two"

    # an expired object's bytes go with it when it is reaped
    gone = rec("c", "x", size=2, blob_id=iid(), inline=b"xx", delete_at=int(time.time()) - 1)
    await meta.put_object(gone)
    assert await meta.reap_expired(time.time(), 100) == [""]  # one object, nothing left to delete
    assert await meta.read_inline(gone.blob_id) is None


async def test_inline_orphans_and_missing(meta):
    p = await setup_project(meta)
    await meta.create_container(p.id, "c", {}, time.time())
    kept = rec("c", "kept", size=1, blob_id=iid(), inline=b"k")
    lost = rec("c", "lost", size=1, blob_id=iid(), inline=b"l")
    await meta.put_object(kept)
    await meta.put_object(lost)
    await meta.drop_inline(lost.blob_id)  # as damage would
    assert await meta.inline_missing() == [("c", "lost", lost.blob_id)]
    # released by a path that leaves the bytes to the caller (S3's delete of the null
    # version): an orphan until the caller drops it, which fsck finds meanwhile
    found, blob, _marker = await meta.delete_null("c", "kept")
    assert found
    if blob:
        assert await meta.inline_orphans() == [(kept.blob_id, 1)]
        await meta.drop_inline(blob)
    assert await meta.inline_orphans() == []
    assert await meta.read_inline(kept.blob_id) is None
