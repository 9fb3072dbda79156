"""S3 multipart uploads of the SQLite MetaStore: uploads, parts, completion, and the
part blobs a completed upload's manifest owns."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from lampi.core import errors
from lampi.core.models import MultipartUpload, ObjectRecord, UploadPart, WriteCondition
from lampi.store.meta.sqlite.listing import _after
from lampi.store.meta.sqlite.objects import ObjectsMixin


class MultipartMixin(ObjectsMixin):
    # -- S3 multipart uploads -----------------------------------------------------

    _MUCOLS = ("upload_id, container, name, project_id, initiated, content_type, meta, sysmeta, "
              "checksum_alg, checksum_type, owner")
    _MPCOLS = "upload_id, part_number, blob_id, size, etag, last_modified, checksum"

    @staticmethod
    def _upload(row: tuple[Any, ...]) -> MultipartUpload:
        return MultipartUpload(row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]),
                               json.loads(row[7]), row[8], row[9], row[10])

    async def create_upload(self, upload: MultipartUpload) -> None:
        def fn(c: sqlite3.Connection) -> None:
            if c.execute("SELECT 1 FROM containers WHERE name = ?", (upload.container,)).fetchone() is None:
                raise errors.ContainerNotFound()
            c.execute(
                f"INSERT INTO mpu_uploads ({self._MUCOLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (upload.upload_id, upload.container, upload.name, upload.project_id, upload.initiated,
                 upload.content_type, json.dumps(upload.meta), json.dumps(upload.sysmeta),
                 upload.checksum_alg, upload.checksum_type, upload.owner),
            )

        await self._tx(fn)

    async def get_upload(self, upload_id: str) -> MultipartUpload | None:
        def fn(c: sqlite3.Connection) -> MultipartUpload | None:
            row = c.execute(f"SELECT {self._MUCOLS} FROM mpu_uploads WHERE upload_id = ?", (upload_id,)).fetchone()
            return self._upload(row) if row else None

        return await self._run(fn)

    async def list_uploads(
        self, container: str, prefix: str, key_marker: str, upload_id_marker: str, limit: int
    ) -> list[MultipartUpload]:
        def fn(c: sqlite3.Connection) -> list[MultipartUpload]:
            sql = f"SELECT {self._MUCOLS} FROM mpu_uploads WHERE container = ?"
            args: list[Any] = [container]
            if prefix:
                sql += " AND name >= ?"
                args.append(prefix)
                upper = _after(prefix)
                if upper is not None:
                    sql += " AND name < ?"
                    args.append(upper)
            if key_marker and upload_id_marker:
                sql += " AND (name > ? OR (name = ? AND upload_id > ?))"
                args += [key_marker, key_marker, upload_id_marker]
            elif key_marker:
                sql += " AND name > ?"
                args.append(key_marker)
            sql += " ORDER BY name, upload_id LIMIT ?"
            args.append(limit)
            return [self._upload(r) for r in c.execute(sql, args).fetchall()]

        return await self._run(fn)

    async def put_part(self, part: UploadPart) -> str | None:
        def fn(c: sqlite3.Connection) -> str | None:
            if c.execute("SELECT 1 FROM mpu_uploads WHERE upload_id = ?", (part.upload_id,)).fetchone() is None:
                raise errors.NotFound("upload not found")
            old = c.execute("SELECT blob_id FROM mpu_parts WHERE upload_id = ? AND part_number = ?",
                            (part.upload_id, part.part_number)).fetchone()
            c.execute(
                f"INSERT OR REPLACE INTO mpu_parts ({self._MPCOLS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (part.upload_id, part.part_number, part.blob_id, part.size, part.etag, part.last_modified,
                 part.checksum),
            )
            return str(old[0]) if old and old[0] != part.blob_id else None

        return await self._tx(fn)

    async def list_parts(self, upload_id: str, marker: int = 0, limit: int = 10000) -> list[UploadPart]:
        def fn(c: sqlite3.Connection) -> list[UploadPart]:
            rows = c.execute(
                f"SELECT {self._MPCOLS} FROM mpu_parts WHERE upload_id = ? AND part_number > ? "
                "ORDER BY part_number LIMIT ?",
                (upload_id, marker, limit),
            ).fetchall()
            return [UploadPart(*r) for r in rows]

        return await self._run(fn)

    async def complete_upload(
        self, upload_id: str, record: ObjectRecord, part_blobs: list[str], cond: WriteCondition | None = None,
        null_write: bool = False,
    ) -> tuple[list[str], list[str]]:
        """Make the upload the object ``record`` (an ``mpu`` manifest owning ``part_blobs``)
        in one transaction; ``cond`` and ``null_write`` as for ``put_object``.
        (blobs released by the replaced object, parts not used)."""
        def fn(c: sqlite3.Connection) -> tuple[list[str], list[str]]:
            if c.execute("SELECT 1 FROM mpu_uploads WHERE upload_id = ?", (upload_id,)).fetchone() is None:
                raise errors.NotFound("upload not found")
            have = {r[0] for r in c.execute("SELECT blob_id FROM mpu_parts WHERE upload_id = ?", (upload_id,))}
            used = set(part_blobs)
            if not used <= have:  # a part was replaced or the upload completed meanwhile
                raise errors.Conflict("a part changed while completing")
            old = self._put_row(c, record, cond, null_write)  # first: a failed condition changes nothing
            c.execute("DELETE FROM mpu_parts WHERE upload_id = ?", (upload_id,))
            c.execute("DELETE FROM mpu_uploads WHERE upload_id = ?", (upload_id,))
            c.executemany("INSERT OR IGNORE INTO manifest_parts (owner, blob_id) VALUES (?, ?)",
                          [(record.blob_id, b) for b in part_blobs])
            return old, sorted(have - used)

        return await self._tx(fn)

    async def abort_upload(self, upload_id: str) -> list[str] | None:
        def fn(c: sqlite3.Connection) -> list[str] | None:
            if not c.execute("DELETE FROM mpu_uploads WHERE upload_id = ?", (upload_id,)).rowcount:
                return None
            return [r[0] for r in c.execute(
                "DELETE FROM mpu_parts WHERE upload_id = ? RETURNING blob_id", (upload_id,)).fetchall()]

        return await self._tx(fn, frees=True)

    async def pending_part_bytes(self, project_id: str, container: str) -> tuple[int, int]:
        """Bytes in the parts of uploads in progress: (in ``container``, in the project)."""
        def fn(c: sqlite3.Connection) -> tuple[int, int]:
            row = c.execute(
                "SELECT COALESCE(SUM(CASE WHEN u.container = ? THEN p.size END), 0), COALESCE(SUM(p.size), 0) "
                "FROM mpu_uploads u JOIN mpu_parts p ON p.upload_id = u.upload_id WHERE u.project_id = ?",
                (container, project_id)).fetchone()
            return int(row[0]), int(row[1])

        return await self._run(fn)

    async def release_manifest(self, owner_blob_id: str) -> list[str]:
        # called for every released blob: a read first, a write only for an S3 manifest
        if not await self._read(lambda c: c.execute(
                "SELECT 1 FROM manifest_parts WHERE owner = ? LIMIT 1", (owner_blob_id,)).fetchone()):
            return []

        def fn(c: sqlite3.Connection) -> list[str]:
            if c.execute("SELECT 1 FROM objects WHERE blob_id = ? LIMIT 1", (owner_blob_id,)).fetchone() or \
                    c.execute("SELECT 1 FROM object_versions WHERE blob_id = ? LIMIT 1", (owner_blob_id,)).fetchone():
                return []  # still in use
            return [r[0] for r in c.execute(
                "DELETE FROM manifest_parts WHERE owner = ? RETURNING blob_id", (owner_blob_id,)).fetchall()]

        return await self._tx(fn, frees=True)
