"""Application assembly: outer middleware, dispatch by path, health.

Every request gets a transaction id in Swift's format, returned as ``X-Trans-Id``,
``X-Openstack-Request-Id`` and ``x-amz-request-id``, bound to the log context, and
logged in one access line. Dispatch:

    /healthcheck          200 "OK" without auth
    /_lampi/ready         readiness: 200 when the stores answer, else 503 (lampi.gateway.ops)
    /, /v3/...            Keystone v3 identity (lampi.identity.keystone)
    /auth/v1.0            Swift v1 auth
    /info                 Swift capabilities
    /v1/AUTH_<p>/...      Swift API (also under /swift/v1/..., as Allas serves it)
    anything else         S3 API, path style (lampi.s3); ``/`` with S3 auth is ListBuckets

S3 takes precedence over all of these on the S3-only port, for virtual-hosted-style
hosts and for any request with S3 credentials (see ``api_of``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import HttpVersion11, web

from lampi import metrics
from lampi.bg import expirer, lifecycle
from lampi.config import Settings
from lampi.core import sse
from lampi.core.identity import IdentityService
from lampi.core.storage import Storage
from lampi.console.app import build_console_app
from lampi.http.context import (
    AUTH_FAILED,
    BODY_TIMEOUT,
    IDENTITY,
    INFO,
    ON_PREPARE,
    OPERATION,
    SETTINGS,
    STORAGE,
    PROJECT,
    TRANS_ID,
)
from lampi.gateway import ops
from lampi.identity import keystone
from lampi.log import access_log, body_bytes, trans_id_var
from lampi.s3 import cors as s3_cors
from lampi.s3 import errors as s3_errors
from lampi.s3 import host as s3_host
from lampi.s3 import info as s3_info
from lampi.s3 import router as s3_router
from lampi.s3 import sigv4 as s3_sigv4
from lampi.store.blob.base import BlobStore
from lampi.store.meta import memo as meta_memo
from lampi.store.meta.base import MetaStore
from lampi.swift import handlers as swift
from lampi.swift.errors import swift_error

log = logging.getLogger("lampi.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def generate_trans_id() -> str:
    # swift/common/utils: 'tx%s-%010x' % (uuid4().hex[:21], int(time())): 84 random bits
    # in 21 hex digits. An id, not a secret: from ``random`` (reseeded in each forked
    # worker), not uuid4's getrandom() system call and UUID object per request.
    return "tx%021x-%010x" % (random.getrandbits(84), int(time.time()))


def _stamp(resp: web.StreamResponse, tid: str, amz: str = "x-amz-request-id") -> None:
    """The transaction id under each protocol's name for it (``amz``: S3 sends it in
    lower case, Swift title-cases every name, ``lampi.swift.handlers.prepare_response``)."""
    resp.headers["X-Trans-Id"] = tid
    resp.headers["X-Openstack-Request-Id"] = tid
    resp.headers[amz] = tid


@web.middleware
async def outer_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    tid = generate_trans_id()
    request[TRANS_ID] = tid
    token = trans_id_var.set(tid)
    start = time.monotonic()
    status = 500
    resp: web.StreamResponse | None = None
    try:
        try:
            with meta_memo.scope():  # the request's reads remembered (lampi.store.meta.memo)
                resp = await handler(request)
        except web.HTTPException as exc:
            resp = exc
        except Exception:
            if not request.get(BODY_TIMEOUT):
                log.exception("unhandled error")
                metrics.note_error("internal")
            if request.get(API) == "s3":  # S3 clients expect an XML error with a RequestId
                resp = s3_errors.internal_error(request, tid)
            else:
                resp = web.Response(status=500, text="An error occurred\n" if _is_swift(request) else "Internal Server Error\n")
        if request.get(BODY_TIMEOUT) and not resp.prepared:
            # the body stalled (lampi.gateway.guard): whatever the handler made of the cut
            # body (499, IncompleteBody, ...), the client is told it was too slow
            resp = request_timeout(request, tid)
        status = resp.status
        if not resp.prepared:
            _stamp(resp, tid, "X-Amz-Request-Id" if request.get(API) == "swift" else "x-amz-request-id")
        return resp
    finally:
        # a virtual-hosted S3 request (<bucket>.<s3_domain>) names its bucket in the Host
        # header only, not in the path: log it
        bucket = s3_host.virtual_bucket(request) if request.get(API) == "s3" else None
        took = time.monotonic() - start
        access_log(request, status, took, resp, bucket, request.get(PROJECT))
        if metrics.enabled():
            _note_metrics(request, status, took, resp)
        trans_id_var.reset(token)


_SWIFT_LEVELS = ("account", "container", "object")
_KEYSTONE_OPS = frozenset(("auth", "projects", "users", "domains", "roles", "role_assignments", "credentials",
                           "services", "endpoints", "regions", "OS-EC2", "limits", "registered_limits", "groups",
                           "OS-INHERIT", "system", "policies", "OS-TRUST"))


def operation_of(request: web.Request, api: str) -> str:
    """A bounded name for what the request did: S3's operation (GetObject, ...), Swift's
    method and level ("GET object"), Keystone's method and collection ("POST auth")."""
    if api == "s3":
        return request.get(OPERATION) or "unknown"
    path = request.raw_path.split("?", 1)[0]
    if api == "swift":
        rest = path[10:] if path.startswith("/swift/v1/") else path[4:]
        parts = rest.split("/", 2)
        n = len(parts) - (1 if len(parts) == 2 and not parts[1] else 0)
        return f"{request.method} {_SWIFT_LEVELS[min(n, 3) - 1] if n else 'account'}"
    if api == "keystone":
        parts = path.split("/", 3)
        coll = parts[2] if len(parts) > 2 and parts[1] == "v3" else ""
        return f"{request.method} {coll if coll in _KEYSTONE_OPS else ('version' if not coll else 'other')}"
    if api == "console":  # the console's route ("GET /buckets"), a bounded set; static files as one
        resource = request.match_info.route.resource
        canonical = resource.canonical if resource is not None else "other"
        method = request.method if request.method in ("GET", "HEAD", "POST") else "OTHER"
        return f"{method} {'/static' if canonical.startswith('/static') else canonical}"
    return api


