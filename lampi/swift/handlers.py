"""Swift API: ``/v1/AUTH_<project_id>[/<container>[/<object>]]``.

Reference: https://docs.openstack.org/api-ref/object-store/ . Behaviour follows
OpenStack Swift's proxy: statuses, headers and plain-text error bodies.
The same API is served under ``/swift/v1/...`` as Allas's URLs have it.
"""

from __future__ import annotations

import dataclasses
import time
from urllib.parse import quote, unquote

from aiohttp import HttpVersion11, web

from lampi.core import errors, versions
from lampi.core.authz import ACCOUNT_ACL_KEY, SERVICE_PREFIX, Principal, account_name, account_project
from lampi.core.versions import VERSIONED_KEY
from lampi.http import authz
from lampi.http.context import IDENTITY, INFO, PRINCIPAL, PROJECT, SETTINGS, STORAGE
from lampi.http.dates import http_date
from lampi.swift import acl, cors, formpost, objects, staticweb, tempurl
from lampi.swift import bulk, object_versioning, quotas, slo, symlink, versioning
from lampi.swift import constraints as C
from lampi.swift import large_objects
from lampi.swift.errors import swift_error, to_response
from lampi.swift.http_util import check_header_text, check_total_meta, parse_meta, swob_title, x_timestamp
from lampi.swift.listing import (
    list_params,
    listing_format,
    render_containers,
    render_object_rows,
    render_objects,
)

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
    if len(parts) <= 2 or (len(parts) == 3 and not parts[2]):
        # "/v1", "/v1/": Swift's proxy finds no controller for a path without an account
        raise errors.PreconditionFailed("Bad URL")
    account = parts[2] if len(parts) > 2 else ""
    container = parts[3] if len(parts) > 3 and parts[3] else None
    obj = parts[4] if len(parts) > 4 and parts[4] else None
    if not account or (obj is not None and container is None):
        raise errors.NotFound()
    if container is None and len(parts) > 4:
        raise errors.NotFound()
    return account, container, obj


def host_url(request: web.Request) -> str:
    """swob's ``host_url``: what a relative ``Location`` is made absolute with."""
    public = request.app[SETTINGS].public_url
    return public.rstrip("/") if public else f"{request.scheme}://{request.host}"


def realm(request: web.Request) -> str:
    """swob's ``www_authenticate`` realm: the account segment of the path, %-quoted."""
    raw = request.raw_path.split("?", 1)[0]
    if raw.startswith("/swift/"):
        raw = raw[len("/swift"):]
    segs = unquote(raw, errors="surrogateescape").split("/", 3)
    account = segs[2] if len(segs) > 2 and segs[2] else "unknown"
    return quote(account.encode("utf-8", "surrogateescape"), safe="/")


def prepare_response(request: web.Request, resp: web.StreamResponse) -> None:
    """Last touches on every Swift response, as swob and eventlet send them (called as
    the headers go out, after aiohttp has settled framing):

    - ``Content-Length: 0`` on a 204 (aiohttp leaves it out, swob always sends it);
    - ``WWW-Authenticate: Swift realm="<account>"`` on a 401;
    - a relative ``Location`` made absolute (swob's ``absolute_location``), but for a
      POST to a symlink (its 307 names the target relatively, as Swift's symlink asks);
    - ``Connection: keep-alive`` echoed to a client that asked for it (eventlet);
    - every header name title-cased, as swob's HeaderKeyDict sends them
      (``X-Container-Meta-Project-Code``, ``Etag``, ``X-Put-Timestamp``).
    """
    h = resp.headers
    h.pop(tempurl.GENERATOR, None)  # internal, as Swift's gatekeeper removes X-Backend-* headers
    if resp.status == 204:
        h["Content-Length"] = "0"
    elif resp.status == 401 and "WWW-Authenticate" not in h:
        h["WWW-Authenticate"] = f'Swift realm="{realm(request)}"'
    loc = h.get("Location")
    if loc is not None and loc.startswith("/") and not request.get(symlink.LEAVE_RELATIVE_LOCATION):
        h["Location"] = host_url(request) + loc
    if (resp.keep_alive and "Connection" not in h
            and request.headers.get("Connection", "").strip().lower() == "keep-alive"):
        h["Connection"] = "keep-alive"
    # names renamed in place (a header's values keep their order; renamed names move to
    # the end, which HTTP leaves without meaning): most responses have one or two to
    # rename (``ETag``), and a rebuilt header list cost ~6% of a Swift HEAD's instructions
    names = _SWOB_NAMES
    renames = None
    for k in h:
        t = names.get(k)
        if t is None:
            t = swob_title(k)
            if len(names) < _SWOB_NAMES_MAX:
                names[k] = t
        if t != k:
            if renames is None:
                renames = {k: t}
            else:
                renames[k] = t
    if renames:
        for k, t in renames.items():
            h.extend([(t, v) for v in h.popall(k)])


