"""The console's pages and actions (server-rendered HTML, one small script).

Each handler checks the session (a valid Keystone token, validated in-process as every
API does), and for a POST its CSRF token, then makes the API requests of
``lampi.console.upstream`` with the user's token. An API's refusal is shown with its
status (403 stays 403).
"""

from __future__ import annotations

import asyncio
import csv
import io
import mimetypes
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from lampi.config import Settings
from lampi.console import session as S
from lampi.console import s3client, sharing
from lampi.console.upstream import Upstream, UpstreamError
from lampi.core import errors, quotas
from lampi.core.authz import READ_ACL_KEY, WRITE_ACL_KEY, Identity, grantee_matches, parse_acl
from lampi.core.identity import IdentityService
from lampi.core.storage import Storage

if TYPE_CHECKING:
    import jinja2

HERE = Path(__file__).parent
KEY = web.AppKey("console.key", bytes)
UPSTREAM = web.AppKey("console.upstream", Upstream)
IDENT = web.AppKey("console.identity", IdentityService)
STORE = web.AppKey("console.storage", Storage)
CONF = web.AppKey("console.settings", Settings)

PAGE_SIZE = 100
PREVIEW_BYTES = 256 * 1024
PUBLIC_ACL = ".r:*,.rlistings"
# content types a browser may show inline from the console's origin (others download)
INLINE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain")
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-src 'self'; object-src 'self'; frame-ancestors 'none'; base-uri 'none'")
RAW_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; object-src 'self'; frame-ancestors 'self'"


@dataclass
class Sess:
    token: str
    user_id: str
    user_name: str
    project_id: str | None
    project_name: str
    expires_at: float
    roles: tuple[str, ...]
    csrf: str
    admin: bool = False  # lampi's cloud admin (the admin role on the admin project): the admin pages


class Redirect(Exception):
    def __init__(self, location: str) -> None:
        self.location = location


class Templates:
    """The console's templates. The Jinja environment is made when the first page is
    rendered, so jinja2 (about 2 MiB of memory in each process) is imported only by a
    server whose console is used."""

    def __init__(self) -> None:
        self._env: jinja2.Environment | None = None

    def get_template(self, name: str) -> jinja2.Template:
        if self._env is None:
            self._env = environment()
        return self._env.get_template(name)


ENV = web.AppKey("console.jinja", Templates)


def environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["size"] = human_size
    env.filters["ts"] = lambda v: (v or "")[:19].replace("T", " ")
    return env


def human_size(n: Any) -> str:
    try:
        v = float(n)
    except (TypeError, ValueError):
        return ""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if v < 1024 or unit == "TiB":
            return f"{int(v)} B" if unit == "B" else f"{v:.1f} {unit}"
        v /= 1024
    return str(n)


def render(request: web.Request, template: str, status: int = 200, **ctx: Any) -> web.Response:
    sess = request.get("console.session")
    html = request.app[ENV].get_template(template).render(sess=sess, **ctx)
    return web.Response(text=html, content_type="text/html", charset="utf-8", status=status)


async def current(request: web.Request, scoped: bool = True) -> Sess:
    """The request's session, or a redirect to the login page (none, forged, expired,
    revoked) or to the project picker (a token not scoped to a project yet)."""
    token = request.cookies.get(S.COOKIE, "")
    if not token:
        raise Redirect("/login")
    ident = request.app[IDENT]
    try:
        data = await ident.validate(token)
    except errors.Unauthorized:
        raise Redirect("/login?expired=1") from None
    if scoped and not data.project_id:
        raise Redirect("/projects")
    user = await ident.meta.get_user(data.user_id)
    project = await ident.meta.get_project(data.project_id) if data.project_id else None
    sess = Sess(token, data.user_id, user.name if user else data.user_id, data.project_id,
                project.name if project else "", data.expires_at, data.roles,
                S.csrf_token(request.app[KEY], token), ident.is_cloud_admin(data.project_id, data.roles))
    request["console.session"] = sess
    return sess


async def post_form(request: web.Request, sess: Sess) -> dict[str, Any]:
    """The POSTed form, after its CSRF token was checked (403 otherwise)."""
    form = await request.post()
    sent = request.headers.get(S.CSRF_HEADER) or form.get(S.CSRF_FIELD)
    if not S.csrf_ok(request.app[KEY], sess.token, sent if isinstance(sent, str) else None):
        raise web.HTTPForbidden(text="CSRF token missing or wrong\n")
    return {k: form.getall(k) if k.endswith("[]") or k == "name" else form.get(k) for k in form}


