"""Object versions of the SQLite MetaStore (lampi/core/versions.py): version rows,
delete markers, restore and the ``?versions`` listing."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from lampi.core import errors, objectlock
from lampi.core.models import ListingEntry, ListParams, ObjectRecord
from lampi.core.versions import DELETE_MARKER, EMPTY_MD5, version_id
from lampi.store.meta.sqlite.listing import _after, _Scan
from lampi.store.meta.sqlite.objects import ObjectsMixin


class VersionsMixin(ObjectsMixin):
    # -- object versions (lampi/core/versions.py) ------------------------------------

    async def get_version(self, container: str, name: str, vid: str) -> ObjectRecord | None:
        return await self._run(lambda c: self._object(c.execute(
            f"SELECT {self._OCOLS} FROM object_versions WHERE container = ? AND name = ? AND version_id = ?",
            (container, name, vid)).fetchone()))

    def _insert_marker(self, c: sqlite3.Connection, container: str, name: str, ts: float) -> str:
        while True:
            vid = version_id(ts)
            try:
                self._insert_version(c, ObjectRecord(
                    container=container, name=name, blob_id="", size=0, etag=EMPTY_MD5,
                    content_type=DELETE_MARKER, last_modified=ts, data_timestamp=ts, version_id=vid))
                return vid
            except errors.Conflict:
                ts += 0.00001

    async def delete_current(self, container: str, name: str, ts: float, now: float, suspended: bool = False,
                             bypass_governance: bool = False) -> tuple[bool, str, list[str]]:
        """A DELETE with versioning: a delete marker replaces the current object.
        Enabled: an unversioned current object is kept as a version (the null one).
        ``suspended`` (S3's suspended versioning): the object's null version, current or
        not, goes (object lock permitting) and the marker is the new null version.
        (existed, marker id, released blobs)."""
        def fn(c: sqlite3.Connection) -> tuple[bool, str, list[str]]:
            if c.execute("SELECT 1 FROM containers WHERE name = ?", (container,)).fetchone() is None:
                raise errors.ContainerNotFound()
            old = c.execute("SELECT version_id, delete_at, blob_id, sysmeta FROM objects "
                            "WHERE container = ? AND name = ?", (container, name)).fetchone()
            existed, released = False, []
            if old is not None:
                expired = old[1] is not None and old[1] <= now
                existed = not expired
                if old[0] is None:  # unversioned: the null version
                    if suspended:
                        self._check_lock(old[3], time.time(), bypass_governance)
                        released.append(str(old[2]))
                    elif expired and not (objectlock.may_lock(old[3]) and objectlock.blocker(
                            json.loads(old[3]), time.time()) is not None):
                        released.append(str(old[2]))
                    else:
                        self._keep_as_version(c, container, name)
                row = c.execute("DELETE FROM objects WHERE container = ? AND name = ? "
                                "RETURNING size, manifest, version_id", (container, name)).fetchone()
                self._adjust(c, container, -1, 0 if row[2] is not None else -self._stored_size(row[0], row[1]))
            if suspended:
                gone = c.execute("SELECT version_id FROM null_versions WHERE container = ? AND name = ?",
                                 (container, name)).fetchone()
                if gone is not None:
                    blob = self._drop_version(c, container, name, gone[0], time.time(), bypass_governance)
                    if blob:
                        released.append(blob)
            vid = self._insert_marker(c, container, name, ts)
            if suspended:
                c.execute("INSERT OR REPLACE INTO null_versions (container, name, version_id) VALUES (?, ?, ?)",
                          (container, name, vid))
            return existed, vid, released

        return await self._tx(fn, frees=True)

    def _promote(self, c: sqlite3.Connection, container: str, name: str) -> str | None:
        """S3: with no current object, the newest version becomes current (a pointer),
        unless it is a delete marker. The current version id after (None: none)."""
        cur = c.execute("SELECT version_id FROM objects WHERE container = ? AND name = ?",
                        (container, name)).fetchone()
        if cur is not None:
            return cur[0] or "null"
        v = self._object(c.execute(
            f"SELECT {self._OCOLS} FROM object_versions WHERE container = ? AND name = ? "
            "ORDER BY version_id DESC LIMIT 1", (container, name)).fetchone())
        if v is None or v.content_type == DELETE_MARKER:
            return None
        c.execute(f"INSERT INTO objects ({self._OCOLS}) VALUES ({', '.join('?' * 13)})", self._values(v))
        self._adjust(c, container, 1, 0)
        return v.version_id

    async def delete_version(self, container: str, name: str, vid: str, promote: bool = False,
                             bypass_governance: bool = False) -> tuple[bool, str | None, str]:
        """Delete version ``vid`` and its bytes (object lock permitting); a current object
        pointing at it goes too (as Swift). With ``promote`` (S3) the newest remaining
        version then becomes current. (found, its blob, current version id after)."""
        def fn(c: sqlite3.Connection) -> tuple[bool, str | None, str]:
            found = c.execute("SELECT 1 FROM object_versions WHERE container = ? AND name = ? AND version_id = ?",
                              (container, name, vid)).fetchone() is not None
            blob = self._drop_version(c, container, name, vid, time.time(), bypass_governance) if found else ""
            cur = c.execute("SELECT version_id FROM objects WHERE container = ? AND name = ?",
                            (container, name)).fetchone()
            if found and cur is not None and cur[0] == vid:  # it was current: the link goes too, as in Swift
                c.execute("DELETE FROM objects WHERE container = ? AND name = ?", (container, name))
                self._adjust(c, container, -1, 0)
                cur = None
            if promote and found:
                return True, blob or None, self._promote(c, container, name) or "null"
            return found, blob or None, (cur[0] or "null") if cur else "null"

        return await self._tx(fn, frees=True)

    async def delete_null(self, container: str, name: str, promote: bool = False,
                          bypass_governance: bool = False) -> tuple[bool, str | None, bool]:
        """S3 ``DELETE ?versionId=null``: the object's null version — the unversioned
        current object, or the version row kept as null — object lock permitting; with
        ``promote`` the newest remaining version then becomes current.
        (found, its blob, whether it was a delete marker)."""
        def fn(c: sqlite3.Connection) -> tuple[bool, str | None, bool]:
            now = time.time()
            old = c.execute("SELECT version_id, sysmeta FROM objects WHERE container = ? AND name = ?",
                            (container, name)).fetchone()
            found, blob, marker = False, "", False
            if old is not None and old[0] is None:
                self._check_lock(old[1], now, bypass_governance)
                row = c.execute("DELETE FROM objects WHERE container = ? AND name = ? "
                                "RETURNING blob_id, size, manifest", (container, name)).fetchone()
                self._adjust(c, container, -1, -self._stored_size(row[1], row[2]))
                found, blob = True, str(row[0])
            else:
                nv = c.execute("SELECT n.version_id, v.content_type FROM null_versions n JOIN object_versions v "
                               "ON v.container = n.container AND v.name = n.name AND v.version_id = n.version_id "
                               "WHERE n.container = ? AND n.name = ?", (container, name)).fetchone()
                if nv is not None:
                    found, marker = True, nv[1] == DELETE_MARKER
                    blob = self._drop_version(c, container, name, nv[0], now, bypass_governance)
                    if old is not None and old[0] == nv[0]:
                        c.execute("DELETE FROM objects WHERE container = ? AND name = ?", (container, name))
                        self._adjust(c, container, -1, 0)
            if promote and found:
                self._promote(c, container, name)
            return found, blob or None, marker

        return await self._tx(fn, frees=True)

    async def null_version(self, container: str, name: str) -> str | None:
        """The id of the version row that is the object's S3 null version, if any."""
        def fn(c: sqlite3.Connection) -> str | None:
            row = c.execute("SELECT version_id FROM null_versions WHERE container = ? AND name = ?",
                            (container, name)).fetchone()
            return row[0] if row else None

        return await self._read(fn)

    async def latest_version(self, container: str, name: str) -> ObjectRecord | None:
        """The newest version row of the object (a delete marker, perhaps)."""
        return await self._read(lambda c: self._object(c.execute(
            f"SELECT {self._OCOLS} FROM object_versions WHERE container = ? AND name = ? "
            "ORDER BY version_id DESC LIMIT 1", (container, name)).fetchone()))

    async def update_version_sysmeta(
        self, container: str, name: str, vid: str | None, fn: Callable[[ObjectRecord], dict[str, str]]
    ) -> ObjectRecord:
        """Replace the system metadata of one version — ``vid`` None: the unversioned
        current object — with ``fn(record)``, read and written in one transaction (``fn``
        may raise to refuse); a current object pointing at that version follows."""
        def tx(c: sqlite3.Connection) -> ObjectRecord:
            if vid is None:
                rec = self._object(c.execute(
                    f"SELECT {self._OCOLS} FROM objects WHERE container = ? AND name = ? AND version_id IS NULL",
                    (container, name)).fetchone())
            else:
                rec = self._object(c.execute(
                    f"SELECT {self._OCOLS} FROM object_versions WHERE container = ? AND name = ? AND version_id = ?",
                    (container, name, vid)).fetchone())
            if rec is None or rec.content_type == DELETE_MARKER:
                raise errors.ObjectNotFound()
            sysmeta = fn(rec)
            text = json.dumps(sysmeta)
            if vid is not None:
                c.execute("UPDATE object_versions SET sysmeta = ? WHERE container = ? AND name = ? AND version_id = ?",
                          (text, container, name, vid))
            c.execute("UPDATE objects SET sysmeta = ? WHERE container = ? AND name = ? AND version_id IS ?",
                      (text, container, name, vid))
            return replace(rec, sysmeta=sysmeta)

        return await self._tx(tx)

    async def restore_version(
        self, container: str, name: str, vid: str, keep_current: bool
    ) -> tuple[ObjectRecord | None, str | None]:
        def fn(c: sqlite3.Connection) -> tuple[ObjectRecord | None, str | None]:
            v = self._object(c.execute(
                f"SELECT {self._OCOLS} FROM object_versions WHERE container = ? AND name = ? AND version_id = ?",
                (container, name, vid)).fetchone())
            if v is None or v.content_type == DELETE_MARKER:
                return None, None
            old = c.execute("SELECT blob_id, size, manifest, version_id, sysmeta FROM objects "
                            "WHERE container = ? AND name = ?", (container, name)).fetchone()
            released, old_used = None, 0
            if old is not None and old[3] is None:
                old_used = self._stored_size(old[1], old[2])
                if keep_current:
                    self._keep_as_version(c, container, name)
                else:
                    self._check_lock(old[4], time.time())
                    released = str(old[0])
            c.execute(f"INSERT OR REPLACE INTO objects ({self._OCOLS}) VALUES ({', '.join('?' * 13)})",
                      self._values(v))
            self._adjust(c, container, 1 if old is None else 0, -old_used)
            return v, released

        return await self._tx(fn)

    async def list_versions(
        self, container: str, params: ListParams, version_marker: str | None, now: float
    ) -> list[ListingEntry]:
        """Swift's ``?versions`` listing: unversioned current objects (``null``) and
        version rows, by name, each name's ``null`` first, then its versions newest first
        (oldest first when reversed, as Swift's merge gives). Two paged range scans merged
        (never more than a batch of each in memory); delimiter subdirs skip both scans past
        the subdir. ``extra`` carries version_id, is_latest, the manifest and the S3 owner
        (``owner``: the ``s3-owner`` system metadata, when set)."""
        rev = params.reverse
        prefix, delim, marker = params.prefix, params.delimiter, params.marker
        after, before = (">", "<") if not rev else ("<", ">")

        def fn(c: sqlite3.Connection) -> list[ListingEntry]:
            a_base = ("SELECT name, size, etag, content_type, last_modified, manifest, "
                      "json_extract(sysmeta, '$.\"s3-owner\"') FROM objects "
                      "WHERE container = ? AND version_id IS NULL AND (delete_at IS NULL OR delete_at > ?)")
            b_base = ("SELECT v.name, v.size, v.etag, v.content_type, v.last_modified, v.manifest, v.version_id, "
                      "(SELECT COALESCE(o.version_id, 'null') FROM objects o WHERE o.container = v.container "
                      "AND o.name = v.name AND (o.delete_at IS NULL OR o.delete_at > ?)), "
                      "(SELECT MAX(w.version_id) FROM object_versions w WHERE w.container = v.container "
                      "AND w.name = v.name), "
                      "EXISTS (SELECT 1 FROM null_versions n WHERE n.container = v.container AND n.name = v.name "
                      "AND n.version_id = v.version_id), json_extract(v.sysmeta, '$.\"s3-owner\"') "
                      "FROM object_versions v WHERE v.container = ?")
            a_args: list[Any] = [container, now]
            b_args: list[Any] = [now, container]
            if prefix:
                a_base += " AND name >= ?"
                b_base += " AND v.name >= ?"
                a_args.append(prefix)
                b_args.append(prefix)
                pupper = _after(prefix)
                if pupper is not None:
                    a_base += " AND name < ?"
                    b_base += " AND v.name < ?"
                    a_args.append(pupper)
                    b_args.append(pupper)
            a_order = " ORDER BY name" + (" DESC" if rev else "")
            b_order = " ORDER BY v.name DESC, v.version_id" if rev else " ORDER BY v.name, v.version_id DESC"

            def b_after(n: str, vid: str) -> tuple[str, list[Any]]:
                return f"(v.name {after} ? OR (v.name = ? AND v.version_id {before} ?))", [n, n, vid]

            a = _Scan(c, a_base, a_args, a_order, lambda r: (f"name {after} ?", [r[0]]))
            b = _Scan(c, b_base, b_args, b_order, lambda r: b_after(r[0], r[6]))
            if marker:
                a.seek((f"name {after} ?", [marker]))
                if version_marker is None:
                    b.seek((f"v.name {after} ?", [marker]))
                elif version_marker == "null":
                    b.seek((f"v.name {after}= ?", [marker]))
                else:
                    b.seek(b_after(marker, version_marker))
            out: list[ListingEntry] = []
            while len(out) < params.limit:
                ra, rb = a.peek(), b.peek()
                if ra is None and rb is None:
                    break
                take_a = rb is None or (ra is not None and (ra[0] <= rb[0] if not rev else ra[0] >= rb[0]))
                row = (a if take_a else b).pop()
                name = row[0]
                if delim:
                    idx = name.find(delim, len(prefix))
                    if idx >= 0:
                        subdir = name[: idx + len(delim)]
                        if subdir != marker:
                            out.append(ListingEntry(name=subdir, is_subdir=True))
                        if rev:
                            cond: tuple[str, list[Any]] = ("name < ?", [subdir])
                        else:
                            nxt = _after(subdir)
                            if nxt is None:
                                break
                            cond = ("name >= ?", [nxt])
                        a.seek(cond)
                        b.seek(("v." + cond[0], cond[1]))
                        continue
                extra: dict[str, Any] = {}
                if row[5]:
                    extra["manifest"] = json.loads(row[5])
                if take_a:
                    extra.update(version_id="null", is_latest=True)
                    if row[6]:
                        extra["owner"] = row[6]
                else:
                    vid, cur, newest = row[6], row[7], row[8]
                    extra.update(version_id=vid, is_latest=cur == vid or (
                        cur is None and row[3] == DELETE_MARKER and vid == newest), null=bool(row[9]))
                    if row[10]:
                        extra["owner"] = row[10]
                out.append(ListingEntry(name=name, bytes=row[1], hash=row[2], content_type=row[3],
                                        last_modified=row[4], extra=extra))
            return out

        return await self._run(fn)