def _note_metrics(request: web.Request, status: int, took: float, resp: web.StreamResponse | None) -> None:
    api = request.get(API) or "other"
    sent = body_bytes(request, status, resp) or 0
    received = getattr(request.content, "total_bytes", 0)
    metrics.note_request(api, operation_of(request, api), status, took, received, sent)
    if status == 401 or request.get(AUTH_FAILED):
        if api != "swift" or "X-Auth-Token" in request.headers or "X-Storage-Token" in request.headers \
                or "temp_url_sig" in request.query:
            metrics.note_auth_failure(api)  # an anonymous Swift 401 is no failed authentication
    elif status == 507:
        metrics.note_error("enospc")


def request_timeout(request: web.Request, tid: str) -> web.Response:
    """408 in the request's protocol, closing the connection (the rest of the body is not read)."""
    api = request.get(API) or api_of(request)
    if api == "s3":
        err = s3_errors.S3Error(400, "RequestTimeout", "Your socket connection to the server was not read from "
                                "or written to within the timeout period. Idle connections will be closed.")
        resp = s3_errors.error_response(request, err, request.path, tid)
    elif api == "keystone":
        resp = keystone.error(408, "The request body was not received in time.")
    else:
        resp = swift_error(408, method=request.method)
    resp.force_close()
    return resp


def _is_swift(request: web.Request) -> bool:
    p = request.path
    return p.startswith("/v1/") or p.startswith("/swift/")


async def healthcheck(request: web.Request) -> web.Response:
    return web.Response(text="OK")


API = "lampi.api"
SWIFT_CLIENT = "lampi.swift_client"  # request key: a Swift token came with a request routed to S3