def check_csrf_header(request: web.Request, sess: Sess) -> None:
    if not S.csrf_ok(request.app[KEY], sess.token, request.headers.get(S.CSRF_HEADER)):
        raise web.HTTPForbidden(text="CSRF token missing or wrong\n")


def problem(request: web.Request, exc: UpstreamError, what: str) -> web.Response:
    messages = {401: "Not allowed (your session may have ended).", 403: "Not allowed.",
                404: "Not found.", 409: "Conflict: the name is taken, or the bucket is not empty.",
                413: "Over quota or too large.", 507: "The server is out of space."}
    msg = messages.get(exc.status, f"The request failed (status {exc.status}).")
    status = exc.status if 400 <= exc.status < 600 else 502
    return render(request, "error.html", status=status, what=what, message=msg)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def page(scoped: bool = True) -> Callable[[Callable[[web.Request, Sess], Awaitable[web.StreamResponse]]], Handler]:
    def wrap(fn: Callable[[web.Request, Sess], Awaitable[web.StreamResponse]]) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                sess = await current(request, scoped)
                return await fn(request, sess)
            except Redirect as r:
                resp = web.HTTPSeeOther(r.location)
                if r.location.startswith("/login"):
                    S.clear_session(resp)
                return resp
        return handler
    return wrap


def see_other(location: str) -> web.Response:
    return web.HTTPSeeOther(location)


# -- login, project picker, logout -----------------------------------------------------


async def login_page(request: web.Request) -> web.Response:
    resp = web.Response(content_type="text/html", charset="utf-8")
    pre = S.pre_session(request, resp)
    status = 200
    if request.get("console.login_error"):
        status = 401
    html = request.app[ENV].get_template("login.html").render(
        sess=None, csrf=S.csrf_token(request.app[KEY], pre), error=request.get("console.login_error", ""),
        expired=request.query.get("expired") == "1", user=request.get("console.login_user", ""),
        domain=request.get("console.login_domain", "Default"))
    resp.text = html
    resp.set_status(status)
    return resp


async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    pre = request.cookies.get(S.PRE_COOKIE, "")
    sent = form.get(S.CSRF_FIELD)
    if not S.csrf_ok(request.app[KEY], pre, sent if isinstance(sent, str) else None):
        raise web.HTTPForbidden(text="CSRF token missing or wrong\n")
    user, password, domain = (str(form.get(k) or "") for k in ("user", "password", "domain"))
    up = request.app[UPSTREAM]
    try:
        token, body = await up.password_token(user, password, domain.strip() or "Default")
        projects = await up.projects(token)
    except UpstreamError as exc:
        request["console.login_error"] = ("Wrong user name, password or domain." if exc.status in (400, 401, 404)
                                          else f"Login failed (status {exc.status}).")
        request["console.login_user"], request["console.login_domain"] = user, domain
        return await login_page(request)
    enabled = [p for p in projects if p.get("enabled", True)]
    if len(enabled) == 1:
        try:
            token2, body = await up.rescope(token, enabled[0]["id"])
        except UpstreamError as exc:
            request["console.login_error"] = f"Login failed (status {exc.status})."
            return await login_page(request)
        token = token2  # (the unscoped token is not revoked: that would revoke its rescoped chain too)
    resp = see_other("/buckets" if len(enabled) == 1 else "/projects")
    S.set_session(request, resp, token, _expiry(body))
    resp.del_cookie(S.PRE_COOKIE, path="/")
    return resp


def _expiry(token_body: dict[str, Any]) -> float:
    from datetime import datetime

    text = str(token_body.get("expires_at", ""))
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time() + 3600


@page(scoped=False)
async def projects_page(request: web.Request, sess: Sess) -> web.StreamResponse:
    projects = await request.app[UPSTREAM].projects(sess.token)
    return render(request, "projects.html", projects=[p for p in projects if p.get("enabled", True)])


@page(scoped=False)
async def choose_project(request: web.Request, sess: Sess) -> web.StreamResponse:
    form = await post_form(request, sess)
    up = request.app[UPSTREAM]
    try:
        token, body = await up.rescope(sess.token, str(form.get("project") or ""))
    except UpstreamError as exc:
        return problem(request, exc, "Choosing the project")
    resp = see_other("/buckets")
    S.set_session(request, resp, token, _expiry(body))
    return resp


@page(scoped=False)
async def logout(request: web.Request, sess: Sess) -> web.StreamResponse:
    await post_form(request, sess)
    await request.app[UPSTREAM].revoke(sess.token)
    resp = see_other("/login")
    S.clear_session(resp)
    return resp


async def root(request: web.Request) -> web.StreamResponse:
    return see_other("/buckets" if request.cookies.get(S.COOKIE) else "/login")


