"""Swift's legacy ``versioned_writes``: ``X-Versions-Location`` (stack mode) and
``X-History-Location`` (history mode).

A container names an archive container in the same account. Before an object in it
is overwritten (PUT, COPY, X-Copy-From), the current version is copied into the
archive as ``<len(name) as 3 hex digits><name>/<X-Timestamp of that version>``.
On DELETE, stack mode restores the newest archived version (and removes it from the
archive); history mode archives the current version, then writes a zero-byte delete
marker (``application/x-deleted;swift_versions_deleted=1``) and nothing is restored.
An archive container that is missing (or not in this account) makes the write
412, as in Swift; a name with "/" is refused when the location is set.

The newer ``object_versioning`` API (``X-Versions-Enabled``) is in object_versioning.py;
a container uses one mode or the other.
"""

from __future__ import annotations

import time
from urllib.parse import unquote

from multidict import CIMultiDictProxy

from lampi.core import errors
from lampi.core.models import CKey, ListParams, ObjectRecord
from lampi.core.storage import Storage
from lampi.swift.http_util import x_timestamp

VERSIONS = "sys:x-versions-location"  # stack mode
HISTORY = "sys:x-history-location"  # history mode
DELETE_MARKER = "application/x-deleted;swift_versions_deleted=1"
ALLOWED_FLAGS = ["x-versions-location", "x-history-location"]


def container_sys_updates(headers: CIMultiDictProxy[str]) -> dict[str, str | None]:
    """Container PUT/POST headers → sysmeta updates, as versioned_writes' container_request.

    Setting one mode replaces the other; an empty value or ``X-Remove-Versions-Location``
    / ``X-Remove-History-Location`` turns versioning off.
    """
    vl = headers.get("X-Versions-Location")
    hl = headers.get("X-History-Location")
    if vl is not None and hl is not None:
        if not hl:
            hl = None  # defer to X-Versions-Location entirely
        elif vl:
            raise errors.InvalidArgument("Only one of X-Versions-Location or X-History-Location may be specified",
                                          plain=True)
        else:
            vl = None
    out: dict[str, str | None] = {}
    remove = bool(headers.get("X-Remove-Versions-Location") or headers.get("X-Remove-History-Location"))
    if vl is not None or hl is not None:
        key, val = (VERSIONS, vl) if vl is not None else (HISTORY, hl)
        assert val is not None
        if not val:
            remove = True
        else:
            location = unquote(val)
            if not location:
                raise errors.PreconditionFailed("Container name cannot be empty")
            if "/" in location:
                raise errors.PreconditionFailed("Container name cannot contain slashes")
            out[key] = val  # kept (and shown) as sent, %-quoted or not, as Swift keeps it
            out[HISTORY if key == VERSIONS else VERSIONS] = None
            remove = False  # setting wins over removing in the same request
    if remove:
        out[VERSIONS] = None
        out[HISTORY] = None
    return out


def archive_prefix(name: str) -> str:
    # Swift counts the name's length on its WSGI (UTF-8 bytes) form
    return "%03x%s/" % (len(name.encode("utf-8")), name)


async def _location(storage: Storage, project_id: str, container: CKey) -> tuple[str, str] | None:
    """(archive container's name, mode) when ``container`` is versioned, else None."""
    c = await storage.by_key(container)
    if c is None:
        return None
    if c.meta.get(VERSIONS):
        return unquote(c.meta[VERSIONS]), "stack"
    if c.meta.get(HISTORY):
        return unquote(c.meta[HISTORY]), "history"
    return None


async def _archive_container(storage: Storage, project_id: str, archive: str) -> CKey:
    """The archive container's key; Swift's 412 when it is missing (it must be in this
    account)."""
    c = await storage.lookup(project_id, archive)
    if c is None or c.project_id != project_id:
        raise errors.PreconditionFailed()
    return c.key


