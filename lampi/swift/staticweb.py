"""Static web sites from containers, as OpenStack Swift's staticweb middleware (2.38).

Container metadata: ``X-Container-Meta-Web-Index`` (index object, e.g. index.html),
``-Web-Error`` (error pages ``<status><suffix>``, e.g. 404error.html),
``-Web-Listings`` (HTML listings where no index is), ``-Web-Listings-CSS``,
``-Web-Listings-Label`` (the listing's title instead of the path),
``-Web-Directory-Type`` (content type of directory markers, default
``application/directory``). Applies to anonymous GET/HEAD, to authenticated ones sent
with ``X-Web-Mode: true``, and to requests authorized by a prefix TempURL (whose
parameters the listing's links carry on). Access is decided as Swift's middleware asks
its auth: the container (listing) read for the container's root — anonymous callers
need ``.rlistings`` there, also for its index page —, the object read for paths below
it, a TempURL within its scope. Answers, HTML and redirects are Swift's: a relative
``Location`` becomes absolute on the way out (``handlers.prepare_response``).
"""

from __future__ import annotations

import html
from urllib.parse import quote, unquote

from aiohttp import web

from lampi.core import errors
from lampi.core.authz import Principal
from lampi.core.models import CKey, Container, ListParams
from lampi.http import authz
from lampi.http.context import STORAGE, TEMPURL_SCOPE
from lampi.swift import acl, objects, tempurl
from lampi.swift.errors import swift_error
from lampi.swift.listing import iso

TRUE = ("true", "1", "yes", "on", "t", "y")


def applies(request: web.Request, principal: Principal | None) -> bool:
    if request.method not in ("GET", "HEAD"):
        return False
    return principal is None or request.headers.get("X-Web-Mode", "").lower() in TRUE


class _Site:
    """The container's staticweb settings (Swift's ``_get_container_info``)."""

    def __init__(self, c: Container | None) -> None:
        m = c.meta if c is not None else {}
        self.container = c
        self.index = m.get("web-index", "").strip()
        self.error = m.get("web-error", "").strip()
        self.listings = m.get("web-listings", "").strip()
        self.label = m.get("web-listings-label", "").strip()
        self.css = m.get("web-listings-css", "").strip()
        self.dir_type = m.get("web-directory-type", "").strip() or "application/directory"


def _path(request: web.Request) -> str:
    """The request's path, decoded (Swift's PATH_INFO)."""
    return unquote(request.raw_path.split("?", 1)[0], errors="surrogateescape")


async def _allowed(request: web.Request, principal: Principal | None, project_id: str, container: str,
                   obj: str | None) -> int:
    """0 when the read is allowed, else the status of the refusal (401/403)."""
    try:
        if request.get(TEMPURL_SCOPE) is not None:
            await authz.check_subrequest(request, project_id, container, obj)  # the TempURL's scope
        else:
            await acl.authorize(request, principal, project_id, container, obj)
    except errors.Unauthorized:
        return 401
    except errors.Forbidden:
        return 403
    return 0


async def _object(request: web.Request, container: CKey, name: str) -> tuple[int, str, int]:
    """(status, content type, size) of a GET of ``name`` (200 or 404; no access check)."""
    try:
        rec = await request.app[STORAGE].head_object(container, name)
    except errors.ObjectNotFound:
        return 404, "", 0
    return 200, rec.content_type, rec.size


async def _error(request: web.Request, principal: Principal | None, site: _Site, status: int,
                 response: web.StreamResponse | None = None) -> web.StreamResponse:
    """Swift's ``_error_response``: the ``<status><web-error>`` page, served with the
    original status, when the container names one and it can be read; else the error."""
    c = site.container
    if site.error and c is not None:
        page = f"{status}{site.error}"
        if (await _object(request, c.key, page))[0] == 200 and not await _allowed(
                request, principal, c.project_id, c.name, page):
            return await _serve(request, c.key, page, status=status)
    if response is not None:
        return response
    raise {401: errors.Unauthorized, 403: errors.Forbidden}.get(status, errors.NotFound)()


async def _serve(request: web.Request, container: CKey, name: str, status: int) -> web.StreamResponse:
    storage = request.app[STORAGE]
    rec = await storage.head_object(container, name)
    resp = web.StreamResponse(status=status)
    resp.content_type = rec.content_type
    resp.content_length = rec.size
    await resp.prepare(request)
    if request.method != "HEAD":
        async for chunk in storage.read_object(rec):
            await resp.write(chunk)
    await resp.write_eof()
    return resp


