"""Container keys (bucket_namespace): the store keeps containers by a key the core
derives; a store from before keys is migrated (key = name) when it is opened."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from lampi.core import errors
from lampi.core.models import CKey, ObjectRecord, Project
from lampi.core.storage import Storage, namespace_problem
from lampi.store.blob.memory import MemoryBlobStore
from lampi.store.meta.sqlite import SQLiteMetaStore

# the containers table as lampi created it before container keys
OLD_CONTAINERS = """
CREATE TABLE containers (
    name TEXT PRIMARY KEY, project_id TEXT NOT NULL, created_at REAL NOT NULL,
    put_timestamp REAL NOT NULL, updated_at REAL NOT NULL, meta TEXT NOT NULL DEFAULT '{}',
    object_count INTEGER NOT NULL DEFAULT 0, bytes_used INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX containers_by_project ON containers (project_id, name);
"""


def _run(coro):  # noqa: ANN001, ANN202
    return asyncio.run(coro)


async def _project(meta: SQLiteMetaStore, pid: str) -> None:
    dom = await meta.get_domain("default")
    if dom is None:
        from lampi.core.models import Domain

        await meta.create_domain(Domain("default", "Default"))
    await meta.create_project(Project(pid, "name-" + pid, "default"))


def test_old_store_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "meta.db"

    async def make() -> None:
        meta = SQLiteMetaStore(path)
        await _project(meta, "p1")
        await meta.close()

    _run(make())
    conn = sqlite3.connect(path)
    conn.executescript("DROP TABLE containers;" + OLD_CONTAINERS)
    conn.execute("INSERT INTO containers VALUES ('old', 'p1', 1.0, 1.0, 1.0, '{\"a\": \"1\"}', 1, 3)")
    conn.execute("INSERT INTO objects (container, name, blob_id, size, etag, content_type, last_modified, "
                 "data_timestamp) VALUES ('old', 'o', 'b1', 3, 'e', 't', 1.0, 1.0)")
    conn.commit()
    conn.close()

    async def check() -> None:
        meta = SQLiteMetaStore(path)
        try:
            c = await meta.get_container(CKey("old"))
            assert c is not None and (c.key, c.name, c.project_id, c.meta) == ("old", "old", "p1", {"a": "1"})
            assert (c.object_count, c.bytes_used) == (1, 3)
            storage = Storage(meta, MemoryBlobStore(), "project")  # an old store, served per project
            found = await storage.container("p1", "old")
            assert found.key == "old"
            rec = await storage.head_object(found.key, "o")
            assert rec.blob_id == "b1"
            # a second project may now have its own "old"; the new one is keyed per project
            await _project(meta, "p2")
            assert await storage.create_container("p2", "old", {}) is True
            assert (await storage.container("p2", "old")).key == "p2/old"
            assert await meta.shared_names() == ["old"]
            problem = await namespace_problem(meta, "global")
            assert problem and "'old'" in problem
            assert await namespace_problem(meta, "project") is None
        finally:
            await meta.close()

    _run(check())
    cols = [r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(containers)")]
    assert cols[:3] == ["ckey", "name", "project_id"]


def test_global_and_project_uniqueness(tmp_path: Path) -> None:
    async def go() -> None:
        meta = SQLiteMetaStore(tmp_path / "meta.db")
        try:
            await _project(meta, "p1")
            await _project(meta, "p2")
            glob = Storage(meta, MemoryBlobStore(), "global")
            proj = Storage(meta, MemoryBlobStore(), "project")
            assert await glob.create_container("p1", "g", {}) is True
            with pytest.raises(errors.ContainerNameTaken):
                await glob.create_container("p2", "g", {})
            # per project, p2 may have "g" too (a store the global namespace then refuses)
            assert await proj.create_container("p2", "g", {}) is True
            assert (await proj.container("p1", "g")).key == "g"
            assert (await proj.container("p2", "g")).key == "p2/g"
            # objects are kept apart by key
            for pid, data in (("p1", b"one"), ("p2", b"two")):
                c = await proj.container(pid, "g")

                async def body(d: bytes = data):  # noqa: ANN202
                    yield d

                await proj.put_object(c.key, "o", body(), content_type="t", meta={}, sysmeta={})
            assert (await proj.head_object(CKey("g"), "o")).size == 3
            rec = await proj.head_object(CKey("p2/g"), "o")
            assert isinstance(rec, ObjectRecord) and rec.container == "p2/g"
            await proj.delete_object(CKey("p2/g"), "o")
            await proj.delete_container("p2", "g")
            assert await proj.lookup("p2", "g") is None
            assert (await proj.container("p1", "g")).object_count == 1
        finally:
            await meta.close()

    _run(go())


def test_bad_namespace_refused() -> None:
    with pytest.raises(ValueError, match="global, project"):
        Storage(None, None, "tenant")  # type: ignore[arg-type]
    assert time  # (imported for symmetry with other store tests)