async def _copy(storage: Storage, src: ObjectRecord, container: CKey, name: str) -> ObjectRecord:
    if src.manifest is not None and src.manifest.kind == "slo":
        # an SLO is archived and restored as its manifest, not its data (Swift's
        # versioned_writes copies with ?multipart-manifest=get); a DLO's manifest is
        # its X-Object-Manifest sysmeta, which the plain copy keeps. (Manifests whose
        # parts the record owns, S3 multipart, are copied as data below.)
        return await storage.put_object(
            container, name, storage.read_stored(src), content_type=src.content_type, meta=dict(src.meta),
            sysmeta=dict(src.sysmeta), delete_at=src.delete_at, expected_size=src.stored_size,
            manifest=src.manifest, total_size=src.size, total_etag=src.etag,
        )
    return await storage.copy_object(
        src, container, name, content_type=src.content_type, meta=dict(src.meta),
        sysmeta=dict(src.sysmeta), delete_at=src.delete_at,
    )


async def _copy_current(storage: Storage, project_id: str, container: CKey, name: str, archive: str) -> None:
    try:
        cur = await storage.head_object(container, name)
    except errors.ObjectNotFound:
        return  # nothing to archive
    akey = await _archive_container(storage, project_id, archive)
    await _copy(storage, cur, akey, archive_prefix(name) + x_timestamp(cur.last_modified))


async def before_write(storage: Storage, project_id: str, container: CKey, name: str) -> None:
    """Hook before an object PUT/COPY lands on ``container/name``: archive the current
    version if the container is versioned (either mode)."""
    loc = await _location(storage, project_id, container)
    if loc is not None:
        await _copy_current(storage, project_id, container, name, loc[0])


async def _archived(storage: Storage, archive: CKey, name: str) -> list[ObjectRecord | None]:
    """Archived versions of ``name``, newest first (at most one listing page, as Swift's
    own restore only ever needs the newest few)."""
    rows = await storage.list_objects(archive, ListParams(prefix=archive_prefix(name), reverse=True, limit=1000))
    out: list[ObjectRecord | None] = []
    for r in rows:
        try:
            out.append(await storage.head_object(archive, r.name))
        except errors.ObjectNotFound:
            out.append(None)
    return out


async def delete_object(storage: Storage, project_id: str, container: CKey, name: str) -> None:
    """DELETE of ``container/name`` with versioned_writes semantics (plain delete when
    the container is not versioned). Raises ObjectNotFound as the plain DELETE would."""
    loc = await _location(storage, project_id, container)
    if loc is None:
        await storage.delete_object(container, name)
        return
    archive_name, mode = loc
    if mode == "history":
        await _copy_current(storage, project_id, container, name, archive_name)
        akey = await _archive_container(storage, project_id, archive_name)
        marker = archive_prefix(name) + x_timestamp(time.time())
        await storage.put_object(akey, marker, _empty(), content_type=DELETE_MARKER, meta={}, sysmeta={},
                                 expected_size=0)
        await storage.delete_object(container, name)
        return
    # stack mode: pop the newest archived version back into place
    found = await storage.lookup(project_id, archive_name)
    if found is None or found.project_id != project_id:
        await storage.delete_object(container, name)
        return
    archive = found.key
    versions = await _archived(storage, archive, name)
    for i, prev in enumerate(versions):
        if prev is None:
            continue
        if prev.content_type == DELETE_MARKER:
            # history left a delete marker on top: if an object is current, deleting it
            # returns to the marker state; otherwise restore what lies below the marker
            try:
                await storage.head_object(container, name)
            except errors.ObjectNotFound:
                pass
            else:
                break
            for below in versions[i + 1:]:
                if below is None:
                    continue
                if below.content_type == DELETE_MARKER:
                    break  # nothing to restore
                await _copy(storage, below, container, name)
                await storage.delete_object(archive, below.name)
                break
            # as Swift, the DELETE then goes to the marker: it is removed (204)
            await storage.delete_object(archive, prev.name)
            return
        await _copy(storage, prev, container, name)
        await storage.delete_object(archive, prev.name)
        return
    await storage.delete_object(container, name)


async def _empty():  # type: ignore[no-untyped-def]
    return
    yield b""
