"""Accounts and containers of the SQLite MetaStore."""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from lampi.core import errors
from lampi.core.models import Account, CKey, Container, ListingEntry, ListParams
from lampi.store.meta import memo
from lampi.store.meta.sqlite.conn import SQLiteBase
from lampi.store.meta.sqlite.listing import fold_listing, range_fetch


@functools.cache
def _container_object_join(kcols: str, ocols: str, data_col: str) -> tuple[str, int]:
    """The start of ``_find_with_object``'s statement (the container's columns, then its
    object's ``ocols`` and ``data_col``: ObjectsMixin's, beside ContainersMixin in the
    store), and how many columns are the container's: built once, not per request."""
    cols = ", ".join("c." + k.strip() for k in kcols.split(",")) + ", " + \
        ", ".join("o." + k.strip() for k in ocols.split(",")) + ", " + data_col.format(t="o")
    return (f"SELECT {cols} FROM containers c LEFT JOIN objects o ON o.container = c.ckey AND o.name = ? ",
            kcols.count(",") + 1)


class ContainersMixin(SQLiteBase):
    # -- accounts and containers ------------------------------------------------

    async def get_account(self, project_id: str) -> Account:
        def fn(c: sqlite3.Connection) -> Account:
            row = c.execute(
                "SELECT project_id, meta, created_at, container_count, object_count, bytes_used "
                "FROM accounts WHERE project_id = ?",
                (project_id,),
            ).fetchone()
            if row is None:
                raise errors.AccountNotFound()
            return Account(row[0], json.loads(row[1]), row[2], row[3], row[4], row[5])

        return await memo.read(("account", project_id), lambda: self._read(fn), self._shared)  # type: ignore[no-any-return]

    async def usage_by_project(self) -> list[tuple[str, int, int, int]]:
        def fn(c: sqlite3.Connection) -> list[tuple[str, int, int, int]]:
            return [(r[0], r[1], r[2], r[3]) for r in c.execute(
                "SELECT project_id, bytes_used, object_count, container_count FROM accounts ORDER BY project_id")]

        return await self._run(fn)

    async def ensure_account(self, project_id: str) -> None:
        """Make the account ``project_id`` (a storage account key) if it does not exist."""
        def fn(c: sqlite3.Connection) -> None:
            c.execute("INSERT OR IGNORE INTO accounts (project_id, created_at) VALUES (?, ?)",
                      (project_id, time.time()))

        await self._tx(fn)

    @staticmethod
    def _merge_meta(current: str, updates: dict[str, str | None]) -> str:
        meta = json.loads(current)
        for k, v in updates.items():
            if v is None or v == "":
                meta.pop(k, None)
            else:
                meta[k] = v
        return json.dumps(meta)

    async def update_account_meta(self, project_id: str, updates: dict[str, str | None]) -> None:
        def fn(c: sqlite3.Connection) -> None:
            row = c.execute("SELECT meta FROM accounts WHERE project_id = ?", (project_id,)).fetchone()
            if row is None:
                raise errors.AccountNotFound()
            c.execute(
                "UPDATE accounts SET meta = ? WHERE project_id = ?",
                (self._merge_meta(row[0], updates), project_id),
            )

        await self._tx(fn)

    _KCOLS = "ckey, name, project_id, created_at, meta, object_count, bytes_used, put_timestamp, updated_at, policy"

    @staticmethod
    def _container(r: tuple[Any, ...]) -> Container:
        return Container(name=r[1], project_id=r[2], created_at=r[3], meta=json.loads(r[4]), object_count=r[5],
                         bytes_used=r[6], put_timestamp=r[7], updated_at=r[8], key=CKey(r[0]), policy=r[9])

    async def list_containers(self, project_id: str, params: ListParams) -> list[ListingEntry]:
        def fn(c: sqlite3.Connection) -> list[ListingEntry]:
            fetch = range_fetch(
                c,
                "SELECT name, object_count, bytes_used, put_timestamp, policy FROM containers WHERE project_id = ?",
                [project_id],
                params.reverse,
            )
            return fold_listing(
                fetch,
                params,
                lambda r: ListingEntry(name=r[0], count=r[1], bytes=r[2], last_modified=r[3],
                                       extra={"policy": r[4]}),
            )

        return await self._run(fn)

    async def create_container(
        self, project_id: str, name: str, meta: dict[str, str], timestamp: float, *,
        key: CKey | None = None, global_names: bool = True, policy: str | None = None,
    ) -> bool:
        ckey = CKey(name) if key is None else key

        def fn(c: sqlite3.Connection) -> bool:
            if global_names:  # one container per name in the whole service
                row = c.execute("SELECT ckey, project_id, meta FROM containers WHERE name = ?", (name,)).fetchone()
            else:
                row = c.execute("SELECT ckey, project_id, meta FROM containers WHERE project_id = ? AND name = ?",
                                (project_id, name)).fetchone()
            if row is not None:
                if row[1] != project_id:
                    raise errors.ContainerNameTaken()
                # a PUT on an existing container moves its put timestamp (Swift's
                # update_put_timestamp: X-PUT-Timestamp, Last-Modified, listings)
                c.execute(
                    "UPDATE containers SET meta = ?, updated_at = ?, put_timestamp = MAX(put_timestamp, ?) "
                    "WHERE ckey = ?",
                    (self._merge_meta(row[2], dict(meta)) if meta else row[2], timestamp, timestamp, row[0]),
                )
                return False
            if c.execute("SELECT 1 FROM accounts WHERE project_id = ?", (project_id,)).fetchone() is None:
                raise errors.AccountNotFound()
            c.execute(
                "INSERT INTO containers (ckey, name, project_id, created_at, put_timestamp, updated_at, meta, policy) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (ckey, name, project_id, timestamp, timestamp, timestamp, json.dumps(meta), policy),
            )
            c.execute(
                "UPDATE accounts SET container_count = container_count + 1 WHERE project_id = ?",
                (project_id,),
            )
            return True

        return await self._tx(fn)

    # SQLite: container records read by this process, by their memo keys ("named", name, project)
    # and ("container", key): each with the mark of meta.db's committed state
    # (``SQLiteBase.changes``) taken before the read. While the mark is the same, no
    # transaction has committed since, in any process, so the record is what a read
    # would return now: an object GET or HEAD reads its container from here instead of
    # from the database (a statement and the record built: ~11% of a Swift HEAD's
    # instructions, docs/benchmarks.md session 18). Any commit (an object written into
    # the container moves its counts) changes the mark, so the next request reads anew.
    # The records are shared: never change one (or its ``meta``) in place.
    _CACHE_MAX = 1024  # records kept; past that all are dropped

    async def _cached_read(self, mkey: tuple[Any, ...],
                           fn: Callable[[sqlite3.Connection], Container | None]) -> Container | None:
        """The container under ``mkey`` as the request sees it: its memo, else this
        process's cache while meta.db is unchanged, else read by ``fn``; remembered by the
        request, under its key too."""
        found, memo_mark = memo.get(mkey)
        if found is not memo.MISS:
            return found  # type: ignore[no-any-return]
        mark = self.changes()
        got = self._ccache.get(mkey) if mark is not None else None
        if got is not None and got[0] == mark:
            found = got[1]
        else:
            found = await self._read(fn)
            self._keep(mkey, found, mark)
            if found is not None:
                self._keep(("container", found.key), found, mark)
        memo.put(mkey, found, memo_mark)
        if found is not None:
            memo.put(("container", found.key), found, memo_mark)
        return found  # type: ignore[no-any-return]

    def _keep(self, key: tuple[Any, ...], value: Container | None, mark: bytes | None) -> None:
        if mark is None:
            return
        cache = self._ccache
        if len(cache) >= self._CACHE_MAX:
            cache.clear()
        cache[key] = (mark, value)

    @functools.cached_property
    def _ccache(self) -> dict[tuple[Any, ...], tuple[bytes, Container | None]]:
        return {}

    async def get_container(self, key: CKey) -> Container | None:
        def fn(c: sqlite3.Connection) -> Container | None:
            row = c.execute(f"SELECT {self._KCOLS} FROM containers WHERE ckey = ?", (key,)).fetchone()
            return None if row is None else self._container(row)

        mkey = ("container", key)
        if self._shared is not None:  # PostgreSQL: reads requests share (memo.Shared)
            return await memo.read(mkey, lambda: self._read(fn), self._shared)  # type: ignore[no-any-return]
        return await self._cached_read(mkey, fn)

    async def find_container(self, name: str, project_id: str | None, obj: str | None = None,
                             body: bool = False) -> Container | None:
        """``obj``: the request goes on to read that object of the container: where reads
        are round trips (``_shared`` set: PostgreSQL), its record is read in the same
        statement and remembered for the request (``memo``), so that ``get_object`` does
        not go to the database again."""
        if obj is not None and self._shared is not None and memo.active():
            return await self._find_with_object(name, project_id, obj, body)

        def fn(c: sqlite3.Connection) -> Container | None:
            if project_id is None:
                row = c.execute(f"SELECT {self._KCOLS} FROM containers WHERE name = ? LIMIT 1", (name,)).fetchone()
            else:
                row = c.execute(f"SELECT {self._KCOLS} FROM containers WHERE project_id = ? AND name = ?",
                                (project_id, name)).fetchone()
            return None if row is None else self._container(row)

        mkey = ("named", name, project_id)
        if self._shared is not None:  # PostgreSQL: reads requests share (memo.Shared)
            _, mark0 = memo.get(("container", None))
            found = await memo.read(mkey, lambda: self._read(fn), self._shared)
            if found is not None:
                memo.put(("container", found.key), found, mark0)
            return found  # type: ignore[no-any-return]
        return await self._cached_read(mkey, fn)

    async def _find_with_object(self, name: str, project_id: str | None, obj: str, body: bool) -> Container | None:
        """The container and its object ``obj`` in one statement (a GET or HEAD of an
        object: 2 round trips were 1 when the container read was not shared), both
        remembered for the request as ``find_container`` and ``get_object`` would have."""
        found, mark = memo.get(("named", name, project_id))
        if found is not memo.MISS:
            return found  # type: ignore[no-any-return]
        # an inline blob's bytes only for a GET (a HEAD would carry them for nothing)
        join, width = _container_object_join(self._KCOLS, self._OCOLS,  # type: ignore[attr-defined]
                                             self._DATA_COL if body else "NULL")  # type: ignore[attr-defined]

        def fn(c: sqlite3.Connection) -> tuple[Container, Any] | None:
            if project_id is None:
                row = c.execute(join + "WHERE c.name = ? LIMIT 1", (obj, name)).fetchone()
            else:
                row = c.execute(join + "WHERE c.project_id = ? AND c.name = ?", (obj, project_id, name)).fetchone()
            if row is None:
                return None
            orow = row[width:]
            rec = None if orow[0] is None else self._object(orow)  # type: ignore[attr-defined]
            return self._container(row[:width]), rec

        got = await self._read(fn)
        if got is None:
            memo.put(("named", name, project_id), None, mark)
            return None
        container, rec = got
        memo.put(("named", name, project_id), container, mark)
        memo.put(("container", container.key), container, mark)
        memo.put(("object", container.key, obj), rec, mark)
        return container

    async def policy_stats(self, project_id: str) -> dict[str | None, tuple[int, int, int]]:
        def fn(c: sqlite3.Connection) -> dict[str | None, tuple[int, int, int]]:
            return {r[0]: (r[1], r[2], r[3]) for r in c.execute(
                "SELECT policy, COUNT(*), SUM(object_count), SUM(bytes_used) FROM containers "
                "WHERE project_id = ? GROUP BY policy", (project_id,))}

        return await self._run(fn)

    async def shared_names(self, limit: int = 10) -> list[str]:
        def fn(c: sqlite3.Connection) -> list[str]:
            return [r[0] for r in c.execute(
                "SELECT name FROM containers GROUP BY name HAVING COUNT(*) > 1 ORDER BY name LIMIT ?", (limit,))]

        return await self._run(fn)

    async def containers_with_meta(self, key: str) -> list[Container]:
        """Every container whose metadata has ``key`` (the S3 lifecycle pass's scan)."""

        def fn(c: sqlite3.Connection) -> list[Container]:
            rows = c.execute(
                f"SELECT {self._KCOLS} FROM containers WHERE json_extract(meta, ?) IS NOT NULL ORDER BY ckey",
                ('$."' + key.replace('"', '') + '"',),
            ).fetchall()
            return [self._container(r) for r in rows]

        return await self._run(fn)

    async def update_container_meta(self, key: CKey, updates: dict[str, str | None],
                                    put_timestamp: float | None = None) -> None:
        def fn(c: sqlite3.Connection) -> None:
            row = c.execute("SELECT meta, put_timestamp FROM containers WHERE ckey = ?", (key,)).fetchone()
            if row is None:
                raise errors.ContainerNotFound()
            c.execute(
                "UPDATE containers SET meta = ?, updated_at = ?, put_timestamp = ? WHERE ckey = ?",
                (self._merge_meta(row[0], updates), time.time(),
                 row[1] if put_timestamp is None else max(row[1], put_timestamp), key),
            )

        await self._tx(fn)

    async def delete_container(self, project_id: str, key: CKey) -> None:
        def fn(c: sqlite3.Connection) -> None:
            row = c.execute(
                "SELECT project_id FROM containers WHERE ckey = ?", (key,)
            ).fetchone()
            if row is None or row[0] != project_id:
                raise errors.ContainerNotFound()
            if c.execute("SELECT 1 FROM objects WHERE container = ? LIMIT 1", (key,)).fetchone():
                raise errors.ContainerNotEmpty()
            if c.execute("SELECT 1 FROM object_versions WHERE container = ? LIMIT 1", (key,)).fetchone():
                raise errors.ContainerNotEmpty("Delete all versions before deleting container.")
            c.execute("DELETE FROM containers WHERE ckey = ?", (key,))
            # multipart uploads in progress go with the bucket; their part blobs are
            # then unreferenced and fsck collects them
            c.execute("DELETE FROM mpu_parts WHERE upload_id IN "
                      "(SELECT upload_id FROM mpu_uploads WHERE container = ?)", (key,))
            c.execute("DELETE FROM mpu_uploads WHERE container = ?", (key,))
            c.execute(
                "UPDATE accounts SET container_count = container_count - 1 WHERE project_id = ?",
                (project_id,),
            )

        await self._tx(fn, frees=True)
