"""Swift API: ``/v1/AUTH_<project_id>[/<container>[/<object>]]``.

Reference: https://docs.openstack.org/api-ref/object-store/ . Behaviour follows
OpenStack Swift's proxy: statuses, headers and plain-text error bodies.
The same API is served under ``/swift/v1/...`` as Allas's URLs have it.
"""

from __future__ import annotations

import time
from urllib.parse import unquote

from aiohttp import HttpVersion11, web

from lampi.core import errors
from lampi.core.authz import ACCOUNT_ACL_KEY, Principal
from lampi.core.versions import VERSIONED_KEY
from lampi.http.context import IDENTITY, INFO, PRINCIPAL, PROJECT, SETTINGS, STORAGE
from lampi.swift import constraints as C
from lampi.swift import large_objects
from lampi.swift import acl, cors, formpost, objects, staticweb, tempurl
from lampi.swift import bulk, object_versioning, quotas, symlink, versioning
from lampi.swift.errors import swift_error, to_response
from lampi.swift.http_util import check_header_text, check_total_meta, parse_meta, x_timestamp
from lampi.swift.listing import list_params, listing_format, render_containers, render_object_rows, render_objects

WRITE_METHODS = frozenset({"PUT", "POST", "DELETE", "COPY"})


def split_path(request: web.Request) -> tuple[str, str | None, str | None]:
    """(account, container, object) from the raw path, decoded as Swift does."""
    raw = request.raw_path.split("?", 1)[0]
    if raw.startswith("/swift/"):
        raw = raw[len("/swift"):]
    try:
        path = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise errors.PreconditionFailed("Invalid UTF8 or contains NULL") from None
    if "\x00" in path:
        raise errors.PreconditionFailed("Invalid UTF8 or contains NULL")
    parts = path.split("/", 4)  # '', 'v1', account, container, object
    account = parts[2] if len(parts) > 2 else ""
    container = parts[3] if len(parts) > 3 and parts[3] else None
    obj = parts[4] if len(parts) > 4 and parts[4] else None
    if not account or (obj is not None and container is None):
        raise errors.NotFound()
    if container is None and len(parts) > 4:
        raise errors.NotFound()
    return account, container, obj


async def authenticate(request: web.Request) -> Principal | None:
    token = request.headers.get("X-Auth-Token") or request.headers.get("X-Storage-Token")
    if not token:
        return None
    return await request.app[IDENTITY].principal_for_token(token)


async def handle(request: web.Request) -> web.StreamResponse:
    method = request.method
    try:
        account, container, obj = split_path(request)
        if not account.startswith("AUTH_"):
            raise errors.NotFound()
        check_header_text(request.headers)
        project_id = account[5:]
        request[PROJECT] = project_id
        # access control (lampi/swift/acl.py): CORS preflight and FormPost need no
        # token, a TempURL replaces it; otherwise owner first, then account and
        # container ACLs, decided once the container record is known
        if method == "OPTIONS":
            return await cors.preflight(request, project_id, container, obj)
        await cors.on_actual(request, project_id, container)
        if formpost.applies(request, container):
            return await formpost.handle(request, account, project_id, container, obj)  # type: ignore[arg-type]
        if tempurl.applies(request):
            try:
                await tempurl.authorize(request, account, project_id, container, obj)
            except tempurl.Invalid as exc:
                return tempurl.invalid_response(request, str(exc))
            request[PRINCIPAL] = None
            request[acl.OWNER] = False
        else:
            principal = await authenticate(request)
            request[PRINCIPAL] = principal
            if container is not None and staticweb.applies(request, principal):
                resp = await staticweb.maybe_handle(request, principal, account, project_id, container, obj)
                if resp is not None:
                    return resp
            await acl.authorize(request, principal, project_id, container, obj)
        if container is not None:
            cbytes = len(container.encode())
            if cbytes > C.MAX_CONTAINER_NAME_LENGTH:
                raise errors.InvalidName(
                    f"Container name length of {cbytes} longer than {C.MAX_CONTAINER_NAME_LENGTH}"
                )
        if bulk.applies(request):  # ?bulk-delete, ?extract-archive (lampi/swift/bulk.py)
            return await bulk.handle(request, project_id, container, obj)
        if obj is not None:
            obytes = len(obj.encode())
            if obytes > C.MAX_OBJECT_NAME_LENGTH:
                raise errors.InvalidName(
                    f"Object name length of {obytes} longer than {C.MAX_OBJECT_NAME_LENGTH}"
                )
            resp = await objects.handle(request, project_id, container, obj)  # type: ignore[arg-type]
            return await object_versioning.finish(request, resp, container, obj)  # type: ignore[arg-type]
        if container is not None:
            return await handle_container(request, project_id, account, container)
        return await handle_account(request, project_id, account)
    except errors.DomainError as exc:
        return to_response(exc, method)