def api_of(request: web.Request) -> str:
    """Which API serves the request (remembered on it): s3, swift, health, info, v1auth, keystone.

    S3 first for the S3-only port, a virtual-hosted ``<bucket>.<s3_domain>`` and any
    request carrying S3 credentials (no Swift or Keystone client sends those), so
    buckets named ``v1``, ``v3``, ``info``, ``auth`` or ``healthcheck`` stay reachable."""
    api = request.get(API)
    if api is None:
        api = _route(request)
        request[API] = api
    return api


def _route(request: web.Request) -> str:
    if s3_host.on_s3_port(request) or s3_host.virtual_bucket(request) is not None or s3_sigv4.is_s3_auth(request):
        return "s3"
    if request.headers.get("X-Auth-Token") or request.headers.get("X-Storage-Token"):
        request[SWIFT_CLIENT] = True  # S3 clients send neither (see dispatch)
    path = request.raw_path.split("?", 1)[0]
    if path.startswith("/v1/") or path.startswith("/swift/v1/") or path in ("/v1", "/swift/v1"):
        return "swift"
    if path in ("/healthcheck", "/healthcheck/"):
        return "health"
    if path == ops.READY_PATH:
        return "ready"
    if path in ("/info", "/swift/info", "/info/"):
        return "info"
    if path in ("/auth/v1.0", "/auth/v1.0/", "/v1.0", "/auth/v1", "/swift/auth/v1.0"):
        return "v1auth"
    if path == "/" or path.startswith("/v3/") or path == "/v3":
        return "keystone"  # plain GET / is Keystone version discovery
    return "s3"  # everything else is S3, path style (anonymous: AccessDenied)


def _swift_bad_path(request: web.Request) -> web.Response:
    """A Swift client's request (a token, no S3 credentials) for a path that is neither
    Swift's nor an existing bucket's: Swift's answer, not S3's XML, as its proxy's
    get_controller decides with ``split_path(path, 1, 4, True)``: an empty first segment
    (``//v1/...``) 404, an account after a version that is not ``v1`` 400, else no
    controller (``/info asdf``): 412 ``Bad URL``."""
    request[API] = "swift"  # sent as Swift's responses are (prepare_response)
    segs = request.path.split("/", 4)
    if segs[0] or not segs[1]:
        return swift_error(404, method=request.method)
    if len(segs) > 2 and segs[2]:
        return swift_error(400, method=request.method)
    return swift_error(412, "Bad URL", method=request.method)


async def dispatch(request: web.Request) -> web.StreamResponse:
    api = api_of(request)
    if api == "s3":
        if request.method != "OPTIONS" and "Origin" in request.headers:
            # CORS headers from the bucket's S3 rules, on public links and S3 answers alike
            await s3_cors.on_actual(request, s3_router.bucket_of(request))
        # Allas's public links /<bucket>/<object> (and <bucket>.<s3_domain>/<object>) are
        # anonymous S3 GetObject/HeadObject: S3 headers (x-amz-meta-*), the one access
        # decision (lampi.s3.acl.check → lampi.http.authz.decide), as Allas's RGW answers
        resp = await s3_router.handle(request)
        if request.get(SWIFT_CLIENT) and request.get(s3_errors.ERROR_CODE) == "NoSuchBucket":
            return _swift_bad_path(request)
        return resp
    if api == "swift":
        return await swift.handle(request)
    if api == "health":
        return await healthcheck(request)
    if api == "ready":
        return await ops.ready_response(request.app[STORAGE])
    if api == "info":
        return await swift.info(request)
    if api == "v1auth":
        return await keystone.v1_auth(request)
    return await keystone.handle(request)


async def expect_handler(request: web.Request) -> None:
    """``Expect: 100-continue``: for S3 the interim response waits until the signature
    and the request's headers were checked (``lampi.s3.body.stream`` sends it, through
    Swift's ``send_continue``), so a refused upload is not sent; an S3 request's other
    ``Expect`` values are ignored; the rest as Swift does."""
    if api_of(request) == "s3":
        if request.version == HttpVersion11 and request.headers.get("Expect", "").lower() == "100-continue":
            request["swift.expect_continue"] = True
        return  # other Expect values are ignored, as AWS and RGW do (no 417)
    await swift.expect_handler(request)


