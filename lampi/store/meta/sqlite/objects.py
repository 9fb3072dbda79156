"""Objects of the SQLite MetaStore: rows, counters, listings, expiry and blob references
(also the row helpers that keep a replaced current object as a version)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Collection
from dataclasses import asdict, replace
from typing import Any

from lampi.core import errors, objectlock
from lampi.core.models import (INLINE_PREFIX, ListingEntry, ListParams, ManifestInfo, ObjectRecord, WriteCondition,
                               is_inline)
from lampi.core.versions import version_id
from lampi.store.meta import memo
from lampi.store.meta.sqlite.conn import SQLiteBase
from lampi.store.meta.sqlite.listing import fold_listing, range_fetch, raw_row



# (fsck) the bytes of an object's own blob: its manifest body (SLO, S3 multipart), an
# encrypted blob's size on disk (lampi.core.sse records it as "s3-sse-stored"), else size
_STORED_SIZE = ("CASE WHEN manifest IS NOT NULL THEN json_extract(manifest, '$.body_size') "
                "WHEN json_extract(sysmeta, '$.\"s3-sse-stored\"') IS NOT NULL "
                "THEN CAST(json_extract(sysmeta, '$.\"s3-sse-stored\"') AS INTEGER) ELSE size END")


class ObjectsMixin(SQLiteBase):
    # -- objects ----------------------------------------------------------------

    _OCOLS = (
        "container, name, blob_id, size, etag, content_type, last_modified, meta, sysmeta, "
        "delete_at, data_timestamp, manifest, version_id"
    )

    @staticmethod
    def _stored_size(size: int, manifest: str | None) -> int:
        """Bytes an object adds to bytes-used: its own blob (the manifest body for an
        SLO, as Swift counts an SLO's JSON, not its total). An S3 multipart object owns
        its part blobs, so it counts its whole size (as its segments count in Swift)."""
        if not manifest:
            return size
        m = json.loads(manifest)
        return size if m.get("kind") == "mpu" else int(m["body_size"])

    # ``lampi.core.models.is_inline`` in SQL, of column ``{c}`` (substr: both dialects)
    _INLINE_SQL = "substr({c}, 1, 1) = '" + INLINE_PREFIX + "'"

    # after ``_OCOLS``, an inline blob's bytes (``_object`` reads them as the record's
    # ``inline``): where reads are round trips (PostgreSQL), a GET reads them in the
    # statement reading its record (``find_container`` with ``obj`` and ``body``); a
    # SQLite GET reads them apart (``read_inline``, a point read on the loop), so that a
    # HEAD or any other reader of a record does not carry them
    _DATA_COL = ("(SELECT d.data FROM inline_blobs d WHERE " + _INLINE_SQL.format(c="{t}.blob_id")
                 + " AND d.blob_id = {t}.blob_id)")

    @staticmethod
    def _object(row: tuple[Any, ...] | None) -> ObjectRecord | None:
        if row is None:
            return None
        return ObjectRecord(
            container=row[0],
            name=row[1],
            blob_id=row[2],
            size=row[3],
            etag=row[4],
            content_type=row[5],
            last_modified=row[6],
            meta=json.loads(row[7]),
            sysmeta=json.loads(row[8]),
            delete_at=row[9],
            data_timestamp=row[10],
            manifest=ManifestInfo(**json.loads(row[11])) if row[11] else None,
            version_id=row[12],
            inline=bytes(row[13]) if len(row) > 13 and row[13] is not None else None,
        )

    @staticmethod
    def _freed(c: sqlite3.Connection, blob_id: str) -> str:
        """A blob no row refers to any more, in the transaction that released it: an
        inline blob is deleted here ("" returned: nothing left for the caller to
        delete), any other returned for the caller to delete after the commit."""
        if is_inline(blob_id):
            c.execute("DELETE FROM inline_blobs WHERE blob_id = ?", (blob_id,))
            return ""
        return blob_id

    @staticmethod
    def _adjust(c: sqlite3.Connection, container: str, objects: int, nbytes: int) -> None:
        row = c.execute(
            "UPDATE containers SET object_count = object_count + ?, bytes_used = bytes_used + ? "
            "WHERE ckey = ? RETURNING project_id",
            (objects, nbytes, container),
        ).fetchone()
        if row is None:
            raise errors.ContainerNotFound()
        c.execute(
            "UPDATE accounts SET object_count = object_count + ?, bytes_used = bytes_used + ? "
            "WHERE project_id = ?",
            (objects, nbytes, row[0]),
        )

    async def put_object(self, record: ObjectRecord, cond: WriteCondition | None = None,
                         null_write: bool = False) -> list[str]:
        return await self._tx(lambda c: self._put_row(c, record, cond, null_write), queue=record.container)

    @staticmethod
    def _values(record: ObjectRecord) -> tuple[Any, ...]:
        """``record`` as the ``_OCOLS`` values."""
        return (
            record.container,
            record.name,
            record.blob_id,
            record.size,
            record.etag,
            record.content_type,
            record.last_modified,
            json.dumps(record.meta),
            json.dumps(record.sysmeta),
            record.delete_at,
            record.data_timestamp or record.last_modified,
            json.dumps(asdict(record.manifest)) if record.manifest else None,
            record.version_id,
        )

    def _put_row(self, c: sqlite3.Connection, record: ObjectRecord, cond: WriteCondition | None = None,
                 null_write: bool = False) -> list[str]:
        """put_object's transaction body (shared with complete_upload); the blobs it
        released (the caller deletes them after the commit).

        With ``record.version_id`` (a versioned write, lampi/core/versions.py) the record
        also becomes a version row owning the blob, an unversioned current object is kept
        as a version (Swift's _copy_current; it stays the object's S3 "null" version) and
        nothing is released. A current object pointing at a version never owns its blob:
        replacing it releases nothing. An unversioned write is the object's null version:
        an earlier null version kept as a version row stops being null (Swift: it stays a
        version) or, with ``null_write`` (S3's suspended versioning), goes.
        Bytes-used counts each blob once: version rows and unversioned objects.

        ``cond`` (S3 If-Match / If-None-Match) is checked against the current object here,
        in the transaction that commits the write. Object lock (lampi/core/objectlock.py):
        a locked version is never released."""
        old = c.execute(
            "SELECT blob_id, size, manifest, version_id, delete_at, sysmeta FROM objects "
            "WHERE container = ? AND name = ?",
            (record.container, record.name),
        ).fetchone()
        if c.execute("SELECT 1 FROM containers WHERE ckey = ?", (record.container,)).fetchone() is None:
            raise errors.ContainerNotFound()
        now = time.time()
        if cond is not None:
            live = old is not None and (old[4] is None or old[4] > now)
            cond.check(self._object(c.execute(f"SELECT {self._OCOLS} FROM objects WHERE container = ? AND name = ?",
                                              (record.container, record.name)).fetchone()) if live else None)
        released: list[str] = []
        old_used = 0
        if old is not None and old[3] is None:
            old_used = self._stored_size(old[1], old[2])
            if record.version_id is not None:
                self._keep_as_version(c, record.container, record.name)
            else:
                self._check_lock(old[5], now)
                if old[0] != record.blob_id and self._freed(c, str(old[0])):
                    released.append(str(old[0]))
        if record.version_id is None:
            gone = c.execute("DELETE FROM null_versions WHERE container = ? AND name = ? RETURNING version_id",
                             (record.container, record.name)).fetchone()
            if gone is not None and null_write:  # S3: the new null version replaces the old one
                blob = self._drop_version(c, record.container, record.name, gone[0], now)
                if blob:
                    released.append(blob)
        else:
            self._insert_version(c, replace(record, delete_at=None))  # expiry applies to the current only
        if record.inline is not None:
            c.execute("INSERT OR REPLACE INTO inline_blobs (blob_id, data) VALUES (?, ?)",
                      (record.blob_id, record.inline))
        c.execute(
            f"INSERT OR REPLACE INTO objects ({self._OCOLS}) VALUES ({', '.join('?' * 13)})",
            self._values(record),
        )
        used = 0 if record.version_id is not None else self._stored_size(
            record.size, json.dumps(asdict(record.manifest)) if record.manifest else None)
        self._adjust(c, record.container, 1 if old is None else 0, used - old_used)
        return released

    @staticmethod
    def _check_lock(sysmeta: str, now: float, bypass_governance: bool = False) -> None:
        """ObjectLocked if a version with this (stored JSON) sysmeta may not go now."""
        if objectlock.may_lock(sysmeta):
            objectlock.check(json.loads(sysmeta), now, bypass_governance)

    def _drop_version(self, c: sqlite3.Connection, container: str, name: str, vid: str, now: float,
                      bypass_governance: bool = False) -> str:
        """Delete version row ``vid`` (lock permitting) and its bytes; its blob ("" for a
        delete marker or none). A current object pointing at it is the caller's business."""
        row = c.execute("SELECT sysmeta FROM object_versions WHERE container = ? AND name = ? AND version_id = ?",
                        (container, name, vid)).fetchone()
        if row is None:
            return ""
        self._check_lock(row[0], now, bypass_governance)
        row = c.execute("DELETE FROM object_versions WHERE container = ? AND name = ? AND version_id = ? "
                        "RETURNING blob_id, size, manifest", (container, name, vid)).fetchone()
        if row[0]:
            self._adjust(c, container, 0, -self._stored_size(row[1], row[2]))
        return self._freed(c, str(row[0]))

    # -- a replaced current object kept as a version (for _put_row; the versions API is in versions.py)

    def _insert_version(self, c: sqlite3.Connection, record: ObjectRecord) -> None:
        """A new version row (Conflict when the id exists); counts its blob's bytes."""
        try:
            c.execute(f"INSERT INTO object_versions ({self._OCOLS}) VALUES ({', '.join('?' * 13)})",
                      self._values(record))
        except sqlite3.IntegrityError:
            raise errors.Conflict("version exists") from None
        if record.blob_id:
            used = self._stored_size(record.size, json.dumps(asdict(record.manifest)) if record.manifest else None)
            self._adjust(c, record.container, 0, used)

    def _keep_as_version(self, c: sqlite3.Connection, container: str, name: str) -> None:
        """Copy the unversioned current object into a version row (id = its timestamp,
        moved on past a taken id); the caller replaces or deletes the current row."""
        rec = self._object(c.execute(f"SELECT {self._OCOLS} FROM objects WHERE container = ? AND name = ?",
                                     (container, name)).fetchone())
        assert rec is not None and rec.version_id is None
        ts = rec.last_modified
        while True:
            try:
                self._insert_version(c, replace(rec, version_id=version_id(ts), delete_at=None))
                break
            except errors.Conflict:
                ts += 0.00001
        # it was the object's null version and stays so (an earlier null row cannot exist:
        # an unversioned current object is the null version)
        c.execute("INSERT OR REPLACE INTO null_versions (container, name, version_id) VALUES (?, ?, ?)",
                  (container, name, version_id(ts)))

    async def get_object(self, container: str, name: str, now: float) -> ObjectRecord | None:
        def fn(c: sqlite3.Connection) -> ObjectRecord | None:
            return self._object(
                c.execute(
                    f"SELECT {self._OCOLS} FROM objects WHERE container = ? AND name = ?",
                    (container, name),
                ).fetchone()
            )

        rec, mark = memo.get(("object", container, name))
        if rec is memo.MISS:
            rec = await self._read(fn)
            memo.put(("object", container, name), rec, mark)
        if rec is not None and rec.delete_at is not None and rec.delete_at <= now:
            return None
        return rec  # type: ignore[no-any-return]

    async def objects_sysmeta(self, container: str, names: list[str], now: float) -> dict[str, dict[str, str]]:
        """System metadata of those of ``names`` that exist (and have not expired) in
        ``container``: one query per 500 names (symlink targets in JSON listings)."""

        def fn(c: sqlite3.Connection) -> dict[str, dict[str, str]]:
            out: dict[str, dict[str, str]] = {}
            for i in range(0, len(names), 500):
                chunk = names[i:i + 500]
                sql = ("SELECT name, sysmeta FROM objects WHERE container = ? AND (delete_at IS NULL OR delete_at > ?) "
                       "AND name IN (" + ",".join("?" * len(chunk)) + ")")
                for name, sysmeta in c.execute(sql, [container, now, *chunk]):
                    out[name] = json.loads(sysmeta)
            return out

        return await self._run(fn)

    async def update_object_meta(
        self,
        container: str,
        name: str,
        meta: dict[str, str],
        sysmeta: dict[str, str],
        content_type: str,
        delete_at: int | None,
        timestamp: float,
    ) -> None:
        def fn(c: sqlite3.Connection) -> None:
            if not c.execute(
                "UPDATE objects SET meta = ?, sysmeta = ?, content_type = ?, delete_at = ?, "
                "last_modified = ? WHERE container = ? AND name = ?",
                (json.dumps(meta), json.dumps(sysmeta), content_type, delete_at, timestamp, container, name),
            ).rowcount:
                raise errors.ObjectNotFound()
            # a current object pointing at a version: the POST updates that version too
            # (Swift follows the versions symlink); expiry stays the current's own
            c.execute(
                "UPDATE object_versions SET meta = ?, sysmeta = ?, content_type = ?, last_modified = ? "
                "WHERE container = ? AND name = ? AND version_id = "
                "(SELECT version_id FROM objects WHERE container = ? AND name = ?)",
                (json.dumps(meta), json.dumps(sysmeta), content_type, timestamp, container, name, container, name),
            )

        await self._tx(fn)

    async def delete_object(self, container: str, name: str, if_blob: str | None = None,
                            bypass_governance: bool = False) -> str | None:
        return await self._tx(lambda c: self._delete_row(c, container, name, if_blob, bypass_governance),
                              frees=True, queue=container)

    def _delete_row(self, c: sqlite3.Connection, container: str, name: str, if_blob: str | None = None,
                    bypass_governance: bool = False) -> str | None:
        """delete_object's transaction body: the blob released ("" for a current object
        pointing at a version, which keeps it), None when there was no such object."""
        row = c.execute("SELECT version_id, sysmeta FROM objects WHERE container = ? AND name = ?",
                        (container, name)).fetchone()
        if row is not None and row[0] is None:  # it owns its blob: object lock permitting
            self._check_lock(row[1], time.time(), bypass_governance)
        row = c.execute(
            "DELETE FROM objects WHERE container = ? AND name = ? AND (? IS NULL OR blob_id = ?) "
            "RETURNING blob_id, size, manifest, version_id",
            (container, name, if_blob, if_blob),
        ).fetchone()
        if row is None:
            return None
        if row[3] is not None:  # pointed at a version, which keeps the blob
            self._adjust(c, container, -1, 0)
            return ""
        self._adjust(c, container, -1, -self._stored_size(row[1], row[2]))
        return self._freed(c, str(row[0]))

    async def list_objects(self, container: str, params: ListParams, now: float,
                           raw: bool = False) -> list[Any]:
        """Listing entries; with ``raw``, each object is the row tuple as SQLite returns it,
        ``(name, size, etag, content_type, last_modified, manifest JSON or None, flags)``
        (subdirs stay ListingEntry). Speed: building a frozen dataclass per row was a fifth
        of a 10,000-object JSON listing; the JSON fast path renders the tuples directly
        (lampi.swift.listing.render_object_rows). The scan is a range scan of the
        (container, name) primary key either way.

        ``flags`` is 0 except for a zero-byte, non-manifest object whose sysmeta mentions
        the symlink target key (``MAY_LINK``) or a DLO manifest (``MAY_DLO``), and an
        object whose sysmeta names an S3 owner (``S3_OWNED``, for S3 listings): only those
        can be symlinks or DLOs, whose sysmeta the Swift JSON listing
        (lampi.swift.symlink.annotate_listing) and the S3 listing (real DLO sizes) then
        look up. Looking up every zero-byte object instead was half of a listing of
        10,000 empty objects."""

        def fn(c: sqlite3.Connection) -> list[Any]:
            fetch = range_fetch(
                c,
                "SELECT name, size, etag, content_type, last_modified, manifest, "
                "CASE WHEN size = 0 AND manifest IS NULL THEN "
                "(instr(sysmeta, '\"x-symlink-target\"') > 0) | (instr(sysmeta, '\"x-object-manifest\"') > 0) * 2 "
                "ELSE 0 END | (instr(sysmeta, '\"s3-owner\"') > 0) * 4 "
                "FROM objects WHERE container = ? AND (delete_at IS NULL OR delete_at > ?)",
                [container, now],
                params.reverse,
            )
            return fold_listing(
                fetch,
                params,
                raw_row if raw else lambda r: ListingEntry(
                    name=r[0], bytes=r[1], hash=r[2], content_type=r[3], last_modified=r[4],
                    # a manifest's listing carries its kind and body MD5 (Swift lists an SLO
                    # with the JSON's MD5 as hash and the SLO ETag as slo_etag)
                    extra={"manifest": json.loads(r[5])} if r[5] else None,
                ),
            )

        return await self._run(fn)

    # Every row that keeps a blob alive: objects, object versions, parts of multipart
    # uploads in progress, and the parts a completed upload's manifest owns while an
    # object or version still refers to that manifest (its body blob is the owner).
    # SLO/DLO segments are ordinary objects; symlinks and DLO manifests have blobs of
    # their own (zero or manifest bytes) in ``objects``. ``ids`` filters by blob id.
    _REFS_SQL = (
        "SELECT blob_id FROM objects{w} UNION "
        "SELECT blob_id FROM object_versions WHERE blob_id != ''{a} UNION "
        "SELECT blob_id FROM mpu_parts{w} UNION "
        "SELECT m.blob_id FROM manifest_parts m WHERE (EXISTS "
        "(SELECT 1 FROM objects o WHERE o.blob_id = m.owner) "
        "OR EXISTS (SELECT 1 FROM object_versions v WHERE v.blob_id = m.owner)){am}"
    )

    async def blob_refs(self) -> set[str]:
        # one statement: one read snapshot (a completed upload moves part blobs from
        # mpu_parts to manifest_parts in one transaction; separate reads could miss them)
        sql = self._REFS_SQL.format(w="", a="", am="")
        return await self._run(lambda c: {r[0] for r in c.execute(sql)})

    async def referenced_blobs(self, blob_ids: Collection[str]) -> set[str]:
        ids = json.dumps(list(blob_ids))
        inn = "blob_id IN (SELECT value FROM json_each(?1))"
        sql = self._REFS_SQL.format(w=f" WHERE {inn}", a=f" AND {inn}", am=f" AND m.{inn}")
        return await self._run(lambda c: {r[0] for r in c.execute(sql, (ids,))})

    async def objects_with_blobs(self, only: Collection[str] | None = None) -> list[tuple[str, str, str, int]]:
        where, args, inline = "", (), self._INLINE_SQL.format(c="blob_id")
        if only is not None:
            where, args = " AND blob_id IN (SELECT value FROM json_each(?1))", (json.dumps(list(only)),)
        return await self._run(
            lambda c: [
                tuple(r)  # type: ignore[misc]
                for r in c.execute(
                    f"SELECT container, name, blob_id, {_STORED_SIZE} "
                    f"FROM objects WHERE version_id IS NULL AND NOT {inline}{where} UNION ALL "
                    # object versions (delete markers have no blob), named as their URL
                    f"SELECT container, name || '?version-id=' || version_id, blob_id, {_STORED_SIZE} "
                    f"FROM object_versions WHERE blob_id != '' AND NOT {inline}{where} ORDER BY 1, 2",
                    args,
                )
            ]
        )

    # -- inline blobs (lampi.core.models.is_inline) ----------------------------------

    async def read_inline(self, blob_id: str) -> bytes | None:
        # a point read by key: on the event loop where the store reads so (_read)
        row = await self._read(lambda c: c.execute("SELECT data FROM inline_blobs WHERE blob_id = ?",
                                                   (blob_id,)).fetchone())
        return None if row is None else bytes(row[0])

    async def drop_inline(self, blob_id: str) -> None:
        await self._tx(lambda c: self._freed(c, blob_id), frees=True)

    async def inline_orphans(self) -> list[tuple[str, int]]:
        # one statement: the references and the inline blobs in one read snapshot (an
        # inline blob is written in the transaction that records its object)
        sql = ("SELECT d.blob_id, length(d.data) FROM inline_blobs d WHERE d.blob_id NOT IN ("
               + self._REFS_SQL.format(w="", a="", am="") + ")")
        return await self._run(lambda c: [(str(r[0]), int(r[1])) for r in c.execute(sql)])

    async def inline_missing(self) -> list[tuple[str, str, str]]:
        inline = self._INLINE_SQL.format(c="blob_id")
        sql = (f"SELECT container, name, blob_id FROM objects WHERE {inline} AND NOT EXISTS "
               "(SELECT 1 FROM inline_blobs d WHERE d.blob_id = objects.blob_id) UNION ALL "
               "SELECT container, name || '?version-id=' || version_id, blob_id FROM object_versions "
               f"WHERE {inline} AND NOT EXISTS "
               "(SELECT 1 FROM inline_blobs d WHERE d.blob_id = object_versions.blob_id)")
        return await self._run(lambda c: [(str(r[0]), str(r[1]), str(r[2])) for r in c.execute(sql)])

    async def take_lease(self, name: str, holder: str, ttl: float, now: float) -> bool:
        """Hold (or renew) lease ``name`` until ``now + ttl`` if it is free, expired or
        already ``holder``'s; False when another holder has it. One transaction."""
        def fn(c: sqlite3.Connection) -> bool:
            row = c.execute("SELECT holder, expires_at FROM leases WHERE name = ?", (name,)).fetchone()
            if row is not None and row[0] != holder and row[1] > now:
                return False
            c.execute("INSERT OR REPLACE INTO leases (name, holder, expires_at) VALUES (?, ?, ?)",
                      (name, holder, now + ttl))
            return True

        return await self._tx(fn, frees=True)

    # rows the expirer may remove: pointers to versions (the version stays) and unversioned
    # objects without a legal hold or a running retention (the parameter: now, as iso())
    _NOT_LOCKED = ("(version_id IS NOT NULL OR instr(sysmeta, '\"s3-l') = 0 OR "
                   "(COALESCE(json_extract(sysmeta, '$.\"s3-legal-hold\"'), '') != 'ON' AND "
                   "COALESCE(json_extract(sysmeta, '$.\"s3-lock-until\"'), '') <= ?))")

    async def reap_expired(self, now: float, limit: int) -> list[str]:
        """Remove up to ``limit`` objects whose delete_at has passed; return one entry per
        object removed: its blob id for the caller to delete, or "" when nothing is left
        for the caller (an inline blob, deleted here; a current object pointing at a version).

        One write transaction: each row is deleted only if it is still expired (a PUT
        or POST may have replaced it since), so several workers reaping at once never
        count a row twice and a retry is harmless.
        """

        def fn(c: sqlite3.Connection) -> list[str]:
            # an unversioned object under object lock stays (lampi/core/objectlock.py)
            rows = c.execute(
                "SELECT container, name FROM objects WHERE delete_at IS NOT NULL AND delete_at <= ? "
                f"AND {self._NOT_LOCKED} ORDER BY delete_at LIMIT ?",
                (now, objectlock.iso(now), limit),
            ).fetchall()
            blobs: list[str] = []
            for container, name in rows:
                row = c.execute(
                    "DELETE FROM objects WHERE container = ? AND name = ? AND delete_at IS NOT NULL "
                    f"AND delete_at <= ? AND {self._NOT_LOCKED} RETURNING blob_id, size, manifest, version_id",
                    (container, name, now, objectlock.iso(now)),
                ).fetchone()
                if row is not None and row[3] is not None:  # pointed at a version: it keeps the blob
                    self._adjust(c, container, -1, 0)
                    blobs.append("")
                elif row is not None:
                    self._adjust(c, container, -1, -self._stored_size(row[1], row[2]))
                    blobs.append(self._freed(c, str(row[0])))
            return blobs

        return await self._tx(fn, frees=True)
