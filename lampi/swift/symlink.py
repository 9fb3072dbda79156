"""Swift's ``symlink`` middleware.

A symlink is a zero-byte object whose sysmeta names a target
(``X-Symlink-Target: <container>/<object>``, optionally ``X-Symlink-Target-Account``).
GET/HEAD follow it (at most ``SYMLOOP_MAX`` links; a dangling link is 404), adding
``Content-Location`` with the target's path; ``?symlink=get`` returns the link itself
with its ``X-Symlink-Target*`` headers. A static link (``X-Symlink-Target-Etag``) is
validated at creation (409 if the target is missing or its ETag differs) and on
every read.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from aiohttp import web

from lampi.core import errors
from lampi.core.authz import account_name
from lampi.core.manifest import SLO
from lampi.core.models import (
    MAY_LINK,
    SYMLINK_TARGET,
    SYMLINK_TARGET_ACCOUNT,
    SYMLINK_TARGET_ETAG,
    SYMLOOP_MAX,
    CKey,
    Container,
)
from lampi.http import authz
from lampi.http.context import PROJECT, STORAGE
from lampi.http.dates import http_date
from lampi.swift import quotas, versioning
from lampi.swift.errors import swift_error, to_response
from lampi.swift.http_util import request_body, request_delete_at, request_sysmeta, request_user_meta, x_timestamp
from lampi.swift.listing import dumps_ascii

if TYPE_CHECKING:
    from lampi.core.models import ObjectRecord
    from lampi.core.storage import Storage

TARGET = SYMLINK_TARGET
TARGET_ACCOUNT = SYMLINK_TARGET_ACCOUNT
TARGET_ETAG = SYMLINK_TARGET_ETAG
TARGET_BYTES = "x-symlink-target-bytes"
# a static link to an SLO: the SLO's ETag, for its listing entry's ``slo_etag`` (not a header)
TARGET_SLO_ETAG = "x-symlink-target-slo-etag"
HIDDEN_SYSMETA = frozenset({TARGET_SLO_ETAG})
# Set on a request whose response's Location stays relative (swob's
# ``swift.leave_relative_location``; handlers.prepare_response makes others absolute).
LEAVE_RELATIVE_LOCATION = "lampi.swift.leave_relative_location"
# Response headers the caller may add to the object response (see objects.get_object).
EXTRA_HEADERS = "lampi.swift.extra_headers"

_FORMAT = "X-Symlink-Target header must be of the form <container name>/<object name>"


def is_link(sysmeta: dict[str, str]) -> bool:
    return TARGET in sysmeta


def target_etag(rec: ObjectRecord) -> str:
    """The ETag a static link's ``X-Symlink-Target-Etag`` is compared with: an SLO's is
    its manifest's (the ETag ``?multipart-manifest=get`` answers), as Swift's symlink
    middleware sees the manifest object; any other object's own."""
    if rec.manifest is not None and rec.manifest.kind == SLO:
        return rec.manifest.body_etag
    return rec.etag


def _target_path(project_id: str, target: str) -> str:
    return quote(f"/v1/{account_name(project_id)}/{target}")