async def _metrics_flusher(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.ensure_future(metrics.flush_forever())
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def build_app(settings: Settings, meta: MetaStore, blobs: BlobStore) -> web.Application:
    app = web.Application(
        middlewares=[outer_middleware],
        client_max_size=1024 * 1024,  # only for bodies read whole (JSON); objects stream
        # auto_decompress off: a Content-Encoding of an object body (gzip, ...) describes
        # the stored bytes; Swift keeps them as sent, so aiohttp must not inflate them.
        handler_args={"max_field_size": 16384, "max_line_size": 16384, "auto_decompress": False},
    )
    identity = IdentityService(meta, settings)
    app[SETTINGS] = settings
    app[INFO] = s3_info.info()
    app[STORAGE] = Storage(meta, blobs, settings.bucket_namespace, keys=sse.KeyService(meta.keys),
                           inline_max=settings.inline_limit())
    app[IDENTITY] = identity

    async def on_startup(app: web.Application) -> None:
        await identity.load_admin_project()

    async def on_cleanup(app: web.Application) -> None:
        await meta.close()
        await blobs.close()

    async def on_response_prepare(request: web.Request, resp: web.StreamResponse) -> None:
        # streamed responses (object GETs) are prepared inside the handler, before the
        # middleware could stamp them: stamp every response here as it is sent
        tid = request.get(TRANS_ID)
        swift_api = request.get(API) == "swift"
        if tid and "X-Trans-Id" not in resp.headers:
            _stamp(resp, tid, "X-Amz-Request-Id" if swift_api else "x-amz-request-id")
        for fn in request.get(ON_PREPARE, ()):  # per-request response headers (CORS, TempURL)
            fn(resp)
        if swift_api:
            swift.prepare_response(request, resp)  # swob's last touches (204 length, 401 realm, ...)

    app.on_response_prepare.append(on_response_prepare)
    app.on_startup.append(on_startup)
    # background expirer in every worker (lampi/bg/expirer.py); stops before the stores close
    app.cleanup_ctx.append(expirer.context(app[STORAGE], settings.expirer_interval))
    # S3 bucket lifecycle rules, on the same schedule (lampi/bg/lifecycle.py)
    app.cleanup_ctx.append(lifecycle.context(app[STORAGE], settings.expirer_interval,
                                             settings.lifecycle_day_seconds))
    app.cleanup_ctx.append(_metrics_flusher)  # request counts into the shared metrics files (lampi.metrics)
    app.on_cleanup.append(on_cleanup)
    # every path, control characters included: "." would not match a newline, and an
    # object named "a\nb" (valid in Swift and S3) would get aiohttp's bare 404
    app.router.add_route("*", r"/{tail:[\s\S]*}", dispatch, expect_handler=expect_handler)
    return app


_CONSOLE_OPS = {"/healthcheck": "health", "/readyz": "ready", "/metrics": "metrics"}


@web.middleware
async def _console_api(request: web.Request, handler: Handler) -> web.StreamResponse:
    # access log, metrics, and a stalled upload's 408; the ops routes (lampi.gateway.ops)
    # mounted on the console's listener count as what they are
    request[API] = _CONSOLE_OPS.get(request.path, "console")
    return await handler(request)


def build_console(settings: Settings, app: web.Application) -> web.Application:
    """The web console (lampi.console) for the listener on ``console_port``: its own
    application over the same storage and identity service as ``app``, behind the same
    outer middleware (transaction id, access log, catch-all 500). Other routes for that
    listener (e.g. ``/metrics``) can be added to it before it starts."""
    console = build_console_app(settings, app[IDENTITY], app[STORAGE], middlewares=(outer_middleware, _console_api))

    async def on_response_prepare(request: web.Request, resp: web.StreamResponse) -> None:
        tid = request.get(TRANS_ID)
        if tid and "X-Trans-Id" not in resp.headers:
            _stamp(resp, tid)

    console.on_response_prepare.append(on_response_prepare)
    return console