_SWOB_NAMES: dict[str, str] = {}  # header name → as swob sends it (``swob_title``), for names seen
_SWOB_NAMES_MAX = 4096  # past that (object metadata names are the callers'), titled anew each time


async def authenticate(request: web.Request) -> Principal | None:
    """The caller of a Swift request: its token's principal, with the roles of a valid
    ``X-Service-Token`` as its service roles (keystoneauth); an invalid service token
    is a 401, as keystonemiddleware refuses the request."""
    ident = request.app[IDENTITY]
    token = request.headers.get("X-Auth-Token") or request.headers.get("X-Storage-Token")
    if not token:
        return None
    principal = await ident.principal_for_token(token)
    service_token = request.headers.get("X-Service-Token")
    if service_token:
        service = await ident.validate(service_token)
        principal = dataclasses.replace(principal, service_roles=service.roles)
    return principal


def account_key(account: str) -> str:
    """The storage core's key of a Swift account: the project id of ``AUTH_<id>``,
    ``SERVICE_<id>`` for a project's service account (lampi.core.authz)."""
    if account.startswith("AUTH_"):
        return account[5:]
    if account.startswith(SERVICE_PREFIX) and len(account) > len(SERVICE_PREFIX):
        return account
    raise errors.NotFound()


def check_header_lines(request: web.Request) -> None:
    """Swift's proxy reads at most ``max_header_size`` bytes per header line (eventlet's
    MAX_HEADER_LINE): a longer one is 400 "Header Line Too Long"."""
    for name, value in request.raw_headers:
        if len(name) + len(value) + 4 >= C.MAX_HEADER_SIZE:
            raise errors.InvalidArgument("Header Line Too Long")


async def _ensure_service_account(request: web.Request, key: str) -> None:
    """A project's SERVICE_ account is made on first use, as Swift's account_autocreate."""
    if key in _service_accounts:
        return
    storage = request.app[STORAGE]
    if await storage.meta.get_project(account_project(key)[0]) is None:
        raise errors.NotFound()
    await storage.meta.ensure_account(key)
    _service_accounts.add(key)


_service_accounts: set[str] = set()  # this process's SERVICE_ accounts known to exist
_READS_OBJECT = frozenset(("GET", "HEAD", "DELETE", "POST"))  # methods whose handlers read the object first