async def put_sysmeta(request: web.Request, project_id: str, container: str, name: str) -> dict[str, str]:
    """Validate a symlink PUT; return the sysmeta (and Content-Type) to store.

    Raises PreconditionFailed / InvalidArgument / Conflict with Swift's bodies.
    """
    h = request.headers
    if request.content_length != 0:
        raise errors.InvalidArgument("Symlink requests require a zero byte body", plain=True)
    raw = unquote(h["X-Symlink-Target"])
    parts = raw.split("/", 1)
    if raw.startswith("/") or len(parts) != 2 or not parts[0] or not parts[1]:
        raise errors.PreconditionFailed(_FORMAT, plain=True)
    tcontainer, tobj = parts
    sys: dict[str, str] = {TARGET: quote(f"{tcontainer}/{tobj}")}
    tproject = project_id
    if "X-Symlink-Target-Account" in h:
        acct = unquote(h["X-Symlink-Target-Account"])
        if not acct or "/" in acct:
            raise errors.PreconditionFailed("Account name cannot contain slashes")
        sys[TARGET_ACCOUNT] = quote(acct)
        tproject = acct.removeprefix("AUTH_")
    if (tproject, tcontainer, tobj) == (project_id, container, name):
        raise errors.InvalidArgument("Symlink cannot target itself", plain=True)
    etag = h.get("X-Symlink-Target-Etag")
    if etag is not None:
        etag = etag.strip()
        if len(etag) >= 2 and etag[0] == etag[-1] == '"':
            etag = etag[1:-1]
        if any(ch in etag for ch in ';"\\'):
            raise errors.InvalidArgument("Bad X-Symlink-Target-Etag format", plain=True)
    if etag:
        storage = request.app[STORAGE]
        rec = None
        try:
            await authz.check_subrequest(request, tproject, tcontainer, tobj)  # Swift HEADs it as the caller
            tkey = (await storage.container(tproject, tcontainer)).key
            rec = await storage.head_object(tkey, tobj)
        except errors.NotFound:
            pass
        if rec is None:
            raise _conflict("X-Symlink-Target does not exist", tproject, sys[TARGET])
        # a static link as the target is followed (its recorded ETag must be the one
        # asked), a plain link is not: its own (empty) ETag is compared, as Swift's
        # HEAD with follow_softlinks=False does
        hops, path, project = 0, sys[TARGET], tproject
        while is_link(rec.sysmeta) and rec.sysmeta.get(TARGET_ETAG):
            if rec.sysmeta[TARGET_ETAG] != etag:
                raise _conflict("X-Symlink-Target-Etag headers do not match", project, path)
            if hops >= SYMLOOP_MAX:
                raise _conflict(f"Too many levels of symbolic links, maximum allowed is {SYMLOOP_MAX}",
                                project, path)
            hops += 1
            if TARGET_ACCOUNT in rec.sysmeta:
                project = unquote(rec.sysmeta[TARGET_ACCOUNT]).removeprefix("AUTH_")
            path = rec.sysmeta[TARGET]
            ncont, _, nobj = unquote(path).partition("/")
            nxt = None
            try:
                await authz.check_subrequest(request, project, ncont, nobj)
                nxt = await storage.head_object((await storage.container(project, ncont)).key, nobj)
            except errors.NotFound:
                pass
            if nxt is None:
                raise _conflict("X-Symlink-Target does not exist", project, path)
            rec = nxt
        if target_etag(rec) != etag:
            raise _conflict(f"Object Etag {target_etag(rec)!r} does not match X-Symlink-Target-Etag header {etag!r}",
                            tproject, sys[TARGET])
        sys[TARGET_ETAG] = etag
        sys[TARGET_BYTES] = str(rec.size)  # an SLO's: the large object's size
        if rec.manifest is not None and rec.etag != target_etag(rec):
            sys[TARGET_SLO_ETAG] = rec.etag
        sys["content-type"] = h.get("Content-Type") or rec.content_type
    else:
        sys["content-type"] = h.get("Content-Type") or "application/symlink"
    return sys


class _LinkConflict(errors.Conflict):
    """A symlink validation conflict (409 with a text body and Content-Location)."""


def _conflict(message: str, project_id: str, target: str) -> _LinkConflict:
    return _LinkConflict(message, location=f"/v1/{account_name(project_id)}/{target}")


def conflict_response(exc: errors.Conflict, method: str) -> web.Response | None:
    if not isinstance(exc, _LinkConflict):
        return None
    resp = swift_error(409, exc.message, method=method)
    resp.headers["Content-Location"] = str(exc.detail.get("location", ""))
    return resp


async def resolve(
    request: web.Request, project_id: str, container: CKey, name: str, rec: ObjectRecord | None = None,
) -> tuple[CKey, str, str] | web.Response | None:
    """For a GET/HEAD without ``?symlink=get``: follow links from ``name`` in the
    container of key ``container``.

    Returns None when it is not a link (serve it as usual), (container key, object,
    Content-Location) of the final target, or an error response (dangling link 404,
    loop 409, static link whose target changed 409).
    """
    if request.query.get("symlink") == "get":
        return None
    target = await follow(request, project_id, container, name, rec)
    if isinstance(target, tuple):
        return target[1].key, target[2], target[3]
    return target


async def follow(
    request: web.Request, project_id: str, container: CKey, name: str, rec: ObjectRecord | None = None,
) -> tuple[str, Container, str, str] | web.Response | None:
    """``resolve`` whatever the query says, with the target's project: (project, container,
    object, Content-Location), an error response (as for a GET of the link by the
    caller), or None when ``name`` (in the container of key ``container``) is not a link.
    ``rec``: the link's record when it is not the current object (a version)."""
    storage = request.app[STORAGE]
    if rec is None:
        try:
            rec = await storage.head_object(container, name)
        except errors.ObjectNotFound:
            return None
    tc: Container | None = None
    if not is_link(rec.sysmeta):
        return None
    hops = 0
    location = ""
    while is_link(rec.sysmeta):
        if hops >= SYMLOOP_MAX:
            return swift_error(409, f"Too many levels of symbolic links, maximum allowed is {SYMLOOP_MAX}",
                               method=request.method, plain=True)
        hops += 1
        target = rec.sysmeta[TARGET]
        if TARGET_ACCOUNT in rec.sysmeta:
            project_id = unquote(rec.sysmeta[TARGET_ACCOUNT]).removeprefix("AUTH_")
        location = f"/v1/{account_name(project_id)}/{target}"
        want_etag = rec.sysmeta.get(TARGET_ETAG)
        tcontainer, _, tobj = unquote(target).partition("/")
        try:
            # the target is read with the caller's authority (ACLs of the target container)
            await authz.check_subrequest(request, project_id, tcontainer, tobj)
            tc = await storage.container(project_id, tcontainer)
            rec = await storage.head_object(tc.key, tobj)
        except errors.NotFound:
            resp = swift_error(404, method=request.method)
            resp.headers["Content-Location"] = location
            return resp
        except errors.DomainError as exc:  # e.g. 403 reading the target: still says where it points
            resp = to_response(exc, request.method)
            resp.headers["Content-Location"] = location
            return resp
        # a static link pointing at another static link: that one's recorded ETag (Swift's
        # found_etag), not its own empty body's
        found = rec.sysmeta.get(TARGET_ETAG) or rec.etag if is_link(rec.sysmeta) else target_etag(rec)
        if want_etag and found != want_etag:
            resp = swift_error(
                409, f"Object Etag {found!r} does not match X-Symlink-Target-Etag header {want_etag!r}",
                method=request.method)
            resp.headers["Content-Location"] = location
            return resp
        name = tobj
    assert tc is not None
    return project_id, tc, name, location


