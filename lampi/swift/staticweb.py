"""Static web sites from containers, as OpenStack Swift's staticweb middleware.

Container metadata: ``X-Container-Meta-Web-Index`` (index object, e.g. index.html),
``-Web-Error`` (error pages ``<status><suffix>``, e.g. 404error.html),
``-Web-Listings`` (HTML listings when no index), ``-Web-Listings-CSS``. Applies to
anonymous GET/HEAD (and to authenticated ones sent with ``X-Web-Mode: true``).
Every object or listing it serves is authorized as its own read (``.r:`` for
objects, ``.rlistings`` for listings), as staticweb's subrequests are.
"""

from __future__ import annotations

import html
from urllib.parse import quote

from aiohttp import web

from lampi.core import errors
from lampi.core.authz import Principal
from lampi.core.models import CKey, Container, ListParams
from lampi.http.context import STORAGE
from lampi.swift import acl, objects
from lampi.swift.listing import iso

TRUE = ("true", "1", "yes", "on", "t", "y")


def applies(request: web.Request, principal: Principal | None) -> bool:
    if request.method not in ("GET", "HEAD"):
        return False
    return principal is None or request.headers.get("X-Web-Mode", "").lower() in TRUE


def _web(c: Container) -> tuple[str, str, bool, str]:
    m = c.meta
    return (m.get("web-index", ""), m.get("web-error", ""),
            m.get("web-listings", "").lower() in TRUE, m.get("web-listings-css", ""))


async def _allowed(request: web.Request, principal: Principal | None, project_id: str, container: str,
                   obj: str | None) -> bool:
    try:
        await acl.authorize(request, principal, project_id, container, obj)
    except (errors.Unauthorized, errors.Forbidden):
        return False
    return True


async def _exists(request: web.Request, container: CKey, name: str) -> bool:
    try:
        await request.app[STORAGE].head_object(container, name)
    except errors.ObjectNotFound:
        return False
    return True


async def _error(request: web.Request, principal: Principal | None, c: Container, status: int) -> web.StreamResponse:
    """The ``<status><web-error>`` page with the original status, else Swift's error."""
    _, error, _, _ = _web(c)
    if error:
        page = f"{status}{error}"
        if await _exists(request, c.key, page) and await _allowed(request, principal, c.project_id, c.name, page):
            resp = await _serve(request, c.key, page, status=status)
            return resp
    raise {401: errors.Unauthorized, 403: errors.Forbidden}.get(status, errors.NotFound)()


async def _serve(request: web.Request, container: CKey, name: str, status: int = 200) -> web.StreamResponse:
    storage = request.app[STORAGE]
    rec = await storage.head_object(container, name)
    if status == 200:
        return await objects.get_object(request, container, name)
    resp = web.StreamResponse(status=status)
    resp.content_type = rec.content_type
    resp.content_length = rec.size
    await resp.prepare(request)
    if request.method != "HEAD":
        async for chunk in storage.read_object(rec):
            await resp.write(chunk)
    await resp.write_eof()
    return resp


def _human(n: int) -> str:
    value, suffix = float(n), ""
    for s in ("Ki", "Mi", "Gi", "Ti", "Pi"):
        if value < 1024:
            break
        value /= 1024
        suffix = s
    return f"{int(value)}" if not suffix else f"{value:.1f}{suffix}"


