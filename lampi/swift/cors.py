"""CORS, as Swift's proxy does it per container (``X-Container-Meta-Access-Control-
Allow-Origin`` / ``-Max-Age`` / ``-Expose-Headers``; strict_cors_mode).

Preflight ``OPTIONS`` needs no auth: 200 with ``Allow`` (no Origin), 401 when the
origin or the requested method isn't allowed, else the CORS preflight headers. Actual
requests with an allowed ``Origin`` get ``Access-Control-Allow-Origin`` and
``-Expose-Headers`` on every response (errors too), as Swift's cors_validation does.
"""

from __future__ import annotations

from aiohttp import web

from lampi.http.context import ON_PREPARE, STORAGE
from lampi.swift.errors import swift_error

ACCOUNT_METHODS = ("GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS")
OBJECT_METHODS = ("GET", "HEAD", "PUT", "POST", "DELETE", "COPY", "OPTIONS")
EXPOSE_DEFAULT = ("cache-control", "content-language", "content-type", "expires", "last-modified",
                  "pragma", "etag", "x-timestamp", "x-trans-id", "x-openstack-request-id")


def _origin_allowed(meta: dict[str, str], origin: str) -> bool:
    allowed = meta.get("access-control-allow-origin", "").split()
    return "*" in allowed or origin in allowed


async def _container_meta(request: web.Request, project_id: str, container: str | None) -> dict[str, str] | None:
    if container is None:
        return None
    c = await request.app[STORAGE].lookup(project_id, container)
    if c is None or c.project_id != project_id:
        return None
    return c.meta


async def preflight(request: web.Request, project_id: str, container: str | None,
                    obj: str | None) -> web.Response:
    methods = OBJECT_METHODS if obj is not None else ACCOUNT_METHODS
    headers = {"Allow": ", ".join(methods)}
    origin = request.headers.get("Origin")
    if not origin or container is None:
        return web.Response(status=200, headers=headers)
    meta = await _container_meta(request, project_id, container) or {}
    if not _origin_allowed(meta, origin) or request.headers.get("Access-Control-Request-Method") not in methods:
        resp = swift_error(401, method="OPTIONS")
        resp.headers.update(headers)
        return resp
    if meta.get("access-control-allow-origin", "").strip() == "*":
        headers["Access-Control-Allow-Origin"] = "*"
    else:
        headers["Access-Control-Allow-Origin"] = origin
        headers["Vary"] = "Origin"
    if meta.get("access-control-max-age") is not None:
        headers["Access-Control-Max-Age"] = meta["access-control-max-age"]
    headers["Access-Control-Allow-Methods"] = ", ".join(methods)
    asked = [h.strip() for h in request.headers.get("Access-Control-Request-Headers", "").split(",") if h.strip()]
    if asked:
        headers["Access-Control-Allow-Headers"] = ", ".join(dict.fromkeys(asked))
        headers["Vary"] = (headers["Vary"] + ", " if "Vary" in headers else "") + "Access-Control-Request-Headers"
    return web.Response(status=200, headers=headers)


async def on_actual(request: web.Request, project_id: str, container: str | None) -> None:
    """Arrange CORS headers on the response of a (non-OPTIONS) request with Origin."""
    origin = request.headers.get("Origin")
    if not origin:
        return
    meta = await _container_meta(request, project_id, container)
    if meta is None or not _origin_allowed(meta, origin):
        return  # strict_cors_mode: no CORS headers for origins not allowed

    def add(resp: web.StreamResponse) -> None:
        expose = list(EXPOSE_DEFAULT)
        for h in resp.headers:
            lh = h.lower()
            if lh.startswith("x-container-meta-") or lh.startswith("x-object-meta-"):
                expose.append(lh)
        expose += [h.strip().lower() for h in meta.get("access-control-expose-headers", "").split(" ") if h.strip()]
        resp.headers["Access-Control-Expose-Headers"] = ", ".join(dict.fromkeys(expose))
        if meta.get("access-control-allow-origin", "").strip() == "*":
            resp.headers["Access-Control-Allow-Origin"] = "*"
        else:
            resp.headers["Access-Control-Allow-Origin"] = origin
            resp.headers["Vary"] = "Origin"

    request.setdefault(ON_PREPARE, []).append(add)