async def handle(request: web.Request) -> web.StreamResponse:
    method = request.method
    try:
        account, container, obj = split_path(request)
        project_id = account_key(account)
        check_header_lines(request)
        check_header_text(request.headers)
        if container is not None and not (obj is None and method == "PUT"):
            # the global namespace (Allas): a container name means the same container
            # from every account, so /v1/AUTH_<B>/<A's container> is A's container, with
            # A's ACLs deciding (creating one of a taken name stays a 409)
            # a request that reads the object first (GET, HEAD; a DELETE and a POST read it
            # before they write): its record is read with the container's (a hint)
            found = await request.app[STORAGE].lookup(project_id, container,
                                                      obj if method in _READS_OBJECT else None, method == "GET")
            if found is not None and found.project_id != project_id:
                project_id = found.project_id
                account = account_name(project_id)
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
            request = tempurl.strip_query(request)  # only the temp URL's own parameters count
            request[PRINCIPAL] = None
            request[acl.OWNER] = False
            if container is not None and staticweb.applies(request, None):  # a prefix TempURL's listings
                resp = await staticweb.maybe_handle(request, None, account, project_id, container, obj)
                if resp is not None:
                    return resp
            if obj is None:  # a container's root is a TempURL's only for staticweb
                return tempurl.invalid_response(request, "not a static web listing")
        else:
            principal = await authenticate(request)
            request[PRINCIPAL] = principal
            if container is not None and staticweb.applies(request, principal):
                resp = await staticweb.maybe_handle(request, principal, account, project_id, container, obj)
                if resp is not None:
                    return resp
            await acl.authorize(request, principal, project_id, container, obj)
        if project_id.startswith(SERVICE_PREFIX):
            await _ensure_service_account(request, project_id)
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
                raise errors.InvalidName(  # constraints.check_object_creation: text/plain
                    f"Object name length of {obytes} longer than {C.MAX_OBJECT_NAME_LENGTH}", plain=True
                )
            resp = await handle_object(request, project_id, container, obj)  # type: ignore[arg-type]
            return await object_versioning.finish(request, resp, project_id, container, obj)  # type: ignore[arg-type]
        if container is not None:
            return await handle_container(request, project_id, account, container)
        return await handle_account(request, project_id, account)
    except errors.DomainError as exc:
        return to_response(exc, method)


# -- account ----------------------------------------------------------------------------


async def handle_object(request: web.Request, project_id: str, container: str, name: str) -> web.StreamResponse:
    """An object request, after the middlewares: object versions, symlinks, SLO manifests,
    copies, then the object itself (lampi.swift.objects)."""
    m = request.method
    storage = request.app[STORAGE]
    if m == "PUT":
        if "X-Copy-From" in request.headers:
            # Swift's copy middleware reads the source (with the caller's authority)
            # before the PUT reaches the destination: 403/404 of the source come first
            await objects.copy_source(request, project_id, request.headers["X-Copy-From"],
                                      request.headers.get("X-Copy-From-Account"))
    cont = await authz.container_of(request, project_id, container)  # 404 unless it exists in this account
    if object_versioning.applies(request, cont):  # X-Versions-Enabled, ?version-id
        resp = await object_versioning.handle(request, project_id, cont, name)
        if resp is not None:
            return resp
    if m in ("GET", "HEAD"):
        target = await symlink.resolve(request, project_id, cont.key, name)  # follow symlinks
        if isinstance(target, web.StreamResponse):
            return target
        key = cont.key
        if target is not None:
            key, name, location = target
            extra = {"Content-Location": location}
            tcont = await storage.by_key(key)
            if tcont is not None and versions.versioned(tcont.meta):
                # the target's version, as object_versioning answers for it (not the link's)
                trec = await storage.meta.get_object(key, name, time.time())
                if trec is not None:
                    extra["X-Object-Version-Id"] = trec.version_id or "null"
            request[symlink.EXTRA_HEADERS] = extra
        return await objects.get_object(request, key, name)
    # large objects: SLO manifest PUT/DELETE (lampi/swift/slo.py), reserved headers
    if m == "PUT" and request.query.get("multipart-manifest") == "put":
        return await slo.put_manifest(request, project_id, container, name)
    if m == "DELETE" and request.query.get("multipart-manifest") == "delete":
        return await slo.delete_manifest(request, project_id, container, name)
    if m in ("PUT", "POST") and (refused := large_objects.check_put_headers(request)) is not None:
        return refused
    if m == "PUT" and "X-Symlink-Target" in request.headers:
        return await symlink.put(request, project_id, cont, name)
    if m == "PUT":
        if "X-Copy-From" in request.headers:
            return await objects.copy_object(request, project_id, container, name,
                                             source=request.headers["X-Copy-From"],
                                             source_account=request.headers.get("X-Copy-From-Account"))
        return await objects.put_object(request, cont.key, name)
    if m == "POST":
        return await objects.post_object(request, cont.key, name)
    if m == "DELETE":
        if "X-If-Delete-At" in request.headers:  # the object server's check, before the object is looked up
            want = request.headers["X-If-Delete-At"].strip()
            if not want.isdigit():
                return swift_error(400, "Bad X-If-Delete-At header value", plain=True)
            rec = await storage.meta.get_object(cont.key, name, time.time())
            if rec is not None and (rec.delete_at is None or rec.delete_at != int(want)):
                return swift_error(412, method=m)
        await versioning.delete_object(storage, project_id, cont.key, name)  # versioned_writes
        return web.Response(status=204, content_type="text/html", charset="UTF-8")
    if m == "COPY":
        dest = request.headers.get("Destination")
        if not dest:
            return swift_error(412, "Destination header required", method=m)
        dest = unquote(dest)
        dparts = dest.lstrip("/").split("/", 1)
        if len(dparts) != 2 or not dparts[0] or not dparts[1]:
            return swift_error(412, "Destination header must be of the form <container name>/<object name>", method=m)
        dest_account = request.headers.get("Destination-Account")
        dest_project = project_id
        if dest_account:
            dest_project = dest_account.removeprefix("AUTH_")
        # Swift's copy middleware reads the source before it writes the destination: a
        # missing source is 404 whatever the destination
        if objects.COPY_SOURCE not in request:
            await storage.head_object(cont.key, name)
        # the destination is written with the caller's authority: owner, account ACL
        # or the destination container's write ACL (also in another account)
        await authz.check_subrequest(request, dest_project, dparts[0], dparts[1], read=False)
        await storage.container(dest_project, dparts[0])
        return await objects.copy_object(
            request, dest_project, dparts[0], dparts[1], source=quote(f"/{container}/{name}"),
            source_account=None, source_project=project_id,
        )
    return swift_error(405, method=m)


