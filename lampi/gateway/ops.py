"""Operations endpoints: Prometheus metrics, liveness and readiness.

``ops_app`` builds the small aiohttp application served on the metrics listener
(``metrics_port``) and meant to be mounted on other non-S3 listeners (the web
console's): ``/metrics`` (text format, every worker's values, lampi.metrics; with
``metrics_token``, only for ``Authorization: Bearer <token>``), ``/healthcheck`` (the
process answers) and ``/readyz`` (the stores answer). Never on the main port, where
``/metrics`` is an S3 bucket; there readiness is ``READY_PATH``, a path no bucket
can have (lampi.gateway.app).
"""

from __future__ import annotations

import asyncio
import hmac
import logging

from aiohttp import web

from lampi import metrics
from lampi.config import Settings
from lampi.core.storage import Storage

log = logging.getLogger("lampi.ops")

READY_PATH = "/_lampi/ready"  # on the main port: "_" starts no S3 bucket name
CHECK_TIMEOUT = 5.0

STORAGE_KEY = web.AppKey("lampi.ops.storage", Storage)
SETTINGS_KEY = web.AppKey("lampi.ops.settings", Settings)


async def readiness_problems(storage: Storage, timeout: float = CHECK_TIMEOUT) -> list[str]:
    """What keeps the server from serving: the metadata store or a blob store not
    answering (empty: ready)."""
    problems: list[str] = []
    try:
        await asyncio.wait_for(storage.meta.ping(), timeout)
    except asyncio.TimeoutError:
        problems.append(f"metadata store: no answer in {timeout:g} s")
    except Exception as exc:  # any failure means not ready; the reason is reported
        problems.append(f"metadata store: {exc}")
    try:
        await asyncio.wait_for(asyncio.to_thread(storage.blobs.check), timeout)  # type: ignore[attr-defined]
    except asyncio.TimeoutError:
        problems.append(f"blob store: no answer in {timeout:g} s")
    except Exception as exc:
        problems.append(f"blob store: {exc}")
    return problems


async def ready_response(storage: Storage) -> web.Response:
    """200 "OK" when both stores answer, else 503 naming what does not (also logged)."""
    problems = await readiness_problems(storage)
    if problems:
        log.warning("not ready: %s", "; ".join(problems))
        return web.Response(status=503, text="NOT READY\n" + "\n".join(problems) + "\n")
    return web.Response(text="OK\n")


def authorized(settings: Settings, request: web.Request) -> bool:
    """No ``metrics_token``: everyone; else ``Authorization: Bearer <token>``, compared in
    constant time."""
    if not settings.metrics_token:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), settings.metrics_token.encode())


async def metrics_handler(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS_KEY]
    if not authorized(settings, request):
        return web.Response(status=401, text="401 Unauthorized: a bearer token is required\n",
                            headers={"WWW-Authenticate": 'Bearer realm="lampi metrics"'})
    usage = None
    if settings.metrics_usage:
        usage = await request.app[STORAGE_KEY].meta.usage_by_project()
    body = await asyncio.to_thread(metrics.render, usage)  # reads every worker's files
    return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})


async def healthcheck(request: web.Request) -> web.Response:
    return web.Response(text="OK")


async def readyz(request: web.Request) -> web.Response:
    return await ready_response(request.app[STORAGE_KEY])


def ops_app(settings: Settings, storage: Storage) -> web.Application:
    """The metrics and health application (``/metrics``, ``/healthcheck``, ``/readyz``)
    over a worker's ``storage``: served on ``metrics_port``; mount it with
    ``app.add_subapp`` or serve it on any listener that is not an S3 one."""
    app = web.Application()
    add_ops_routes(app, settings, storage)
    return app


def add_ops_routes(app: web.Application, settings: Settings, storage: Storage, prefix: str = "") -> None:
    """Add ``<prefix>/metrics``, ``/healthcheck`` and ``/readyz`` to ``app`` (e.g. the
    console's application)."""
    app[SETTINGS_KEY] = settings
    app[STORAGE_KEY] = storage
    app.router.add_get(prefix + "/metrics", metrics_handler)
    app.router.add_get(prefix + "/healthcheck", healthcheck)
    app.router.add_get(prefix + "/readyz", readyz)