# -- buckets -------------------------------------------------------------------------


def _acl_flags(read_acl: str, own: str) -> tuple[bool, list[str], list[str]]:
    """(public, projects with read, ...) of a read ACL; ``own``: the owner project."""
    referrers, groups = parse_acl(read_acl)
    public = "*" in referrers
    shared = sorted({g.split(":", 1)[0] for g in groups if ":" in g and g.split(":", 1)[0] not in ("*", own)})
    return public, shared, groups


@page()
async def buckets(request: web.Request, sess: Sess) -> web.StreamResponse:
    up = request.app[UPSTREAM]
    assert sess.project_id
    marker = request.query.get("marker", "")
    try:
        rows = await up.list_account(sess.token, sess.project_id, marker, PAGE_SIZE + 1)
    except UpstreamError as exc:
        return problem(request, exc, "Listing buckets")
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]

    async def flags(row: dict[str, Any]) -> dict[str, Any]:
        try:
            h = await up.head_container(sess.token, sess.project_id or "", row["name"])
        except UpstreamError:
            h = {}
        public, readers, _ = _acl_flags(h.get("X-Container-Read", ""), sess.project_id or "")
        _, writers, _ = _acl_flags(h.get("X-Container-Write", ""), sess.project_id or "")
        return {**row, "public": public, "shared": sorted(set(readers) | set(writers))}

    sem = asyncio.Semaphore(8)

    async def limited(row: dict[str, Any]) -> dict[str, Any]:
        async with sem:
            return await flags(row)

    listed = await asyncio.gather(*(limited(r) for r in rows))
    shared = await shared_with(request, sess)
    return render(request, "buckets.html", buckets=listed, shared_with_me=shared,
                  next_marker=rows[-1]["name"] if more and rows else "")