async def _account_headers(request: web.Request, project_id: str) -> dict[str, str]:
    storage = request.app[STORAGE]
    acct = await storage.account(project_id)
    h = {
        "X-Account-Container-Count": str(acct.container_count),
        "X-Account-Object-Count": str(acct.object_count),
        "X-Account-Bytes-Used": str(acct.bytes_used),
        "X-Timestamp": x_timestamp(acct.created_at),
        "X-PUT-Timestamp": x_timestamp(acct.created_at),
    }
    # per storage policy that has containers here, as Swift's account server
    for policy, (containers, objects_, nbytes) in (await storage.policy_stats(project_id)).items():
        prefix = f"X-Account-Storage-Policy-{policy}-"
        h[prefix + "Container-Count"] = str(containers)
        h[prefix + "Object-Count"] = str(objects_)
        h[prefix + "Bytes-Used"] = str(nbytes)
    for k, v in acct.meta.items():
        if not k.startswith("sys:"):
            h[f"X-Account-Meta-{k}"] = v
    shown_acl = acl.format_account_acl(acct.meta.get(ACCOUNT_ACL_KEY))
    if shown_acl is not None:
        h["X-Account-Access-Control"] = shown_acl
    h.update(quotas.account_quota_headers(request, acct.meta))
    # keystoneauth's X-Account-Project-Domain-Id: the domain of the account's project
    project = await request.app[STORAGE].meta.get_project(account_project(project_id)[0])
    if project is not None:
        h["X-Account-Project-Domain-Id"] = project.domain_id
    return acl.strip_privileged(h, request.get(acl.OWNER, False))


def _listing_response(request: web.Request, status: int, body: bytes | None, headers: dict[str, str],
                      ctype: str) -> web.Response:
    """A listing response (or a HEAD's) as Swift's servers and ``listing_formats`` send it:
    the listing's media type with ``charset=utf-8`` (a HEAD's too), ``Vary: Accept``
    unless ``format=`` chose it, an empty body as 204."""
    if "format" not in request.query:
        headers["Vary"] = "Accept"
    if not body:
        return web.Response(status=204, headers=headers, content_type=ctype, charset="utf-8")
    return web.Response(status=status, body=body, headers=headers, content_type=ctype, charset="utf-8")