async def _listing(request: web.Request, principal: Principal | None, c: Container, account: str,
                   prefix: str) -> web.StreamResponse:
    if not await _allowed(request, principal, c.project_id, c.name, None):
        return await _error(request, principal, c, 401 if principal is None else 403)
    rows = await request.app[STORAGE].list_objects(c.key, ListParams(prefix=prefix, delimiter="/"))
    if not rows and prefix:
        return await _error(request, principal, c, 404)
    _, _, _, css = _web(c)
    title = html.escape(f"Listing of /v1/{account}/{c.name}/{prefix}")
    if css:
        href = "../" * prefix.count("/") + quote(css)
        style = f'  <link rel="stylesheet" type="text/css" href="{html.escape(href)}" />\n'
    else:
        style = ('  <style type="text/css">\n   h1 {font-size: 1em; font-weight: bold;}\n'
                 '   th {text-align: left; padding: 0px 1em 0px 1em;}\n'
                 '   td {padding: 0px 1em 0px 1em;}\n   a {text-decoration: none;}\n  </style>\n')
    out = ['<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN"\n'
           ' "http://www.w3.org/TR/html4/loose.dtd">\n<html>\n <head>\n'
           f'  <title>{title}</title>\n{style} </head>\n <body>\n'
           f'  <h1 id="title">{title}</h1>\n  <table id="listing">\n'
           '   <tr id="heading">\n    <th class="colname">Name</th>\n'
           '    <th class="colsize">Size</th>\n    <th class="coldate">Date</th>\n   </tr>\n']
    if prefix:
        out.append('   <tr id="parent" class="item">\n    <td class="colname"><a href="../">../</a></td>\n'
                   '    <td class="colsize">&nbsp;</td>\n    <td class="coldate">&nbsp;</td>\n   </tr>\n')
    for r in rows:
        name = r.name[len(prefix):]
        if r.is_subdir:
            out.append(f'   <tr class="item subdir">\n    <td class="colname"><a href="{quote(name)}">'
                       f'{html.escape(name)}</a></td>\n    <td class="colsize">&nbsp;</td>\n'
                       '    <td class="coldate">&nbsp;</td>\n   </tr>\n')
        else:
            kind = " ".join("type-" + html.escape(t) for t in r.content_type.split(";")[0].split("/"))
            out.append(f'   <tr class="item {kind}">\n    <td class="colname"><a href="{quote(name)}">'
                       f'{html.escape(name)}</a></td>\n    <td class="colsize">{_human(r.bytes)}</td>\n'
                       f'    <td class="coldate">{iso(r.last_modified)[:19].replace("T", " ")}</td>\n   </tr>\n')
    out.append("  </table>\n </body>\n</html>\n")
    body = "".join(out)
    return web.Response(status=200, text=None if request.method == "HEAD" else body,
                        content_type="text/html", charset="UTF-8")


def _redirect(request: web.Request) -> web.Response:
    return web.Response(status=301, headers={"Location": request.raw_path.split("?", 1)[0] + "/"},
                        content_type="text/html", charset="UTF-8")


async def maybe_handle(request: web.Request, principal: Principal | None, account: str, project_id: str,
                       container: str, obj: str | None) -> web.StreamResponse | None:
    """Serve the request as a web site, or None when staticweb doesn't apply."""
    c = await request.app[STORAGE].lookup(project_id, container)
    if c is None or c.project_id != project_id:
        return None
    index, error, listings, _ = _web(c)
    raw = request.raw_path.split("?", 1)[0]
    if obj is None:
        if not index and not listings:
            return None
        if not raw.endswith("/"):
            return _redirect(request)
        if index and await _exists(request, c.key, index):
            if await _allowed(request, principal, project_id, container, index):
                return await objects.get_object(request, c.key, index)
            return await _error(request, principal, c, 401 if principal is None else 403)
        if listings:
            return await _listing(request, principal, c, account, "")
        return await _error(request, principal, c, 404)
    if not (index or listings or error):
        return None
    allowed = await _allowed(request, principal, project_id, container, obj)
    if not obj.endswith("/") and await _exists(request, c.key, obj):
        if allowed:
            return None  # an ordinary object GET
        return await _error(request, principal, c, 401 if principal is None else 403)
    if not (index or listings):
        if not allowed:
            return await _error(request, principal, c, 401 if principal is None else 403)
        return await _error(request, principal, c, 404)
    if obj.endswith("/"):
        if index and await _exists(request, c.key, obj + index):
            if await _allowed(request, principal, project_id, container, obj + index):
                return await objects.get_object(request, c.key, obj + index)
        if listings:
            return await _listing(request, principal, c, account, obj)
        return await _error(request, principal, c, 404)
    # "dir" without the slash: redirect when it is a directory (index or entries)
    if (index and await _exists(request, c.key, obj + "/" + index)) or (
        listings and await request.app[STORAGE].list_objects(c.key, ListParams(prefix=obj + "/", limit=1))
    ):
        return _redirect(request)
    return await _error(request, principal, c, 404)