def human_readable(value: int) -> str:
    """Swift's ``utils.human_readable``: 1048576 is "1Mi"."""
    v = float(value)
    index = -1
    suffixes = "KMGTPEZY"
    while v >= 1024 and index + 1 < len(suffixes):
        index += 1
        v = round(v / 1024)
    if index == -1:
        return "%d" % v
    return "%d%si" % (round(v), suffixes[index])


def _css_path(css: str, prefix: str) -> str:
    if css.startswith(("/", "http://", "https://")):
        return quote(css, ":/")
    return "../" * prefix.count("/") + quote(css)


def _tempurl_query(request: web.Request) -> tuple[str, str]:
    """(query carried on the listing's links, the TempURL's prefix) for a listing reached
    through a prefix TempURL; ("", "") otherwise."""
    if request.get(TEMPURL_SCOPE) is None:
        return "", ""
    q = request.query
    prefix = q.get("temp_url_prefix")
    if prefix is None:
        return "", ""
    parts = [f"temp_url_prefix={quote(prefix)}", f"temp_url_expires={quote(q.get('temp_url_expires', ''))}",
             f"temp_url_sig={q.get('temp_url_sig', '')}"]
    if q.get("temp_url_ip_range"):
        parts.append(f"temp_url_ip_range={quote(q['temp_url_ip_range'])}")
    if "inline" in q:
        parts.append("inline")
    return "?" + "&amp;".join(parts), prefix


async def _listing(request: web.Request, principal: Principal | None, site: _Site, prefix: str = "",
                   ) -> web.StreamResponse:
    """Swift's ``_listing``: the HTML listing of ``prefix`` (one level, subdirs first)."""
    c = site.container
    assert c is not None
    label = _path(request)
    if site.label:
        label = "{0}/{1}".format(site.label, "/".join(label.split("/")[4:]))
    if site.listings.lower() not in TRUE:
        body = ("<!DOCTYPE html>\n<html>\n<head>\n"
                f"<title>Listing of {html.escape(label)}</title>\n")
        if site.css:
            body += f'  <link rel="stylesheet" type="text/css" href="{_css_path(site.css, prefix)}" />\n'
        else:
            body += '  <style type="text/css">\n   h1 {font-size: 1em; font-weight: bold;}\n   p {font-size: 2}\n  </style>\n'
        body += ("</head>\n<body>  <h1>Web Listing Disabled</h1>"
                 "   <p>The owner of this web site has disabled web listing."
                 "   <p>If you are the owner of this web site, you can enable"
                 "   web listing by setting X-Container-Meta-Web-Listings.</p>")
        if site.index:
            body += ("<h1>Index File Not Found</h1> <p>The owner of this web site has set "
                     f" <b>X-Container-Meta-Web-Index: {site.index}</b>.  However, this file is not found.</p>")
        body += " </body>\n</html>\n"
        return await _error(request, principal, site, 404, _html(request, 404, body))
    refused = await _allowed(request, principal, c.project_id, c.name, None)  # the listing sub-request
    if refused:
        return await _error(request, principal, site, refused)
    rows = await request.app[STORAGE].list_objects(c.key, ListParams(prefix=prefix, delimiter="/"))
    if prefix and not rows:
        return await _error(request, principal, site, 404)
    qs, tempurl_prefix = _tempurl_query(request)
    out = ["<!DOCTYPE html>\n<html>\n <head>\n", f"  <title>Listing of {html.escape(label)}</title>\n"]
    if site.css:
        out.append(f'  <link rel="stylesheet" type="text/css" href="{_css_path(site.css, prefix)}" />\n')
    else:
        out.append('  <style type="text/css">\n   h1 {font-size: 1em; font-weight: bold;}\n'
                   '   th {text-align: left; padding: 0px 1em 0px 1em;}\n'
                   '   td {padding: 0px 1em 0px 1em;}\n   a {text-decoration: none;}\n  </style>\n')
    out.append(" </head>\n <body>\n"
               f'  <h1 id="title">Listing of {html.escape(label)}</h1>\n'
               '  <table id="listing">\n   <tr id="heading">\n    <th class="colname">Name</th>\n'
               '    <th class="colsize">Size</th>\n    <th class="coldate">Date</th>\n   </tr>\n')
    if len(prefix) > len(tempurl_prefix):
        out.append(f'   <tr id="parent" class="item">\n    <td class="colname"><a href="../{qs}">../</a></td>\n'
                   '    <td class="colsize">&nbsp;</td>\n    <td class="coldate">&nbsp;</td>\n   </tr>\n')
    for r in rows:
        if r.is_subdir:
            name = r.name[len(prefix):]
            out.append('   <tr class="item subdir">\n'
                       f'    <td class="colname"><a href="./{quote(name).replace(".", "%2E")}{qs}">'
                       f'{html.escape(name)}</a></td>\n'
                       '    <td class="colsize">&nbsp;</td>\n    <td class="coldate">&nbsp;</td>\n   </tr>\n')
    for r in rows:
        if not r.is_subdir:
            name = r.name[len(prefix):]
            kind = " ".join("type-" + html.escape(t.lower()) for t in r.content_type.split("/"))
            modified = html.escape(iso(r.last_modified)).split(".")[0].replace("T", " ")
            out.append(f'   <tr class="item {kind}">\n'
                       f'    <td class="colname"><a href="./{quote(name).replace(".", "%2E")}{qs}">'
                       f'{html.escape(name)}</a></td>\n'
                       f'    <td class="colsize">{human_readable(r.bytes)}</td>\n'
                       f'    <td class="coldate">{modified}</td>\n   </tr>\n')
    out.append("  </table>\n </body>\n</html>\n")
    resp = _html(request, 200, "".join(out))
    resp.headers[tempurl.GENERATOR] = "staticweb"  # a TempURL shows it inline; removed on the way out
    return resp


