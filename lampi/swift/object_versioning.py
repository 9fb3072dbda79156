"""Swift's ``object_versioning`` (the newer API): ``X-Versions-Enabled``, ``?versions``
listings, ``?version-id=`` on GET/HEAD/DELETE/PUT.

Behaviour follows swift/common/middleware/versioned_writes/object_versioning.py; the
storage model (version records in the MetaStore instead of Swift's hidden
``\\x00versions\\x00<container>`` container and symlinks) is in lampi/core/versions.py.

- Container PUT/POST ``X-Versions-Enabled: <bool>`` (Swift's config_true_value) sets the
  flag, shown as ``X-Versions-Enabled: True|False``; enabling a container with
  ``X-Versions-Location``/``X-History-Location`` is 400, and so is setting those on a
  container that has used object versioning.
- Enabled: writes (PUT, COPY, X-Copy-From, SLO manifests, symlinks, ...) become versions
  in the storage core (``Storage.put_object``) and answer ``X-Object-Version-Id``;
  DELETE writes a delete marker (its id in the response; 404 when nothing was current).
- Suspended (``false``): new writes are ``null`` versions replacing the current object;
  old versions stay readable, deletable and restorable.
- GET/HEAD answer ``X-Object-Version-Id`` (``null`` for an unversioned object, also on a
  404) in a container that has ever had versioning enabled.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote, unquote

import orjson
from aiohttp import web
from multidict import CIMultiDictProxy

from lampi.core import errors, objectlock, versions
from lampi.core.authz import account_name
from lampi.core.models import Container
from lampi.core.storage import Storage
from lampi.http.authz import check_versions_access
from lampi.http.context import STORAGE
from lampi.http.dates import http_date
from lampi.swift import acl, objects, symlink
from lampi.swift.errors import swift_error
from lampi.swift.http_util import x_timestamp
from lampi.swift.listing import _object_item, dumps_ascii, list_params, listing_format

TRUE_VALUES = ("true", "1", "yes", "on", "t", "y")  # swift.common.utils.TRUE_VALUES
_PENDING = "lampi.swift.object_versioning.pending"  # (container, name) of a versioned write


def info() -> dict[str, object]:
    return {"object_versioning": {}}


# -- containers -------------------------------------------------------------------------


async def container_updates(
    storage: Storage, project_id: str, name: str, headers: CIMultiDictProxy[str]
) -> dict[str, str | None]:
    """Container PUT/POST: sysmeta updates for ``X-Versions-Enabled``; raises
    InvalidArgument (400) when the legacy and the new mode would meet."""
    legacy = bool(headers.get("X-Versions-Location") or headers.get("X-History-Location"))
    given = headers.get("X-Versions-Enabled")
    if given is None and not legacy:
        return {}
    c = await storage.lookup(project_id, name)
    meta = c.meta if c is not None and c.project_id == project_id else {}
    on = given is not None and given.strip().lower() in TRUE_VALUES
    if legacy and (on or versions.versioned(meta)):
        if on:
            raise errors.InvalidArgument("Cannot enable object versioning on a container that is already "
                                         "using the legacy versioned writes feature.")
        raise errors.InvalidArgument("Cannot enable legacy versioned writes on a container that is "
                                     "already using object versioning.")
    if on and (meta.get("sys:x-versions-location") or meta.get("sys:x-history-location")):
        raise errors.InvalidArgument("Cannot enable object versioning on a container that is already "
                                     "using the legacy versioned writes feature.")
    if given is None:
        return {}
    if on:
        return {versions.ENABLED_KEY: "True", versions.VERSIONED_KEY: "1"}
    if objectlock.enabled(meta):  # S3 object lock: versioning stays on (lampi/core/objectlock.py)
        raise errors.Conflict("Versioning cannot be suspended on a container with S3 object lock.")
    return {versions.ENABLED_KEY: "False"}


def _accepts_json(request: web.Request) -> bool:
    """Swift answers a ``?versions`` listing only to requests accepting JSON (the
    listing filter turns it into text or XML afterwards); ``format=`` sets the Accept."""
    fmt = request.query.get("format")
    if fmt:
        return fmt.lower() == "json"
    accept = request.headers.get("Accept", "")
    if not accept.strip():
        return True
    for part in accept.split(","):
        media, _, params = part.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k.strip() == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        if q > 0 and media.strip().lower() in ("*/*", "application/*", "application/json"):
            return True
    return False


async def list_versions(request: web.Request, container: Container, headers: dict[str, str]) -> web.Response:
    """``GET <container>?versions``: every version, with ``version_id`` and ``is_latest``.

    Always JSON, as Swift's object_versioning answers it (it turns the listing filter
    off): ``format=`` or an ``Accept`` that leaves JSON out is 406; the listing's own
    checks (a malformed Accept 400, a limit over the maximum 412) come first. A container
    that never had versioning lists its objects as ``null`` versions.
    """
    storage = request.app[STORAGE]
    q = request.query
    listing_format(request)  # 400 / 406 for a bad Accept, as other listings
    params = list_params(request)
    if not _accepts_json(request):
        return swift_error(406)
    version_marker = None
    if "marker" in q and q["marker"] and "version_marker" in q:
        version_marker = versions.normalize(q["version_marker"])
        if version_marker is None:
            return swift_error(400, "invalid version_marker param")
    elif "version_marker" in q and not q.get("marker"):
        return swift_error(400, "version_marker param requires marker")
    if set(params.delimiter) & set("0123456789.\x00"):  # version ids' characters
        return swift_error(400, "invalid delimiter param")
    rows = await storage.list_versions(container.key, params, version_marker)
    items: list[dict[str, object]] = []
    marker_latest = False
    for r in rows:
        if r.is_subdir:
            items.append({"subdir": r.name})
            continue
        item = _object_item(r)
        item["version_id"] = (r.extra or {})["version_id"]
        is_latest = bool((r.extra or {})["is_latest"])
        if params.marker and r.name == params.marker:
            # Swift decides is_latest from the current objects of its ordinary listing,
            # which leaves the marker out: the marker's current version is not "latest"
            # there; only its first delete marker listed is (launchpad bug 2147042, which
            # Swift's own functional test expects)
            is_latest = r.content_type == versions.DELETE_MARKER and not marker_latest
            marker_latest = marker_latest or is_latest
        item["is_latest"] = is_latest
        items.append(item)
    return web.Response(status=200, body=dumps_ascii(items), headers=headers, content_type="application/json",
                        charset="utf-8")


# -- objects ----------------------------------------------------------------------------


async def annotate_listing(storage: Storage, project_id: str, container: Container, rows: list[Any],
                           body: bytes) -> bytes:
    """A plain JSON listing of a versioned container as Swift's object_versioning filters
    it: an object whose current version has an id (Swift's symlink into the versions
    container) is listed with ``version_symlink: true`` and a ``symlink_path`` naming
    that version (``/v1/<account>/<container>/<name>?version-id=<id>``), and no
    ``symlink_etag``/``symlink_bytes``; a ``null`` version is listed as is. One point
    read per listed object, only in containers that ever had versioning."""
    if not versions.versioned(container.meta):
        return body
    now = time.time()
    vids: dict[str, str] = {}
    for r in rows:
        if isinstance(r, tuple):
            rec = await storage.meta.get_object(container.key, r[0], now)
            if rec is not None and rec.version_id:
                vids[r[0]] = rec.version_id
    if not vids:
        return body
    items = orjson.loads(body)
    for it in items:
        vid = vids.get(it.get("name"))
        if vid:
            it.pop("symlink_etag", None)
            it.pop("symlink_bytes", None)
            it["symlink_path"] = _object_path(project_id, container.name, it["name"]) + f"?version-id={vid}"
            it["version_symlink"] = True
    return dumps_ascii(items)


def applies(request: web.Request, container: Container) -> bool:
    """Whether ``handle`` has anything to do (no I/O)."""
    return bool(request.query.get("version-id")) or versions.versioned(container.meta)


def _object_path(project_id: str, container: str, name: str) -> str:
    return quote(f"/v1/{account_name(project_id)}/{container}/{name}")


async def handle(
    request: web.Request, project_id: str, container: Container, name: str
) -> web.StreamResponse | None:
    """An object request in a versioned container or with ``?version-id``: the
    response, or None to go on with the ordinary handling (headers added on the way)."""
    storage = request.app[STORAGE]
    m = request.method
    cname, ckey = container.name, container.key
    raw_vid = request.query.get("version-id")
    if m == "DELETE" and request.query.get("multipart-manifest") == "delete":
        return None  # slo.delete_manifest: segments, then the manifest (that version of it)
    if raw_vid:
        return await _version_request(request, project_id, container, name, raw_vid)
    if m in ("GET", "HEAD"):
        try:
            rec = await storage.head_object(ckey, name)
        except errors.ObjectNotFound:
            im = request.headers.get("If-Match")
            if im is not None and "*" in (t.strip() for t in im.split(",")):
                return None  # the ordinary path's 412
            resp = swift_error(404, method=m)
            resp.headers["X-Object-Version-Id"] = "null"
            return resp
        extra = {"X-Object-Version-Id": rec.version_id or "null"}
        if rec.version_id:
            extra["Content-Location"] = _object_path(project_id, cname, name) + f"?version-id={rec.version_id}"
        request[symlink.EXTRA_HEADERS] = {**request.get(symlink.EXTRA_HEADERS, {}), **extra}
        return None
    if not versions.enabled(container.meta):
        return None  # suspended: writes and deletes of null versions, as without versioning
    if m == "DELETE" and request.query.get("multipart-manifest") != "delete":
        existed, marker = await storage.delete_current(ckey, name)
        resp = web.Response(status=204, content_type="text/html", charset="UTF-8") if existed \
            else swift_error(404, method=m)
        resp.headers["X-Object-Version-Id"] = marker
        return resp
    if m in ("PUT", "COPY"):
        request[_PENDING] = True  # finish() adds the new version's id
    return None


async def finish(request: web.Request, resp: web.StreamResponse, project_id: str, container: str,
                 name: str) -> web.StreamResponse:
    """After a versioned PUT/COPY: ``X-Object-Version-Id`` of the version written."""
    if not request.get(_PENDING) or resp.prepared or not 200 <= resp.status < 300:
        return resp
    if request.method == "COPY":
        dest = unquote(request.headers.get("Destination", "")).lstrip("/").split("/", 1)
        if len(dest) != 2:
            return resp
        container, name = dest
        if request.headers.get("Destination-Account"):
            project_id = request.headers["Destination-Account"].removeprefix("AUTH_")
    storage = request.app[STORAGE]
    try:
        rec = await storage.head_object((await storage.container(project_id, container)).key, name)
    except errors.NotFound:
        return resp
    resp.headers["X-Object-Version-Id"] = rec.version_id or "null"
    return resp


async def _version_request(
    request: web.Request, project_id: str, container: Container, name: str, raw_vid: str
) -> web.StreamResponse | None:
    storage = request.app[STORAGE]
    m = request.method
    ckey = container.key
    if m not in ("GET", "HEAD", "DELETE", "PUT", "COPY"):
        return swift_error(400, f"{m} to a specific version is not allowed", method=m)
    if not versions.versioned(container.meta) and raw_vid != "null":
        return swift_error(400, "version-aware operations require that the container is versioned", method=m)
    vid = versions.normalize(raw_vid)
    if vid is None or (m == "PUT" and vid == "null"):
        return swift_error(400, "Invalid version parameter", method=m)
    if vid != "null" and m != "PUT":  # served from the versions container: no container ACLs there
        await check_versions_access(request, bool(request.get(acl.OWNER)), project_id, container.name, name,
                                    read=m != "DELETE")
    if m == "DELETE":
        if vid == "null" and not versions.versioned(container.meta):
            return None  # Swift lets it through as a plain DELETE (legacy versioned_writes applies)
        if vid == "null":
            # Swift lets it through to the current object (its "is_latest link"): an
            # unversioned object goes, a current version only stops being current
            try:
                await storage.head_object(ckey, name)
            except errors.ObjectNotFound:
                return swift_error(404, method=m)
            await storage.delete_object(ckey, name)
            return web.Response(status=204, content_type="text/html", charset="UTF-8")
        found, current = await storage.delete_version(ckey, name, vid)
        resp = web.Response(status=204, content_type="text/html", charset="UTF-8") if found \
            else swift_error(404, method=m)
        resp.headers["X-Object-Version-Id"] = vid
        resp.headers["X-Object-Current-Version-Id"] = current
        return resp
    if m == "PUT":
        return await _restore(request, container, name, vid)
    if m == "COPY":  # Swift's copy GETs its source with the version-id: that version is copied
        if vid == "null":
            try:
                rec = await storage.head_object(ckey, name)
            except errors.ObjectNotFound:
                return swift_error(404, method=m)
            if rec.version_id is not None:
                return swift_error(404, method=m)
        else:
            rec = await storage.get_version(ckey, name, vid)
            if rec is None or rec.content_type == versions.DELETE_MARKER:
                return swift_error(404, method=m)
        request[objects.COPY_SOURCE] = rec
        if versions.enabled(container.meta):
            request[_PENDING] = True  # finish() adds the new version's id
        return None

    if vid == "null":
        try:
            rec = await storage.head_object(ckey, name)
        except errors.ObjectNotFound:
            return swift_error(404, method=m)
        if rec.version_id is not None:
            return swift_error(404, method=m)  # the current object has a real version id
        request[symlink.EXTRA_HEADERS] = {"X-Object-Version-Id": "null"}
        return await objects.get_object(request, ckey, name)
    version = await storage.get_version(ckey, name, vid)
    if version is None:
        return swift_error(404, method=m)
    if version.content_type == versions.DELETE_MARKER:
        resp = swift_error(404, method=m)
        resp.headers["X-Object-Version-Id"] = vid
        resp.headers["Content-Type"] = versions.DELETE_MARKER
        return resp
    request[symlink.EXTRA_HEADERS] = {"X-Object-Version-Id": vid}
    if symlink.is_link(version.sysmeta):  # a version that is a link is followed, as the current one is
        target = await symlink.resolve(request, project_id, ckey, name, version)
        if isinstance(target, web.StreamResponse):
            return target
        if target is not None:
            request[symlink.EXTRA_HEADERS]["Content-Location"] = target[2]
            return await objects.get_object(request, target[0], target[1])
    request[objects.RECORD] = version  # served as is, not looked up by name
    return await objects.get_object(request, ckey, name)


async def _restore(request: web.Request, container: Container, name: str, vid: str) -> web.StreamResponse:
    """``PUT ?version-id=<id>`` with an empty body: that version becomes current. The
    current version stays a version (an unversioned current object is kept as one
    while versioning is enabled)."""
    if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        has_body = bool(await request.content.read(1))
    elif request.content_length is None:
        return swift_error(411, "Missing Content-Length header.", method="PUT")
    else:
        has_body = request.content_length != 0
    if has_body:
        return swift_error(400, "PUT version-id requests require a zero byte body", method="PUT", plain=True)
    storage = request.app[STORAGE]
    rec = await storage.restore_version(container.key, name, vid, keep_current=versions.enabled(container.meta))
    if rec is None:
        return swift_error(404, "The specified version does not exist", method="PUT", plain=True)
    return web.Response(
        status=201,
        headers={"ETag": rec.etag, "Last-Modified": http_date(rec.last_modified),
                 "X-Timestamp": x_timestamp(rec.last_modified), "X-Object-Version-Id": vid},
        content_type="text/html",
        charset="UTF-8",
    )