# -- account ----------------------------------------------------------------------------


async def _account_headers(request: web.Request, project_id: str) -> dict[str, str]:
    acct = await request.app[STORAGE].account(project_id)
    h = {
        "X-Account-Container-Count": str(acct.container_count),
        "X-Account-Object-Count": str(acct.object_count),
        "X-Account-Bytes-Used": str(acct.bytes_used),
        "X-Timestamp": x_timestamp(acct.created_at),
        "X-PUT-Timestamp": x_timestamp(acct.created_at),
        "X-Account-Storage-Policy-Default-Placement-Container-Count": str(acct.container_count),
        "X-Account-Storage-Policy-Default-Placement-Object-Count": str(acct.object_count),
        "X-Account-Storage-Policy-Default-Placement-Bytes-Used": str(acct.bytes_used),
    }
    for k, v in acct.meta.items():
        if k == ACCOUNT_ACL_KEY:
            h["X-Account-Access-Control"] = v
        elif not k.startswith("sys:"):
            h[f"X-Account-Meta-{k}"] = v
    return acl.strip_privileged(h, request.get(acl.OWNER, False))


async def handle_account(request: web.Request, project_id: str, account: str) -> web.StreamResponse:
    storage = request.app[STORAGE]
    m = request.method
    if m in ("GET", "HEAD"):
        params = list_params(request) if m == "GET" else None
        headers = await _account_headers(request, project_id)
        if m == "HEAD":
            return web.Response(status=204, headers=headers, content_type="text/plain", charset="utf-8")
        assert params is not None
        rows = await storage.list_containers(project_id, params)
        fmt, ctype = listing_format(request)
        body, _ = render_containers(fmt, account, rows)
        if fmt == "plain" and not rows:
            return web.Response(status=204, headers=headers, content_type="text/plain", charset="utf-8")
        return web.Response(status=200, text=body, headers=headers, content_type=ctype, charset="utf-8")
    if m == "POST":
        quotas.check_account_headers(request)  # account_quotas: quota set by cloud admins only
        updates = parse_meta(request.headers, "account")
        if "X-Account-Access-Control" in request.headers:  # owners only reach a POST here
            updates[ACCOUNT_ACL_KEY] = acl.clean_account_acl(request.headers["X-Account-Access-Control"])
        acct = await storage.account(project_id)
        merged = {k: v for k, v in acct.meta.items() if not k.startswith("sys:")}
        for k, v in updates.items():
            if k.startswith("sys:"):
                continue
            if v is None:
                merged.pop(k, None)
            else:
                merged[k] = v
        check_total_meta(merged)
        await storage.update_account_meta(project_id, updates)
        return web.Response(status=204, content_type="text/html", charset="UTF-8")
    return swift_error(405, method=m)


# -- container --------------------------------------------------------------------------

# Container headers kept as system metadata (ACLs now; versioning, quotas, etc. later).
CONTAINER_SYS_HEADERS = ("x-container-read", "x-container-write")