async def handle_account(request: web.Request, project_id: str, account: str) -> web.StreamResponse:
    storage = request.app[STORAGE]
    m = request.method
    if m in ("GET", "HEAD"):
        params = list_params(request, container=False) if m == "GET" else None
        fmt, ctype = listing_format(request)
        headers = await _account_headers(request, project_id)
        if m == "HEAD":
            return _listing_response(request, 204, None, headers, ctype)
        assert params is not None
        rows = await storage.list_containers(project_id, params)  # extra["storage_policy"]: its name
        body, _ = render_containers(fmt, account, rows)
        return _listing_response(request, 200, body, headers, ctype)
    if m == "POST":
        # account_quotas: quotas set by resellers only (403 before any other check)
        quota_updates = quotas.account_quota_updates(request)
        updates = parse_meta(request.headers, "account")
        if "X-Account-Access-Control" in request.headers:  # owners only reach a POST here
            updates[ACCOUNT_ACL_KEY] = acl.clean_account_acl(request.headers["X-Account-Access-Control"])
        updates.update(quota_updates)
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

# Container headers kept as system metadata: ACLs, container-sync's key and target
# (stored and shown to owners as Swift does; lampi runs no container-sync daemon).
CONTAINER_SYS_HEADERS = ("x-container-read", "x-container-write", "x-container-sync-key", "x-container-sync-to")


def _container_sys_updates(request: web.Request) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for h in CONTAINER_SYS_HEADERS:
        if h in request.headers:
            value = request.headers[h].strip()
            if h in ("x-container-read", "x-container-write"):
                value = acl.clean_acl(h, value)  # Swift's clean_acl: 400 on a bad ACL
            elif h == "x-container-sync-to":
                check_sync_to(request.headers[h])
            out["sys:" + h] = value or None
        rh = "x-remove-" + h[2:]
        if rh in request.headers:
            out["sys:" + h] = None
    out.update(versioning.container_sys_updates(request.headers))  # X-Versions/History-Location
    quotas.check_container_headers(request.headers)  # container_quotas: 400 on a bad value
    if not request.get(acl.OWNER, True):  # Swift ignores privileged headers of non-owners
        out = {k: v for k, v in out.items() if k[4:] not in acl.PRIVILEGED_HEADERS}
    return out


def check_sync_to(value: str) -> None:
    """Swift's validate_sync_to on X-Container-Sync-To (400 with its message): a
    ``//realm/cluster/account/container`` or an http(s) URL with a path and no query.
    lampi has no realms and syncs nothing, so any host is accepted."""
    from urllib.parse import urlparse

    value = value.rstrip("/")
    if not value or value.startswith("//"):
        return
    try:
        p = urlparse(value)
    except ValueError:
        raise errors.InvalidArgument(f"Invalid X-Container-Sync-To format {value!r}") from None
    if p.scheme not in ("http", "https"):
        raise errors.InvalidArgument(
            f'Invalid scheme {p.scheme!r} in X-Container-Sync-To, must be "//", "http", or "https".')
    if not p.path:
        raise errors.InvalidArgument("Path required in X-Container-Sync-To")
    if p.params or p.query or p.fragment:
        raise errors.InvalidArgument("Params, queries, and fragments not allowed in X-Container-Sync-To")


def _container_meta_updates(request: web.Request) -> dict[str, str | None]:
    updates = parse_meta(request.headers, "container")
    if not request.get(acl.OWNER, True):
        updates = {k: v for k, v in updates.items() if k not in acl.PRIVILEGED_META}
    return updates


def _requested_policy(request: web.Request) -> str | None:
    """The storage policy a container PUT asks for (its configured spelling), None when it
    asks for none (the default's); InvalidArgument (400, Swift's body) for an unknown one."""
    asked = request.headers.get("X-Storage-Policy", "")
    if not asked:
        return None
    found = request.app[STORAGE].find_policy(asked)
    if found is None:
        raise errors.InvalidArgument(f"Invalid X-Storage-Policy '{asked}'")
    return found