async def put(request: web.Request, project_id: str, container: Container, name: str) -> web.StreamResponse:
    """PUT with ``X-Symlink-Target``: store the zero-byte link object."""
    storage = request.app[STORAGE]
    try:
        sys = await put_sysmeta(request, project_id, container.name, name)
    except _LinkConflict as exc:
        resp = conflict_response(exc, request.method)
        assert resp is not None
        return resp
    ctype = sys.pop("content-type")
    sysmeta = request_sysmeta(request)
    sysmeta.update(sys)
    meta = request_user_meta(request)
    delete_at = request_delete_at(request)
    await quotas.check_upload(request, project_id, container.key, 0)
    await versioning.before_write(storage, project_id, container.key, name)
    rec = await storage.put_object(container.key, name, request_body(request), content_type=ctype, meta=meta,
                                   sysmeta=sysmeta, delete_at=delete_at, expected_size=0, max_size=0)
    return web.Response(
        status=201,
        headers={"ETag": rec.etag, "Last-Modified": http_date(rec.last_modified),
                 "X-Timestamp": x_timestamp(rec.last_modified)},
        content_type="text/html", charset="UTF-8",
    )


def post_redirect(request: web.Request, rec: ObjectRecord) -> web.Response:
    """A POST to a link: applied to the link itself, then 307 with the target as
    ``Location`` (relative, as Swift leaves it), its ETag for a static link, and
    Swift's body."""
    account = unquote(rec.sysmeta.get(TARGET_ACCOUNT, "")) or account_name(request[PROJECT])
    headers = {"Location": f"/v1/{quote(account)}/{rec.sysmeta[TARGET]}"}
    if TARGET_ETAG in rec.sysmeta:
        headers["X-Symlink-Target-Etag"] = rec.sysmeta[TARGET_ETAG]
    body = ("The requested POST was applied to a symlink. POST directly to the target to apply "
            "requested metadata.")
    request[LEAVE_RELATIVE_LOCATION] = True  # as Swift's symlink sets swift.leave_relative_location
    return web.Response(status=307, text=None if request.method == "HEAD" else body, headers=headers,
                        content_type="text/html", charset="UTF-8")


def listing_item(sysmeta: dict[str, str], project_id: str) -> dict[str, object]:
    """The keys Swift's symlink middleware adds to a link's JSON listing entry."""
    account = unquote(sysmeta.get(TARGET_ACCOUNT, "")) or account_name(project_id)
    out: dict[str, object] = {"symlink_path": f"/v1/{account}/{unquote(sysmeta[TARGET])}"}
    if TARGET_ETAG in sysmeta:
        out["symlink_etag"] = sysmeta[TARGET_ETAG]
        out["symlink_bytes"] = int(sysmeta.get(TARGET_BYTES, "0"))
    if TARGET_SLO_ETAG in sysmeta:
        out["slo_etag"] = f'"{sysmeta[TARGET_SLO_ETAG]}"'
    return out


async def annotate_listing(storage: Storage, project_id: str, container: CKey, rows: list[Any],
                           body: bytes) -> bytes:
    """Add ``symlink_path`` (and a static link's ``symlink_etag``/``symlink_bytes``) to
    the links of a rendered JSON object listing. Links are zero-byte objects, so only
    those rows whose sysmeta mentions a target (``MAY_LINK``, see MetaStore.list_objects)
    are looked at; a listing without links is returned as it was."""
    import orjson

    names = [r[0] for r in rows if isinstance(r, tuple) and r[6] & MAY_LINK]
    if not names:
        return body
    found = await storage.meta.objects_sysmeta(container, names, time.time())
    links = {n: listing_item(sm, project_id) for n, sm in found.items() if is_link(sm)}
    if not links:
        return body
    items = orjson.loads(body)
    for it in items:
        extra = links.get(it.get("name"))  # type: ignore[arg-type]
        if extra:
            it.update(extra)
    return dumps_ascii(items)
