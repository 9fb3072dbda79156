"""A request's metadata reads remembered for the request (lampi.store.meta.memo), on
both stores: a repeated read is answered from memory inside a scope, never outside
one; the request's own writes are seen; a read overtaken by a write is not kept."""

from __future__ import annotations

import asyncio
import time
import uuid

from lampi.core.models import Domain, ObjectRecord, Project
from lampi.store.meta import memo


def _rec(name: str, size: int) -> ObjectRecord:
    now = time.time()
    return ObjectRecord(container="c", name=name, blob_id=uuid.uuid4().hex, size=size, etag="e" * 32,
                        content_type="text/plain", last_modified=now, data_timestamp=now)


def _count_reads(meta, monkeypatch) -> list[int]:  # noqa: ANN001
    reads = [0]
    real = meta._read

    async def counting(fn):  # noqa: ANN001, ANN202
        reads[0] += 1
        return await real(fn)

    monkeypatch.setattr(meta, "_read", counting)
    return reads


async def test_reads_remembered_in_a_scope_and_writes_seen(meta, monkeypatch) -> None:  # noqa: ANN001
    d = await meta.create_domain(Domain("default", "Default"))
    p = await meta.create_project(Project(uuid.uuid4().hex, "p", d.id))
    await meta.create_container(p.id, "c", {}, time.time())
    await meta.put_object(_rec("o", 3))
    reads = _count_reads(meta, monkeypatch)

    await meta.get_container("c")
    await meta.get_container("c")
    assert reads[0] == 2  # outside a scope: every read goes to the store

    with memo.scope():
        reads[0] = 0
        found = await meta.find_container("c", p.id)
        assert await meta.get_container("c") == found  # the same record, by key: no read
        assert (await meta.get_object("c", "o", time.time())).size == 3
        assert (await meta.get_object("c", "o", time.time())).size == 3
        acct = await meta.get_account(p.id)
        assert await meta.get_account(p.id) == acct
        assert reads[0] == 3
        # the request's own write is seen by its next reads
        await meta.put_object(_rec("o", 7))
        assert (await meta.get_object("c", "o", time.time())).size == 7
        assert (await meta.get_container("c")).bytes_used == 7
        assert (await meta.get_account(p.id)).bytes_used == 7
        assert reads[0] == 6
        # an object remembered is not served past its expiry
        from dataclasses import replace
        await meta.put_object(replace(_rec("x", 1), delete_at=int(time.time()) + 5))
        assert await meta.get_object("c", "x", time.time()) is not None
        assert await meta.get_object("c", "x", time.time() + 10) is None
    # the scope ended: reads go to the store again
    reads[0] = 0
    await meta.get_container("c")
    assert reads[0] == 1


async def test_a_read_overtaken_by_a_write_is_not_kept(meta) -> None:  # noqa: ANN001
    d = await meta.create_domain(Domain("default", "Default"))
    p = await meta.create_project(Project(uuid.uuid4().hex, "p", d.id))
    await meta.create_container(p.id, "c", {}, time.time())
    with memo.scope():
        value, mark = memo.get(("container", "c"))
        assert value is memo.MISS
        before = await meta.get_container("c")
        memo.forget()  # as a write of another task of the request would, after the read began
        memo.put(("container", "c"), before, mark)
        assert memo.get(("container", "c"))[0] is memo.MISS
        # tasks the request starts share its memo
        await asyncio.gather(meta.get_container("c"))
        assert memo.get(("container", "c"))[0] == before