def _html(request: web.Request, status: int, body: str) -> web.Response:
    return web.Response(status=status, text=None if request.method == "HEAD" else body,
                        content_type="text/html", charset="UTF-8")


def _redirect(request: web.Request) -> web.Response:
    """301 to the path with a slash (absolute once sent); a TempURL's query is not kept."""
    location = quote(_path(request).encode("utf-8", "surrogateescape") + b"/")
    resp = swift_error(301, method=request.method)
    resp.headers["Location"] = location
    return resp


async def maybe_handle(request: web.Request, principal: Principal | None, account: str, project_id: str,
                       container: str, obj: str | None) -> web.StreamResponse | None:
    """Serve the request as a web site, or None to go on with the ordinary API."""
    c = await request.app[STORAGE].lookup(project_id, container)
    site = _Site(c if c is not None and c.project_id == project_id else None)
    if obj is None:
        return await _container(request, principal, site, project_id, container)
    return await _object_request(request, principal, site, project_id, container, obj)


async def _container(request: web.Request, principal: Principal | None, site: _Site, project_id: str,
                     container: str) -> web.StreamResponse | None:
    """Swift's ``handle_container``."""
    refused = await _allowed(request, principal, project_id, container, None)
    if refused:
        return await _error(request, principal, site, refused)
    if not site.listings and not site.index:
        if request.headers.get("X-Web-Mode", "f").lower() in TRUE:
            raise errors.NotFound()
        return None
    if not _path(request).endswith("/"):
        return _redirect(request)
    if not site.index:
        return await _listing(request, principal, site)
    assert site.container is not None  # an index is a container's setting
    key = site.container.key
    status, _, _ = await _object(request, key, site.index)
    if status == 404:
        return await _listing(request, principal, site)
    return await objects.get_object(request, key, site.index)


async def _object_request(request: web.Request, principal: Principal | None, site: _Site, project_id: str,
                          container: str, obj: str) -> web.StreamResponse | None:
    """Swift's ``handle_object``: the object itself unless it is missing (or a directory
    marker), then the index below it, a redirect to the slashed path, or a listing."""
    refused = await _allowed(request, principal, project_id, container, obj)
    if refused:
        raise {401: errors.Unauthorized, 403: errors.Forbidden}[refused]()  # no custom page but for 404s
    if site.container is None:
        return None  # the ordinary 404
    key = site.container.key
    status, ctype, size = await _object(request, key, obj)
    if status == 200 and not (ctype == site.dir_type and size <= 1):
        return None  # an ordinary object GET
    if not site.listings and not site.index:
        return None  # the object (a directory marker too) or the ordinary 404
    slashed = _path(request).endswith("/")
    if site.index:
        index = obj + ("" if obj.endswith("/") else "/") + site.index
        if (await _object(request, key, index))[0] == 200:
            if not slashed:
                return _redirect(request)
            if await _allowed(request, principal, project_id, container, index):
                return await _error(request, principal, site, 401 if principal is None else 403)
            return await objects.get_object(request, key, index)
    if not slashed:
        rows = await request.app[STORAGE].list_objects(key, ListParams(prefix=obj + "/", delimiter="/", limit=1))
        if not rows:
            return await _error(request, principal, site, 404)
        return _redirect(request)
    return await _listing(request, principal, site, obj)
