"""Accounts and containers of the SQLite MetaStore."""

from __future__ import annotations

import json
import sqlite3
import time

from lampi.core import errors
from lampi.core.models import Account, Container, ListingEntry, ListParams
from lampi.store.meta.sqlite.conn import SQLiteBase
from lampi.store.meta.sqlite.listing import fold_listing, range_fetch


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

        return await self._read(fn)

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

    async def list_containers(self, project_id: str, params: ListParams) -> list[ListingEntry]:
        def fn(c: sqlite3.Connection) -> list[ListingEntry]:
            fetch = range_fetch(
                c,
                "SELECT name, object_count, bytes_used, put_timestamp FROM containers WHERE project_id = ?",
                [project_id],
                params.reverse,
            )
            return fold_listing(
                fetch,
                params,
                lambda r: ListingEntry(name=r[0], count=r[1], bytes=r[2], last_modified=r[3]),
            )

        return await self._run(fn)

    async def create_container(
        self, project_id: str, name: str, meta: dict[str, str], timestamp: float
    ) -> bool:
        def fn(c: sqlite3.Connection) -> bool:
            row = c.execute("SELECT project_id, meta FROM containers WHERE name = ?", (name,)).fetchone()
            if row is not None:
                if row[0] != project_id:
                    raise errors.ContainerNameTaken()
                # a PUT on an existing container moves its put timestamp (Swift's
                # update_put_timestamp: X-PUT-Timestamp, Last-Modified, listings)
                c.execute(
                    "UPDATE containers SET meta = ?, updated_at = ?, put_timestamp = MAX(put_timestamp, ?) "
                    "WHERE name = ?",
                    (self._merge_meta(row[1], dict(meta)) if meta else row[1], timestamp, timestamp, name),
                )
                return False
            if c.execute("SELECT 1 FROM accounts WHERE project_id = ?", (project_id,)).fetchone() is None:
                raise errors.AccountNotFound()
            c.execute(
                "INSERT INTO containers (name, project_id, created_at, put_timestamp, updated_at, meta) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (name, project_id, timestamp, timestamp, timestamp, json.dumps(meta)),
            )
            c.execute(
                "UPDATE accounts SET container_count = container_count + 1 WHERE project_id = ?",
                (project_id,),
            )
            return True

        return await self._tx(fn)

    async def get_container(self, name: str) -> Container | None:
        def fn(c: sqlite3.Connection) -> Container | None:
            row = c.execute(
                "SELECT name, project_id, created_at, meta, object_count, bytes_used, put_timestamp, "
                "updated_at FROM containers WHERE name = ?",
                (name,),
            ).fetchone()
            if row is None:
                return None
            return Container(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], row[6], row[7])

        return await self._read(fn)

    async def containers_with_meta(self, key: str) -> list[Container]:
        """Every container whose metadata has ``key`` (the S3 lifecycle pass's scan)."""

        def fn(c: sqlite3.Connection) -> list[Container]:
            rows = c.execute(
                "SELECT name, project_id, created_at, meta, object_count, bytes_used, put_timestamp, "
                "updated_at FROM containers WHERE json_extract(meta, ?) IS NOT NULL ORDER BY name",
                ('$."' + key.replace('"', '') + '"',),
            ).fetchall()
            return [Container(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6], r[7]) for r in rows]

        return await self._run(fn)

    async def update_container_meta(self, name: str, updates: dict[str, str | None],
                                    put_timestamp: float | None = None) -> None:
        def fn(c: sqlite3.Connection) -> None:
            row = c.execute("SELECT meta, put_timestamp FROM containers WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise errors.ContainerNotFound()
            c.execute(
                "UPDATE containers SET meta = ?, updated_at = ?, put_timestamp = ? WHERE name = ?",
                (self._merge_meta(row[0], updates), time.time(),
                 row[1] if put_timestamp is None else max(row[1], put_timestamp), name),
            )

        await self._tx(fn)

    async def delete_container(self, project_id: str, name: str) -> None:
        def fn(c: sqlite3.Connection) -> None:
            row = c.execute(
                "SELECT project_id FROM containers WHERE name = ?", (name,)
            ).fetchone()
            if row is None or row[0] != project_id:
                raise errors.ContainerNotFound()
            if c.execute("SELECT 1 FROM objects WHERE container = ? LIMIT 1", (name,)).fetchone():
                raise errors.ContainerNotEmpty()
            if c.execute("SELECT 1 FROM object_versions WHERE container = ? LIMIT 1", (name,)).fetchone():
                raise errors.ContainerNotEmpty("Delete all versions before deleting container.")
            c.execute("DELETE FROM containers WHERE name = ?", (name,))
            # multipart uploads in progress go with the bucket; their part blobs are
            # then unreferenced and fsck collects them
            c.execute("DELETE FROM mpu_parts WHERE upload_id IN "
                      "(SELECT upload_id FROM mpu_uploads WHERE container = ?)", (name,))
            c.execute("DELETE FROM mpu_uploads WHERE container = ?", (name,))
            c.execute(
                "UPDATE accounts SET container_count = container_count - 1 WHERE project_id = ?",
                (project_id,),
            )

        await self._tx(fn, frees=True)