def _container_sys_updates(request: web.Request) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for h in CONTAINER_SYS_HEADERS:
        if h in request.headers:
            value = request.headers[h].strip()
            if h in ("x-container-read", "x-container-write"):
                value = acl.clean_acl(h, value)  # Swift's clean_acl: 400 on a bad ACL
            out["sys:" + h] = value or None
        rh = "x-remove-" + h[2:]
        if rh in request.headers:
            out["sys:" + h] = None
    out.update(versioning.container_sys_updates(request.headers))  # X-Versions/History-Location
    quotas.check_container_headers(request.headers)  # container_quotas: 400 on a bad value
    if not request.get(acl.OWNER, True):  # Swift ignores privileged headers of non-owners
        out = {k: v for k, v in out.items() if k[4:] not in acl.PRIVILEGED_HEADERS}
    return out


def _container_meta_updates(request: web.Request) -> dict[str, str | None]:
    updates = parse_meta(request.headers, "container")
    if not request.get(acl.OWNER, True):
        updates = {k: v for k, v in updates.items() if k not in acl.PRIVILEGED_META}
    return updates


async def _container_headers(request: web.Request, project_id: str, name: str) -> dict[str, str]:
    c = await request.app[STORAGE].container(project_id, name)
    h = {
        "X-Container-Object-Count": str(c.object_count),
        "X-Container-Bytes-Used": str(c.bytes_used),
        "X-Timestamp": x_timestamp(c.created_at),
        "X-PUT-Timestamp": x_timestamp(c.put_timestamp),
        "X-Storage-Policy": "default-placement",
        "Accept-Ranges": "bytes",
    }
    for k, v in c.meta.items():
        if k.startswith("sys:s3-") or k == VERSIONED_KEY:
            continue  # S3's bucket configuration (CORS, lifecycle, ACP grants): not Swift headers
        if k.startswith("sys:"):
            h[k[4:].title()] = v
        else:
            h[f"X-Container-Meta-{k}"] = v
    return acl.strip_privileged(h, request.get(acl.OWNER, False))


async def handle_container(
    request: web.Request, project_id: str, account: str, name: str
) -> web.StreamResponse:
    storage = request.app[STORAGE]
    m = request.method
    if m in ("GET", "HEAD"):
        params = list_params(request) if m == "GET" else None
        headers = await _container_headers(request, project_id, name)
        if m == "HEAD":
            return web.Response(status=204, headers=headers, content_type="text/plain", charset="utf-8")
        assert params is not None
        if "versions" in request.query:  # object_versioning's listing of every version
            return await object_versioning.list_versions(request, name, headers)
        fmt, ctype = listing_format(request)
        if fmt == "json":  # the fast path clients use (python-swiftclient asks for JSON)
            obj_rows = await storage.list_object_rows(name, params)
            raw = render_object_rows(obj_rows)
            raw = await symlink.annotate_listing(storage, project_id, name, obj_rows, raw)  # symlink_path
            return web.Response(status=200, body=raw, headers=headers, content_type=ctype, charset="utf-8")
        rows = await storage.list_objects(name, params)
        body, _ = render_objects(fmt, name, rows)
        if fmt == "plain" and not rows:
            return web.Response(status=204, headers=headers, content_type="text/plain", charset="utf-8")
        return web.Response(status=200, text=body, headers=headers, content_type=ctype, charset="utf-8")
    if m == "PUT":
        if (problem := C.new_container_problem(name)) is not None:
            raise errors.InvalidName(problem)
        meta_updates = _container_meta_updates(request)
        sys_updates = _container_sys_updates(request)
        sys_updates.update(await object_versioning.container_updates(storage, project_id, name, request.headers))
        meta = {k: v for k, v in meta_updates.items() if v is not None}
        meta.update({k: v for k, v in sys_updates.items() if v is not None})
        await quotas.check_container_create(request, project_id, name)  # project's container limit
        try:
            created = await storage.create_container(project_id, name, meta, time.time())
        except errors.ContainerNameTaken:
            return swift_error(409, "Container name is already in use by another project.\n")
        if not created:
            existing = await storage.container(project_id, name)
            acl.block_public_acls(existing.meta, sys_updates)  # the bucket's S3 PublicAccessBlock
            removals = {k: None for k, v in meta_updates.items() if v is None}
            # a PUT on an existing container updates its ACLs too, as Swift's does
            removals.update(sys_updates)
            if removals:
                await storage.update_container_meta(name, removals)
        return web.Response(status=201 if created else 202, content_type="text/html", charset="UTF-8")
    if m == "POST":
        updates = _container_meta_updates(request)
        c = await storage.container(project_id, name)
        merged = {k: v for k, v in c.meta.items() if not k.startswith("sys:")}
        for k, v in updates.items():
            if v is None:
                merged.pop(k, None)
            else:
                merged[k] = v
        check_total_meta(merged)
        sys_updates = _container_sys_updates(request)
        acl.block_public_acls(c.meta, sys_updates)  # the bucket's S3 PublicAccessBlock
        updates.update(sys_updates)
        updates.update(await object_versioning.container_updates(storage, project_id, name, request.headers))
        await storage.update_container_meta(name, updates)
        return web.Response(status=204, content_type="text/html", charset="UTF-8")
    if m == "DELETE":
        await storage.delete_container(project_id, name)
        return web.Response(status=204, content_type="text/html", charset="UTF-8")
    return swift_error(405, method=m)