async def shared_with(request: web.Request, sess: Sess) -> list[dict[str, Any]]:
    """Other projects' buckets whose read or write ACL names this user's project (by id,
    name, or this user), with the level (lampi.console.sharing): read in-process, for
    display only; opening one goes through the API with the user's token, which
    decides. A bucket's segments container is not listed beside it."""
    meta = request.app[STORE].meta
    ident = Identity(user_id=sess.user_id, user_name=sess.user_name, project_id=sess.project_id or "",
                     project_name=sess.project_name, accounts=())
    found: dict[tuple[str, str], set[str]] = {}
    for key, access in ((READ_ACL_KEY, "read"), (WRITE_ACL_KEY, "write")):
        for c in await meta.containers_with_meta(key):
            if c.project_id == sess.project_id:
                continue
            _, groups = parse_acl(c.meta.get(key))
            named = [g for g in groups if ":" in g and not g.startswith("*:")]
            if named and grantee_matches(named, ident):
                found.setdefault((c.project_id, c.name), set()).add(access)
    out = []
    for (owner, name), access in sorted(found.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        base = name[:-len(sharing.SEGMENTS_SUFFIX)] if name.endswith(sharing.SEGMENTS_SUFFIX) else None
        if base and (owner, base) in found:
            continue  # the segments container of a bucket listed here
        if access == {"read"}:
            level = "view"
        elif access == {"write"}:
            level = "write"
        else:
            seg = found.get((owner, sharing.segments_of(name)), set())
            level = "collaborate" if "write" in seg else "transfer"
        out.append({"name": name, "owner": owner, "level": level, "access": sharing.LABELS[level]})
    return out


@page()
async def create_bucket(request: web.Request, sess: Sess) -> web.StreamResponse:
    form = await post_form(request, sess)
    name = str(form.get("bucket") or "").strip()
    if not name:
        return render(request, "error.html", status=400, what="Creating a bucket", message="A name is needed.")
    try:
        st = await request.app[UPSTREAM].create_container(sess.token, sess.project_id or "", name)
    except UpstreamError as exc:
        return problem(request, exc, f"Creating bucket {name}")
    if st == 202:  # Swift: the container existed already
        return render(request, "error.html", status=409, what=f"Creating bucket {name}",
                      message="A bucket of that name exists already.")
    tags = s3client.parse_tag_lines(str(form.get("tags") or ""))
    if tags:
        try:
            await request.app[UPSTREAM].put_bucket_tags(sess.token, sess.user_id, sess.project_id or "", name, tags)
        except UpstreamError as exc:
            return tags_problem(request, exc, f"Creating bucket {name}", "The bucket was made, but its tags were "
                                "refused: ")
    return see_other(bucket_url(name))


def tags_problem(request: web.Request, exc: UpstreamError, what: str, lead: str = "") -> web.Response:
    """An S3 refusal of tags, with S3's message (InvalidTag: too many, too long, ...)."""
    if exc.status == 400:
        msg = s3client.error_message(exc.body.encode()) or "The tags were refused."
        return render(request, "error.html", status=400, what=what, message=lead + msg)
    return problem(request, exc, what)


@page()
async def bucket_tags(request: web.Request, sess: Sess) -> web.StreamResponse:
    """The bucket's tags (S3 GetBucketTagging), in a form to edit them."""
    name, owner = target(request, sess)
    if owner != sess.project_id:
        return render(request, "error.html", status=403, what=f"Tags of {name}",
                      message="Only the bucket's own project sees and edits its tags.")
    try:
        tags = await request.app[UPSTREAM].bucket_tags(sess.token, sess.user_id, owner, name)
    except UpstreamError as exc:
        return problem(request, exc, f"Tags of {name}")
    return render(request, "tags.html", bucket=name, tags=tags, url=bucket_url, csrf=sess.csrf,
                  text="\n".join(f"{k}={v}" if v else k for k, v in tags))


@page()
async def edit_bucket_tags(request: web.Request, sess: Sess) -> web.StreamResponse:
    """Replace the bucket's tags (S3 PutBucketTagging; none: DeleteBucketTagging)."""
    form = await post_form(request, sess)
    name, owner = target(request, sess, form)
    if owner != sess.project_id:
        return render(request, "error.html", status=403, what=f"Tags of {name}",
                      message="Only the bucket's own project sees and edits its tags.")
    tags = s3client.parse_tag_lines(str(form.get("tags") or ""))
    try:
        await request.app[UPSTREAM].put_bucket_tags(sess.token, sess.user_id, owner, name, tags)
    except UpstreamError as exc:
        return tags_problem(request, exc, f"Tags of {name}")
    return see_other("/bucket/tags?" + bucket_url(name).split("?", 1)[1])


def bucket_url(name: str, owner: str | None = None, **params: str) -> str:
    from urllib.parse import urlencode

    p = {"bucket": name, **({"owner": owner} if owner else {}), **{k: v for k, v in params.items() if v}}
    return "/bucket?" + urlencode(p)


def target(request: web.Request, sess: Sess, source: Any = None) -> tuple[str, str]:
    """(bucket, account project) a request names: the bucket, and the owner's project
    (another project's shared bucket) or the user's own."""
    src = source if source is not None else request.query
    name = str(src.get("bucket") or "")
    if not name:
        raise web.HTTPBadRequest(text="no bucket named\n")
    owner = str(src.get("owner") or "") or (sess.project_id or "")
    return name, owner


@page()
async def bucket(request: web.Request, sess: Sess) -> web.StreamResponse:
    name, owner = target(request, sess)
    prefix = request.query.get("prefix", "")
    filt = request.query.get("filter", "")
    marker = request.query.get("marker", "")
    up = request.app[UPSTREAM]
    try:
        head = await up.head_container(sess.token, owner, name)
        rows = await up.list_container(sess.token, owner, name, prefix + filt, marker, PAGE_SIZE + 1)
    except UpstreamError as exc:
        return problem(request, exc, f"Opening bucket {name}")
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    folders = [r["subdir"] for r in rows if "subdir" in r]
    objects = [r for r in rows if "subdir" not in r]
    crumbs = []
    acc = ""
    for part in prefix.split("/")[:-1] if prefix else []:
        acc += part + "/"
        crumbs.append((part, acc))
    own = owner == sess.project_id
    public, readers, _ = _acl_flags(head.get("X-Container-Read", ""), owner)
    _, writers, _ = _acl_flags(head.get("X-Container-Write", ""), owner)
    grants: list[tuple[str, str]] = []
    if own and (readers or writers):
        try:
            seg = await up.head_container(sess.token, owner, sharing.segments_of(name))
            seg_acls: sharing.Acls | None = sharing.Acls(seg.get("X-Container-Read", ""),
                                                         seg.get("X-Container-Write", ""))
        except UpstreamError:
            seg_acls = None
        levels = sharing.grantees(sharing.Acls(head.get("X-Container-Read", ""), head.get("X-Container-Write", "")),
                                  seg_acls)
        grants = [(p, sharing.LABELS[lv]) for p, lv in levels.items() if p != owner]
    last = rows[-1] if rows else {}
    return render(
        request, "bucket.html", bucket=name, owner=owner if not own else "", own=own, prefix=prefix, filter=filt,
        folders=folders, objects=objects, crumbs=crumbs, count=head.get("X-Container-Object-Count", "0"),
        bytes=head.get("X-Container-Bytes-Used", "0"), public=public, readers=readers, writers=writers,
        grants=grants, segment_size=request.app[CONF].console_segment_size, public_url=public_link(request.app[CONF], owner, name) if public else "",
        next_marker=(last.get("subdir") or last.get("name", "")) if more else "", url=bucket_url,
        csrf=sess.csrf,
    )


def public_link(settings: Settings, owner: str, name: str) -> str:
    """The anonymous link of a public bucket: ``/<bucket>/`` (Allas's), or per project
    (``bucket_namespace = "project"``) ``/<project_id>:<bucket>/``."""
    from urllib.parse import quote

    ref = f"{owner}:{name}" if settings.bucket_namespace == "project" else name
    return f"{settings.base_url()}/{quote(ref, safe=':')}/"


async def request_body(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(1024 * 1024):
        yield chunk


@page()
async def upload(request: web.Request, sess: Sess) -> web.StreamResponse:
    """One file, the raw request body (the script's XHR, with its progress events)."""
    check_csrf_header(request, sess)
    name, owner = target(request, sess)
    obj = request.query.get("name", "")
    if not obj:
        raise web.HTTPBadRequest(text="no object name\n")
    ctype = request.headers.get("Content-Type") or mimetypes.guess_type(obj)[0] or "application/octet-stream"
    if ctype.startswith("multipart/") or ctype.startswith("application/x-www-form-urlencoded"):
        ctype = "application/octet-stream"
    try:
        await request.app[UPSTREAM].put_object(sess.token, owner, name, obj, request_body(request),
                                              request.content_length, ctype)
    except UpstreamError as exc:
        return web.json_response({"error": exc.status}, status=exc.status if 400 <= exc.status < 600 else 502)
    return web.json_response({"ok": True, "name": obj}, status=201)


@page()
async def delete_objects(request: web.Request, sess: Sess) -> web.StreamResponse:
    form = await post_form(request, sess)
    name, owner = target(request, sess, form)
    names = [str(n) for n in form.get("name", [])]
    up = request.app[UPSTREAM]
    try:
        for n in names:
            await up.delete_object(sess.token, owner, name, n)
    except UpstreamError as exc:
        return problem(request, exc, f"Deleting from {name}")
    return see_other(bucket_url(name, owner if owner != sess.project_id else None,
                                prefix=str(form.get("prefix") or "")))


@page()
async def delete_bucket(request: web.Request, sess: Sess) -> web.StreamResponse:
    """The bucket and everything in it, once the form confirms the count it was shown."""
    form = await post_form(request, sess)
    name, owner = target(request, sess, form)
    up = request.app[UPSTREAM]
    try:
        head = await up.head_container(sess.token, owner, name)
        count = head.get("X-Container-Object-Count", "0")
        if str(form.get("confirm") or "") != count:
            return render(request, "error.html", status=409, what=f"Deleting bucket {name}",
                          message=f"The bucket holds {count} object(s); confirm that number to delete it.")
        while True:
            rows = await up.list_container(sess.token, owner, name, limit=1000, delimiter=None)
            if not rows:
                break
            for r in rows:  # an SLO with its segments (its listing row has slo_etag)
                await up.delete_object(sess.token, owner, name, r["name"], manifest="slo_etag" in r)
        await up.delete_container(sess.token, owner, name)
    except UpstreamError as exc:
        return problem(request, exc, f"Deleting bucket {name}")
    return see_other("/buckets")


@page()
async def copy_bucket(request: web.Request, sess: Sess) -> web.StreamResponse:
    """A new bucket of the user's project holding copies of every object of this one
    (each a server-side copy through the Swift API: read access to the source, the
    project's quotas and name rules apply)."""
    form = await post_form(request, sess)
    name, owner = target(request, sess, form)
    dest = str(form.get("dest") or "").strip()
    if not dest:
        return render(request, "error.html", status=400, what=f"Copying {name}", message="Name the new bucket.")
    up = request.app[UPSTREAM]
    mine = sess.project_id or ""
    try:
        await up.head_container(sess.token, owner, name)
        if await up.create_container(sess.token, mine, dest) == 202:
            return render(request, "error.html", status=409, what=f"Copying {name}",
                          message="A bucket of that name exists already.")
        marker = ""
        while True:
            rows = await up.list_container(sess.token, owner, name, marker=marker, limit=1000, delimiter=None)
            if not rows:
                break
            for r in rows:
                await up.copy_object(sess.token, mine, name, dest, r["name"],
                                     src_account=owner if owner != mine else None)
            marker = rows[-1]["name"]
    except UpstreamError as exc:
        return problem(request, exc, f"Copying {name} to {dest}")
    return see_other(bucket_url(dest))


@page()
async def share(request: web.Request, sess: Sess) -> web.StreamResponse:
    """Share the bucket with a project at a level (View, Transfer, Collaborate), or revoke
    its share (``remove=1``): ``<project>:*`` in the Swift read / write ACLs of the bucket
    and of its segments container, as ``a-access`` does (lampi.console.sharing). The
    ACL POSTs are the user's own: only the bucket's owners may make them."""
    form = await post_form(request, sess)
    name, owner = target(request, sess, form)
    project = str(form.get("project") or "").strip()
    remove = form.get("remove") == "1"
    level = None if remove else sharing.level_of(str(form.get("access") or "view"))
    if not sharing.valid_project(project):
        return render(request, "error.html", status=400, what=f"Sharing {name}",
                      message="Give the project id (its Share ID) of the project to share with.")
    if not remove and level is None:
        return render(request, "error.html", status=400, what=f"Sharing {name}",
                      message="Choose View, Transfer or Collaborate.")
    if project == owner:
        return render(request, "error.html", status=400, what=f"Sharing {name}",
                      message="That is the bucket's own project.")
    (read, write), (seg_read, seg_write) = sharing.wanted(level)
    up = request.app[UPSTREAM]
    segments = sharing.segments_of(name)
    try:
        head = await up.head_container(sess.token, owner, name)
        old = sharing.Acls(head.get("X-Container-Read", ""), head.get("X-Container-Write", ""))
        new = sharing.edit(old, project, read, write)
        if new != old:
            await up.post_container(sess.token, owner, name, {"X-Container-Read": new.read,
                                                               "X-Container-Write": new.write})
        try:
            seg_head: Any = await up.head_container(sess.token, owner, segments)
        except UpstreamError as exc:
            if exc.status != 404:
                raise
            seg_head = None
        if seg_head is None and seg_write:
            await up.create_container(sess.token, owner, segments)  # a-access makes it too
            seg_head = {}
        if seg_head is not None:
            old = sharing.Acls(seg_head.get("X-Container-Read", ""), seg_head.get("X-Container-Write", ""))
            new = sharing.edit(old, project, seg_read, seg_write)
            if new != old:
                await up.post_container(sess.token, owner, segments, {"X-Container-Read": new.read,
                                                                       "X-Container-Write": new.write})
    except UpstreamError as exc:
        return problem(request, exc, f"Sharing {name}")
    return see_other(bucket_url(name, owner if owner != sess.project_id else None))


@page()
async def publish(request: web.Request, sess: Sess) -> web.StreamResponse:
    """Public access on or off: ``.r:*,.rlistings`` in the read ACL of the bucket and of
    its segments container, when there is one (``a-publish``: a large object's segments
    must be readable too)."""
    form = await post_form(request, sess)
    name, owner = target(request, sess, form)
    on = form.get("public") == "1"
    up = request.app[UPSTREAM]
    try:
        for container in (name, sharing.segments_of(name)):
            try:
                head = await up.head_container(sess.token, owner, container)
            except UpstreamError as exc:
                if exc.status == 404 and container != name:
                    continue  # no segments container
                raise
            items = [i.strip() for i in head.get("X-Container-Read", "").split(",") if i.strip()]
            items = [i for i in items if i not in (".r:*", ".rlistings")]
            if on:
                items += PUBLIC_ACL.split(",")
            await up.post_container(sess.token, owner, container, {"X-Container-Read": ",".join(items)})
    except UpstreamError as exc:
        return problem(request, exc, f"Changing public access of {name}")
    return see_other(bucket_url(name, owner if owner != sess.project_id else None))


# -- objects -------------------------------------------------------------------------


@page()
async def object_page(request: web.Request, sess: Sess) -> web.StreamResponse:
    name, owner = target(request, sess)
    obj = request.query.get("name", "")
    up = request.app[UPSTREAM]
    try:
        head = await up.head_object(sess.token, owner, name, obj)
    except UpstreamError as exc:
        return problem(request, exc, f"Opening {obj}")
    ctype = head.get("Content-Type", "").split(";")[0].strip().lower()
    kind = ("image" if ctype in IMAGE_TYPES else "pdf" if ctype == "application/pdf"
            else "csv" if ctype in ("text/csv", "application/csv") or obj.lower().endswith(".csv")
            else "text" if ctype.startswith("text/") or ctype in ("application/json", "application/xml") else "")
    text, table, truncated = "", [], False
    if kind in ("text", "csv"):
        try:
            r = await up.stream(up.account_path(owner, name, obj), sess.token,
                                headers={"Range": f"bytes=0-{PREVIEW_BYTES - 1}"})
            try:
                raw = await r.content.read(PREVIEW_BYTES + 1)
            finally:
                r.release()
        except UpstreamError as exc:
            return problem(request, exc, f"Previewing {obj}")
        truncated = int(head.get("Content-Length", "0") or 0) > PREVIEW_BYTES
        text = raw[:PREVIEW_BYTES].decode("utf-8", "replace")
        if kind == "csv":
            table = list(csv.reader(io.StringIO(text)))[:500]
    meta = sorted((k[len("X-Object-Meta-"):], v) for k, v in head.items() if k.lower().startswith("x-object-meta-"))
    base = {"bucket": name, "name": obj, **({"owner": owner} if owner != sess.project_id else {})}
    from urllib.parse import urlencode

    temp = request.get("console.temp_url")
    return render(request, "object.html", temp_url=temp[0] if temp else "",
                  temp_expires=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(temp[1])) if temp else "",
                  meta_text="\n".join(f"{k}: {v}" for k, v in meta), bucket=name, owner=owner if owner != sess.project_id else "", obj=obj,
                  head=head, ctype=ctype, kind=kind, text=text, table=table, truncated=truncated, meta=meta,
                  raw_url="/raw?" + urlencode(base), download_url="/raw?" + urlencode({**base, "download": "1"}),
                  url=bucket_url, csrf=sess.csrf, parent=obj.rsplit("/", 1)[0] + "/" if "/" in obj else "")


@page()
async def raw(request: web.Request, sess: Sess) -> web.StreamResponse:
    """The object's bytes: inline only for the types in INLINE_TYPES (never HTML or SVG
    from the console's origin), else as a download; nosniff, a CSP of its own."""
    name, owner = target(request, sess)
    obj = request.query.get("name", "")
    up = request.app[UPSTREAM]
    try:
        r = await up.stream(up.account_path(owner, name, obj), sess.token)
    except UpstreamError as exc:
        return problem(request, exc, f"Reading {obj}")
    try:
        ctype = r.headers.get("Content-Type", "application/octet-stream").split(";")[0].strip().lower()
        inline = ctype in INLINE_TYPES and request.query.get("download") != "1"
        resp = web.StreamResponse(headers={
            "Content-Type": (ctype + ("; charset=utf-8" if ctype == "text/plain" else "")) if inline
            else "application/octet-stream",
            "Content-Disposition": ("inline" if inline else "attachment") + "; filename*=UTF-8''"
            + _quote(obj.rsplit("/", 1)[-1] or "download"),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": RAW_CSP if ctype == "application/pdf" else RAW_CSP + "; sandbox",
            "Cache-Control": "private, no-store",
        })
        if "Content-Length" in r.headers:
            resp.content_length = int(r.headers["Content-Length"])
        await resp.prepare(request)
        async for chunk in r.content.iter_chunked(1024 * 1024):
            await resp.write(chunk)
        await resp.write_eof()
        return resp
    finally:
        r.release()


def _quote(s: str) -> str:
    from urllib.parse import quote

    return quote(s, safe="")


TEMPURL_MAX = 30 * 86400
META_NAME = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


@page()
async def edit_meta(request: web.Request, sess: Sess) -> web.StreamResponse:
    """Replace the object's metadata (Swift POST: the whole set) with the form's
    ``key: value`` lines."""
    form = await post_form(request, sess)
    name, owner = target(request, sess, form)
    obj = str(form.get("object") or "")
    headers = {}
    for line in str(form.get("meta") or "").splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not sep or not key or not set(key) <= META_NAME or not value.isprintable():
            return render(request, "error.html", status=400, what=f"Editing the metadata of {obj}",
                          message="Each line is a name (letters, digits, '-', '_'), a colon and a value.")
        headers[f"X-Object-Meta-{key}"] = value
    try:
        await request.app[UPSTREAM].post_object(sess.token, owner, name, obj, headers)
    except UpstreamError as exc:
        return problem(request, exc, f"Editing the metadata of {obj}")
    return see_other(object_url(name, owner if owner != sess.project_id else None, obj))


def object_url(bucket: str, owner: str | None, obj: str) -> str:
    from urllib.parse import urlencode

    return "/object?" + urlencode({"bucket": bucket, **({"owner": owner} if owner else {}), "name": obj})


@page()
async def temp_url(request: web.Request, sess: Sess) -> web.StreamResponse:
    """A Swift temp URL for GET of the object, valid for the chosen time, signed with the
    bucket's temp URL key (made, as ``swift post -m Temp-URL-Key:...``, if it has none):
    only those who may read and change that key (the bucket's owners) can make one."""
    import hashlib
    import hmac
    import secrets
    from urllib.parse import quote

    form = await post_form(request, sess)
    name, owner = target(request, sess)  # in the query: the answer is the object's page
    obj = request.query.get("name", "")
    try:
        seconds = int(str(form.get("seconds") or "3600"))
    except ValueError:
        seconds = 0
    if not 60 <= seconds <= TEMPURL_MAX:
        return render(request, "error.html", status=400, what=f"A temporary link to {obj}",
                      message="Choose between one minute and 30 days.")
    up = request.app[UPSTREAM]
    try:
        await up.head_object(sess.token, owner, name, obj)
        head = await up.head_container(sess.token, owner, name)
        key = head.get("X-Container-Meta-Temp-Url-Key", "")
        if not key:
            key = secrets.token_hex(32)
            await up.post_container(sess.token, owner, name, {"X-Container-Meta-Temp-URL-Key": key})
            head = await up.head_container(sess.token, owner, name)
            if head.get("X-Container-Meta-Temp-Url-Key", "") != key:
                raise UpstreamError(403)
    except UpstreamError as exc:
        return problem(request, exc, f"A temporary link to {obj}")
    expires = int(time.time()) + seconds
    path = f"/v1/AUTH_{owner}/{name}/{obj}"
    sig = hmac.new(key.encode(), f"GET\n{expires}\n{path}".encode(), hashlib.sha256).hexdigest()
    link = (f"{request.app[CONF].base_url()}/v1/AUTH_{quote(owner, safe='')}/{quote(name, safe='')}/"
            f"{quote(obj, safe='/')}?temp_url_sig={sig}&temp_url_expires={expires}")
    request["console.temp_url"] = (link, expires)
    return await object_page(request)


# -- S3 keys, usage ------------------------------------------------------------------


@page()
async def keys(request: web.Request, sess: Sess) -> web.StreamResponse:
    try:
        creds = await request.app[UPSTREAM].ec2_list(sess.token, sess.user_id)
    except UpstreamError as exc:
        return problem(request, exc, "Listing S3 keys")
    creds = [c for c in creds if c.get("tenant_id") == sess.project_id]
    return render(request, "keys.html", creds=creds, new=None, csrf=sess.csrf,
                  endpoint=request.app[CONF].base_url())


@page()
async def create_key(request: web.Request, sess: Sess) -> web.StreamResponse:
    await post_form(request, sess)
    up = request.app[UPSTREAM]
    try:
        new = await up.ec2_create(sess.token, sess.user_id, sess.project_id or "")
        creds = [c for c in await up.ec2_list(sess.token, sess.user_id) if c.get("tenant_id") == sess.project_id]
    except UpstreamError as exc:
        return problem(request, exc, "Creating an S3 key")
    # the secret is shown once, in this answer (never stored by the console; not cached)
    resp = render(request, "keys.html", status=201, creds=creds, new=new, csrf=sess.csrf,
                  endpoint=request.app[CONF].base_url())
    return resp


@page()
async def delete_key(request: web.Request, sess: Sess) -> web.StreamResponse:
    form = await post_form(request, sess)
    try:
        await request.app[UPSTREAM].ec2_delete(sess.token, sess.user_id, str(form.get("access") or ""))
    except UpstreamError as exc:
        return problem(request, exc, "Deleting an S3 key")
    return see_other("/keys")


@page()
async def usage(request: web.Request, sess: Sess) -> web.StreamResponse:
    try:
        h = await request.app[UPSTREAM].head_account(sess.token, sess.project_id or "")
    except UpstreamError as exc:
        return problem(request, exc, "Reading usage")
    limits = await quotas.project_limits(request.app[STORE].meta,
                                         quotas.QuotaDefaults.from_settings(request.app[CONF]),
                                         sess.project_id or "")
    used = int(h.get("X-Account-Bytes-Used", "0") or 0)
    buckets_n = int(h.get("X-Account-Container-Count", "0") or 0)
    return render(request, "usage.html", used=used, objects=h.get("X-Account-Object-Count", "0"),
                  buckets_n=buckets_n, limits=limits,
                  pct=(min(100, round(100 * used / limits.bytes)) if limits.bytes else 0),
                  bpct=(min(100, round(100 * buckets_n / limits.containers)) if limits.containers else 0))


# -- the application -----------------------------------------------------------------


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    resp = await handler(request)
    resp.headers.setdefault("Content-Security-Policy", CSP)
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("X-Frame-Options", "DENY" if "frame-ancestors 'none'" in
                            resp.headers["Content-Security-Policy"] else "SAMEORIGIN")
    resp.headers.setdefault("Referrer-Policy", "same-origin")
    resp.headers.setdefault("Cache-Control", "no-store")
    return resp
