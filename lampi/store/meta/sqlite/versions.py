"""Object versions of the SQLite MetaStore (lampi/core/versions.py): version rows,
delete markers, restore and the ``?versions`` listing."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from lampi.core import errors
from lampi.core.models import CKey, ListingEntry, ListParams, ObjectRecord
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
                    container=CKey(container), name=name, blob_id="", size=0, etag=EMPTY_MD5,
                    content_type=DELETE_MARKER, last_modified=ts, data_timestamp=ts, version_id=vid))
                return vid
            except errors.Conflict:
                ts += 0.00001

    async def delete_current(self, container: str, name: str, ts: float, now: float) -> tuple[bool, str, str | None]:
        def fn(c: sqlite3.Connection) -> tuple[bool, str, str | None]:
            if c.execute("SELECT 1 FROM containers WHERE ckey = ?", (container,)).fetchone() is None:
                raise errors.ContainerNotFound()
            old = c.execute("SELECT version_id, delete_at, blob_id FROM objects WHERE container = ? AND name = ?",
                            (container, name)).fetchone()
            existed, released = False, None
            if old is not None:
                expired = old[1] is not None and old[1] <= now
                existed = not expired
                if old[0] is None:
                    if expired:
                        released = str(old[2])
                    else:
                        self._keep_as_version(c, container, name)
                row = c.execute("DELETE FROM objects WHERE container = ? AND name = ? "
                                "RETURNING size, manifest, version_id", (container, name)).fetchone()
                self._adjust(c, container, -1, 0 if row[2] is not None else -self._stored_size(row[0], row[1]))
            return existed, self._insert_marker(c, container, name, ts), released

        return await self._tx(fn, frees=True)

    async def delete_version(self, container: str, name: str, vid: str) -> tuple[bool, str | None, str]:
        def fn(c: sqlite3.Connection) -> tuple[bool, str | None, str]:
            row = c.execute("DELETE FROM object_versions WHERE container = ? AND name = ? AND version_id = ? "
                            "RETURNING blob_id, size, manifest", (container, name, vid)).fetchone()
            cur = c.execute("SELECT version_id FROM objects WHERE container = ? AND name = ?",
                            (container, name)).fetchone()
            if row is None:
                return False, None, (cur[0] or "null") if cur else "null"
            if row[0]:
                self._adjust(c, container, 0, -self._stored_size(row[1], row[2]))
            if cur is not None and cur[0] == vid:  # it was current: the link goes too, as in Swift
                c.execute("DELETE FROM objects WHERE container = ? AND name = ?", (container, name))
                self._adjust(c, container, -1, 0)
                cur = None
            return True, (str(row[0]) or None), (cur[0] or "null") if cur else "null"

        return await self._tx(fn, frees=True)

    async def restore_version(
        self, container: str, name: str, vid: str, keep_current: bool
    ) -> tuple[ObjectRecord | None, str | None]:
        def fn(c: sqlite3.Connection) -> tuple[ObjectRecord | None, str | None]:
            v = self._object(c.execute(
                f"SELECT {self._OCOLS} FROM object_versions WHERE container = ? AND name = ? AND version_id = ?",
                (container, name, vid)).fetchone())
            if v is None or v.content_type == DELETE_MARKER:
                return None, None
            old = c.execute("SELECT blob_id, size, manifest, version_id FROM objects WHERE container = ? AND name = ?",
                            (container, name)).fetchone()
            released, old_used = None, 0
            if old is not None and old[3] is None:
                old_used = self._stored_size(old[1], old[2])
                if keep_current:
                    self._keep_as_version(c, container, name)
                else:
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
        the subdir. ``extra`` carries version_id, is_latest and the manifest."""
        rev = params.reverse
        prefix, delim, marker = params.prefix, params.delimiter, params.marker
        after, before = (">", "<") if not rev else ("<", ">")

        def fn(c: sqlite3.Connection) -> list[ListingEntry]:
            a_base = ("SELECT name, size, etag, content_type, last_modified, manifest FROM objects "
                      "WHERE container = ? AND version_id IS NULL AND (delete_at IS NULL OR delete_at > ?)")
            b_base = ("SELECT v.name, v.size, v.etag, v.content_type, v.last_modified, v.manifest, v.version_id, "
                      "(SELECT COALESCE(o.version_id, 'null') FROM objects o WHERE o.container = v.container "
                      "AND o.name = v.name AND (o.delete_at IS NULL OR o.delete_at > ?)), "
                      "(SELECT MAX(w.version_id) FROM object_versions w WHERE w.container = v.container "
                      "AND w.name = v.name) FROM object_versions v WHERE v.container = ?")
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
                else:
                    vid, cur, newest = row[6], row[7], row[8]
                    extra.update(version_id=vid, is_latest=cur == vid or (
                        cur is None and row[3] == DELETE_MARKER and vid == newest))
                out.append(ListingEntry(name=name, bytes=row[1], hash=row[2], content_type=row[3],
                                        last_modified=row[4], extra=extra))
            return out

        return await self._run(fn)
