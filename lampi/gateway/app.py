"""Application assembly: outer middleware, dispatch by path, health.

Every request gets a transaction id in Swift's format, returned as ``X-Trans-Id``,
``X-Openstack-Request-Id`` and ``x-amz-request-id``, bound to the log context, and
logged in one access line. Dispatch:

    /healthcheck          200 "OK" without auth
    /, /v3/...            Keystone v3 identity (lampi.identity.keystone)
    /auth/v1.0            Swift v1 auth
    /info                 Swift capabilities
    /v1/AUTH_<p>/...      Swift API (also under /swift/v1/..., as Allas serves it)
    anything else         S3 API, path style (lampi.s3); ``/`` with S3 auth is ListBuckets

S3 takes precedence over all of these on the S3-only port, for virtual-hosted-style
hosts and for any request with S3 credentials (see ``api_of``).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import HttpVersion11, web

from lampi.bg import expirer, lifecycle
from lampi.config import Settings
from lampi.core import sse
from lampi.core.identity import IdentityService
from lampi.core.storage import Storage
from lampi.console.views import build_console_app
from lampi.http.context import (
    BODY_TIMEOUT,
    IDENTITY,
    INFO,
    ON_PREPARE,
    SETTINGS,
    STORAGE,
    PROJECT,
    TRANS_ID,
)
from lampi.identity import keystone
from lampi.log import access_log, trans_id_var
from lampi.s3 import cors as s3_cors
from lampi.s3 import errors as s3_errors
from lampi.s3 import host as s3_host
from lampi.s3 import info as s3_info
from lampi.s3 import router as s3_router
from lampi.s3 import sigv4 as s3_sigv4
from lampi.store.blob.base import BlobStore
from lampi.store.meta.base import MetaStore
from lampi.swift import handlers as swift
from lampi.swift.errors import swift_error

log = logging.getLogger("lampi.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def generate_trans_id() -> str:
    # swift/common/utils: 'tx%s-%010x' % (uuid4().hex[:21], int(time()))
    return "tx%s-%010x" % (uuid.uuid4().hex[:21], int(time.time()))


def _stamp(resp: web.StreamResponse, tid: str) -> None:
    resp.headers["X-Trans-Id"] = tid
    resp.headers["X-Openstack-Request-Id"] = tid
    resp.headers["x-amz-request-id"] = tid


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
            resp = await handler(request)
        except web.HTTPException as exc:
            resp = exc
        except Exception:
            if not request.get(BODY_TIMEOUT):
                log.exception("unhandled error")
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
            _stamp(resp, tid)
        return resp
    finally:
        # a virtual-hosted S3 request (<bucket>.<s3_domain>) names its bucket in the Host
        # header only, not in the path: log it
        bucket = s3_host.virtual_bucket(request) if request.get(API) == "s3" else None
        access_log(request, status, time.monotonic() - start, resp, bucket, request.get(PROJECT))
        trans_id_var.reset(token)


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
    path = request.raw_path.split("?", 1)[0]
    if path.startswith("/v1/") or path.startswith("/swift/v1/") or path in ("/v1", "/swift/v1"):
        return "swift"
    if path in ("/healthcheck", "/healthcheck/"):
        return "health"
    if path in ("/info", "/swift/info", "/info/"):
        return "info"
    if path in ("/auth/v1.0", "/auth/v1.0/", "/v1.0", "/auth/v1", "/swift/auth/v1.0"):
        return "v1auth"
    if path == "/" or path.startswith("/v3/") or path == "/v3":
        return "keystone"  # plain GET / is Keystone version discovery
    return "s3"  # everything else is S3, path style (anonymous: AccessDenied)


async def dispatch(request: web.Request) -> web.StreamResponse:
    api = api_of(request)
    if api == "s3":
        if request.method != "OPTIONS" and "Origin" in request.headers:
            # CORS headers from the bucket's S3 rules, on public links and S3 answers alike
            await s3_cors.on_actual(request, s3_router.bucket_of(request))
        # Allas's public links /<bucket>/<object> (and <bucket>.<s3_domain>/<object>) are
        # anonymous S3 GetObject/HeadObject: S3 headers (x-amz-meta-*), the one access
        # decision (lampi.s3.acl.check → lampi.http.authz.decide), as Allas's RGW answers
        return await s3_router.handle(request)
    if api == "swift":
        return await swift.handle(request)
    if api == "health":
        return await healthcheck(request)
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
    app[STORAGE] = Storage(meta, blobs, settings.bucket_namespace, keys=sse.KeyService(settings.data_path / "keys"))
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
        if tid and "X-Trans-Id" not in resp.headers:
            _stamp(resp, tid)
        for fn in request.get(ON_PREPARE, ()):  # per-request response headers (CORS, TempURL)
            fn(resp)
        if request.get(API) == "swift":
            swift.prepare_response(request, resp)  # swob's last touches (204 length, 401 realm, ...)

    app.on_response_prepare.append(on_response_prepare)
    app.on_startup.append(on_startup)
    # background expirer in every worker (lampi/bg/expirer.py); stops before the stores close
    app.cleanup_ctx.append(expirer.context(app[STORAGE], settings.expirer_interval))
    # S3 bucket lifecycle rules, on the same schedule (lampi/bg/lifecycle.py)
    app.cleanup_ctx.append(lifecycle.context(app[STORAGE], settings.expirer_interval,
                                             settings.lifecycle_day_seconds))
    app.on_cleanup.append(on_cleanup)
    # every path, control characters included: "." would not match a newline, and an
    # object named "a\nb" (valid in Swift and S3) would get aiohttp's bare 404
    app.router.add_route("*", r"/{tail:[\s\S]*}", dispatch, expect_handler=expect_handler)
    return app


@web.middleware
async def _console_api(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[API] = "console"  # access log, and a stalled upload's 408
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