async def expect_handler(request: web.Request) -> None:
    """``Expect: 100-continue``: Swift answers 100 only when it starts reading the body,
    after auth and header checks, so a refused upload gets its final status at once.
    For Swift paths the interim response is deferred to ``objects.send_continue``; elsewhere
    it is sent now, as aiohttp does by default."""
    if request.version != HttpVersion11:
        return
    expect = request.headers.get("Expect", "")
    if expect.lower() != "100-continue":
        # echoed: bytes that are not UTF-8 (surrogate escapes from aiohttp) as U+FFFD
        shown = expect.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        raise web.HTTPExpectationFailed(text="Unknown Expect: " + shown)
    path = request.raw_path
    if path.startswith("/v1/") or path.startswith("/swift/v1/"):
        request["swift.expect_continue"] = True
        return
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0


async def info(request: web.Request) -> web.Response:
    """``GET /info``: limits and enabled capabilities (``swift capabilities``)."""
    if request.method not in ("GET", "HEAD"):
        return swift_error(405, method=request.method)
    s = request.app[SETTINGS]
    return web.json_response(
        {
            "swift": C.swift_info(s.max_object_size),
            "tempauth": {"account_acls": True},
            "keystoneauth": {},
            "tempurl": tempurl.info(),
            "formpost": formpost.info(),
            "staticweb": {},
            **_c_slice_info(),
            **large_objects.info(),  # slo, dlo
            **object_versioning.info(),  # X-Versions-Enabled
            **request.app.get(INFO, {}),  # the other front-ends' sections (s3api)
        }
    )


def _c_slice_info() -> dict[str, object]:
    """Versioning, bulk, quotas, symlinks (lampi/swift/{versioning,bulk,quotas,symlink}.py)."""
    from lampi.swift import symlink

    return {
        "versioned_writes": {"allowed_flags": versioning.ALLOWED_FLAGS},
        "bulk_delete": {"max_deletes_per_request": bulk.MAX_DELETES_PER_REQUEST,
                        "max_failed_deletes": bulk.MAX_FAILED_DELETES},
        "bulk_upload": {"max_containers_per_extraction": bulk.MAX_CONTAINERS_PER_EXTRACTION,
                        "max_failed_extractions": bulk.MAX_FAILED_EXTRACTIONS},
        "container_quotas": {},
        "account_quotas": {},
        "symlink": {"symloop_max": symlink.SYMLOOP_MAX},
    }