async def _container_headers(request: web.Request, project_id: str, name: str) -> dict[str, str]:
    c = await request.app[STORAGE].container(project_id, name)
    h = {
        "X-Container-Object-Count": str(c.object_count),
        "X-Container-Bytes-Used": str(c.bytes_used),
        "X-Timestamp": x_timestamp(c.created_at),
        "X-PUT-Timestamp": x_timestamp(c.put_timestamp),
        "X-Storage-Policy": request.app[STORAGE].policy_name(c.policy),
        "Accept-Ranges": "bytes",
        # Swift's container server: Last-Modified is the put timestamp (a container PUT
        # or POST moves it; object writes do not), rounded up to the second
        "Last-Modified": http_date(c.put_timestamp),
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
        if m == "GET" and "versions" in request.query:  # object_versioning: JSON only, its own checks
            headers = await _container_headers(request, project_id, name)
            return await object_versioning.list_versions(request, await storage.container(project_id, name), headers)
        fmt, ctype = listing_format(request)
        headers = await _container_headers(request, project_id, name)
        c = await storage.container(project_id, name)
        if m == "HEAD":
            return _listing_response(request, 204, None, headers, ctype)
        assert params is not None
        if fmt == "json":  # the fast path clients use (python-swiftclient asks for JSON)
            obj_rows = await storage.list_object_rows(c.key, params)
            raw = render_object_rows(obj_rows)
            raw = await symlink.annotate_listing(storage, project_id, c.key, obj_rows, raw)  # symlink_path
            raw = await object_versioning.annotate_listing(storage, project_id, c, obj_rows, raw)  # version_symlink
            return _listing_response(request, 200, raw, headers, ctype)
        rows = await storage.list_objects(c.key, params)
        body, _ = render_objects(fmt, name, rows)
        return _listing_response(request, 200, body, headers, ctype)
    if m == "PUT":
        if (problem := C.new_container_problem(name)) is not None:
            raise errors.InvalidName(problem)
        meta_updates = _container_meta_updates(request)
        sys_updates = _container_sys_updates(request)
        sys_updates.update(await object_versioning.container_updates(storage, project_id, name, request.headers))
        meta = {k: v for k, v in meta_updates.items() if v is not None}
        meta.update({k: v for k, v in sys_updates.items() if v is not None})
        await quotas.check_container_create(request, project_id, name)  # project's container limit
        policy = _requested_policy(request)  # 400 for an unknown X-Storage-Policy
        if policy is not None:
            existing = await storage.lookup(project_id, name)
            if existing is not None and existing.project_id == project_id \
                    and storage.policy_name(existing.policy) != policy:
                return swift_error(409, method="PUT")  # a container's policy never changes
        try:
            created = await storage.create_container(project_id, name, meta, time.time(), policy=policy)
        except errors.ContainerNameTaken:
            return swift_error(409, "Container name is already in use by another project.\n")
        if not created:
            existing = await storage.container(project_id, name)
            acl.block_public_acls(existing.meta, sys_updates)  # the bucket's S3 PublicAccessBlock
            removals = {k: None for k, v in meta_updates.items() if v is None}
            # a PUT on an existing container updates its ACLs too, as Swift's does
            removals.update(sys_updates)
            if removals:
                await storage.update_container_meta((await storage.container(project_id, name)).key, removals)
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
        await storage.update_container_meta(c.key, updates, put_timestamp=time.time())  # Swift: POST moves it
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
    if request.method == "OPTIONS":  # as the proxy's Controller.OPTIONS: 200 and the methods
        return web.Response(status=200, headers={"Allow": "GET, HEAD, OPTIONS"}, content_type="text/html",
                            charset="UTF-8")
    if request.method not in ("GET", "HEAD"):
        return swift_error(405, method=request.method)
    s = request.app[SETTINGS]
    return web.json_response(
        {
            "swift": C.swift_info(s.max_object_size, request.app[STORAGE].policy_info()),
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
