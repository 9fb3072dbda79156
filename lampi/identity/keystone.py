"""Keystone v3 identity API (the subset clients use) and Swift v1.0 auth.

Reference: https://docs.openstack.org/api-ref/identity/v3/ . Shapes follow what
keystoneauth1, python-keystoneclient and python-openstackclient read:
version discovery at ``/`` and ``/v3``, ``POST /v3/auth/tokens`` (password and token
methods, project or no scope), token validation/revocation, project listings.
Errors use Keystone's ``{"error": {"code", "title", "message"}}``.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from lampi.core import errors
from lampi.core.identity import DEFAULT_DOMAIN, IdentityService, implied_roles, role_id
from lampi.core.models import Domain, Project, User
from lampi.core.tokens import TokenData
from lampi.http.context import IDENTITY, PROJECT, SETTINGS
from lampi.identity import ec2  # EC2 credentials (S3 keys)
from lampi.identity.common import base_url, error
from lampi.identity.common import caller as _caller
from lampi.identity.common import collection as _collection
from lampi.identity.common import optional_str as _str
from lampi.identity.common import read_json as _read_json
from lampi.identity.common import required_object as _obj

API_VERSION = "v3.14"
JSON_TYPE = "application/json"


def fmt_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def swift_prefix(settings: Any) -> str:
    """The path before ``/v1/AUTH_<id>`` in the catalog (setting ``storage_url_form``)."""
    return "/swift" if settings.storage_url_form == "allas" else ""


def storage_url(request: web.Request, project_id: str) -> str:
    return f"{base_url(request)}/v1/AUTH_{project_id}"


def version_doc(request: web.Request) -> dict[str, Any]:
    return {
        "id": API_VERSION,
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": f"{base_url(request)}/v3/"}],
        "media-types": [{"base": JSON_TYPE, "type": "application/vnd.openstack.identity-v3+json"}],
    }


# -- dispatch -----------------------------------------------------------------------


async def handle(request: web.Request) -> web.StreamResponse:
    path = request.path.rstrip("/") or "/"
    m = request.method
    try:
        if path == "/":
            if m not in ("GET", "HEAD"):
                return error(405, "Method Not Allowed")
            return web.json_response({"versions": {"values": [version_doc(request)]}}, status=300)
        if path == "/v3":
            if m not in ("GET", "HEAD"):
                return error(405, "Method Not Allowed")
            return web.json_response({"version": version_doc(request)})
        if path == "/v3/auth/tokens":
            if m == "POST":
                return await create_token(request)
            if m in ("GET", "HEAD"):
                return await validate_token(request, head=m == "HEAD")
            if m == "DELETE":
                return await revoke_token(request)
            return error(405, "Method Not Allowed")
        if path.startswith(("/v3/credentials", "/v3/users/")) and "/credentials" in path:
            ec2_resp = await ec2.route(request, path)
            if ec2_resp is not None:
                return ec2_resp
        if path in ("/v3/auth/projects", "/v3/auth/catalog", "/v3/auth/domains", "/v3/projects",
                    "/v3/users", "/v3/domains", "/v3/roles") or path.startswith(("/v3/users/", "/v3/projects/", "/v3/domains/",
                                                                     "/v3/roles/")):
            if m not in ("GET", "HEAD"):
                return error(405, "Method Not Allowed")
            return await read_api(request, path)
        return error(404, "The resource could not be found.")
    except errors.Unauthorized as exc:
        return error(401, exc.message or "The request you have made requires authentication.", request)
    except errors.Forbidden as exc:
        return error(403, exc.message or "You are not authorized to perform the requested action.")
    except errors.NotFound as exc:
        return error(404, exc.message or "The resource could not be found.")
    except (errors.InvalidArgument, errors.InvalidName) as exc:
        return error(400, exc.message)
    except errors.DataUnavailable as exc:  # a sealed EC2 secret whose key is missing
        return error(503, exc.message)


# -- tokens -------------------------------------------------------------------------


async def _domain_ref(ident: IdentityService, ref: Any, must: bool) -> str | None:
    if ref is None:
        return None
    if not isinstance(ref, dict):
        raise errors.InvalidArgument("domain must be an object")
    did, dname = _str(ref, "id"), _str(ref, "name")
    d = await ident.meta.get_domain(did or dname or "")
    if d is None or (did and d.id != did) or (dname and not did and d.name != dname):
        if must:
            raise errors.Unauthorized("The request you have made requires authentication.")
        raise errors.NotFound(f"Could not find domain: {did or dname}.")
    return d.id


async def _password_user(ident: IdentityService, pw: dict[str, Any]) -> User:
    user = _obj(pw, "user", "password")
    password = _str(user, "password")
    if password is None:
        raise errors.InvalidArgument("'password' is a required property of user")
    uid, uname = _str(user, "id"), _str(user, "name")
    u: User | None = None
    if uid:
        u = await ident.meta.get_user(uid)
        if u is None and not uname:
            # Allas accepts the user *name* in user.id (allas_conf does this)
            u = await ident.meta.find_user(uid, DEFAULT_DOMAIN.id)
    elif uname:
        if "domain" not in user:
            raise errors.InvalidArgument("a user name requires a domain ('domain': {'id' or 'name'})")
        dom = await _domain_ref(ident, user.get("domain"), must=True)
        u = await ident.meta.find_user(uname, dom or DEFAULT_DOMAIN.id)
    else:
        raise errors.InvalidArgument("user requires 'id' or 'name'")
    return await ident.check_password(u, password)


def _scope_ref(scope: Any) -> dict[str, Any] | None | str:
    """Check the scope's shape (400s) without any lookup: the project is looked up only
    after the caller has authenticated, so that unknown and known project names cannot
    be told apart (404 vs 401) with wrong credentials."""
    if scope is None:
        return None
    if scope == "unscoped":
        return "unscoped"
    if not isinstance(scope, dict):
        raise errors.InvalidArgument("scope must be an object")
    if "project" not in scope:
        if "domain" in scope or "system" in scope or "OS-TRUST:trust" in scope:
            raise errors.Unauthorized("lampi issues project-scoped or unscoped tokens only")
        raise errors.InvalidArgument("scope requires 'project'")
    proj = _obj(scope, "project", "scope")
    pid, pname = _str(proj, "id"), _str(proj, "name")
    if not pid:
        if not pname:
            raise errors.InvalidArgument("project requires 'id' or 'name'")
        if "domain" not in proj:
            raise errors.InvalidArgument("a project name requires a domain")
        dom = proj.get("domain")
        if not isinstance(dom, dict):
            raise errors.InvalidArgument("domain must be an object")
        for key in ("id", "name"):
            _str(dom, key)
    return proj


async def _scope_project(ident: IdentityService, proj: dict[str, Any]) -> Project:
    pid, pname = _str(proj, "id"), _str(proj, "name")
    p: Project | None
    if pid:
        p = await ident.meta.get_project(pid)
    else:
        dom = await _domain_ref(ident, proj.get("domain"), must=False)
        p = await ident.meta.find_project(pname or "", dom or DEFAULT_DOMAIN.id)
    if p is None:
        raise errors.NotFound(f"Could not find project: {pid or pname}.")
    return p


async def create_token(request: web.Request) -> web.Response:
    ident = request.app[IDENTITY]
    body = await _read_json(request)
    auth = _obj(body, "auth", "the request")
    identity = _obj(auth, "identity", "auth")
    methods = identity.get("methods")
    if not isinstance(methods, list) or not methods or not all(isinstance(x, str) for x in methods):
        raise errors.InvalidArgument("'methods' must be a non-empty list of strings")
    scope = _scope_ref(auth.get("scope"))
    expires_at: float | None = None
    audit_chain: tuple[str, ...] = ()
    inherited: tuple[str, ...] = ()  # the methods of a token being re-scoped
    if "password" in methods:
        user = await _password_user(ident, _obj(identity, "password", "identity"))
    elif "token" in methods:
        tok = _obj(identity, "token", "identity")
        tid = _str(tok, "id")
        if not tid:
            raise errors.InvalidArgument("'id' is a required property of token")
        old = await ident.validate(tid)
        u = await ident.meta.get_user(old.user_id)
        if u is None or not u.enabled:
            raise errors.Unauthorized("The request you have made requires authentication.")
        user = u
        # a re-scoped token keeps the original expiry (Keystone behaviour)
        expires_at = old.expires_at
        audit_chain = (old.audit_id, *old.audit_chain)[:2]
        # Keystone's token method carries the old token's methods over (its token
        # plugin: ``method_names.extend(token.methods)``): a token re-scoped from a
        # password token lists ["password", "token"]
        inherited = old.methods
        if scope is None and old.project_id:
            raise errors.Forbidden("re-scoping a scoped token needs an explicit scope")
    else:
        raise errors.Unauthorized(f"Unsupported authentication method: {methods[0]}")
    project: Project | None = None
    roles: tuple[str, ...] = ()
    if isinstance(scope, dict):
        project = await _scope_project(ident, scope)
        roles = await ident.scope_roles(user, project)
    elif scope is None and user.default_project_id:
        p = await ident.meta.get_project(user.default_project_id)
        if p is not None:
            r = await ident.meta.roles_for(user.id, p.id)
            if r and p.enabled:
                project, roles = p, implied_roles(tuple(r))
    used = tuple(dict.fromkeys((*inherited, *(m for m in methods if m in ("password", "token")))))
    token, data = await ident.issue_token(
        user, project, roles, used or ("password",),
        expires_at=expires_at, audit_chain=audit_chain,
    )
    if project:
        request[PROJECT] = project.id
    # keystoneauth asks ?nocatalog when it does not need the catalog (include_catalog=False)
    body_out = await token_body(request, data, user, project, catalog="nocatalog" not in request.query)
    resp = web.json_response(body_out, status=201)
    resp.headers["X-Subject-Token"] = token
    return resp


async def token_body(
    request: web.Request, data: TokenData, user: User, project: Project | None, catalog: bool
) -> dict[str, Any]:
    ident = request.app[IDENTITY]
    udom = await ident.meta.get_domain(user.domain_id)
    tok: dict[str, Any] = {
        "methods": list(data.methods),
        "user": {
            "id": user.id,
            "name": user.name,
            "domain": {"id": user.domain_id, "name": udom.name if udom else user.domain_id},
            "password_expires_at": None,
        },
        "audit_ids": [data.audit_id, *data.audit_chain],
        "issued_at": fmt_time(data.issued_at),
        "expires_at": fmt_time(data.expires_at),
    }
    if project is not None:
        pdom = await ident.meta.get_domain(project.domain_id)
        tok["project"] = {
            "id": project.id,
            "name": project.name,
            "domain": {"id": project.domain_id, "name": pdom.name if pdom else project.domain_id},
        }
        tok["is_domain"] = False
        tok["roles"] = [{"id": role_id(r), "name": r} for r in data.roles]
        if catalog:
            tok["catalog"] = build_catalog(request, project.id)
    elif catalog:
        tok["catalog"] = []
    return {"token": tok}


def build_catalog(request: web.Request, project_id: str) -> list[dict[str, Any]]:
    s = request.app[SETTINGS]
    base = base_url(request)

    def endpoints(url: str, svc: str) -> list[dict[str, Any]]:
        return [
            {
                "id": uuid.uuid5(uuid.NAMESPACE_URL, f"{svc}:{iface}").hex,
                "interface": iface,
                "region": s.region,
                "region_id": s.region,
                "url": url,
            }
            for iface in ("public", "internal", "admin")
        ]

    return [
        {
            "id": uuid.uuid5(uuid.NAMESPACE_URL, "lampi:identity").hex,
            "type": "identity",
            "name": "keystone",
            "endpoints": endpoints(f"{base}/v3", "identity"),
        },
        {
            "id": uuid.uuid5(uuid.NAMESPACE_URL, "lampi:object-store").hex,
            "type": "object-store",
            "name": "swift",
            # Allas's form (allas_conf picks https://a3s.fi:443/swift/... out of the
            # catalog); /v1/AUTH_<id> is served too (and v1.0 auth's X-Storage-Url)
            "endpoints": endpoints(f"{base}{swift_prefix(s)}/v1/AUTH_{project_id}", "object-store"),
        },
    ]


async def _subject(request: web.Request) -> tuple[str, TokenData]:
    """The ``X-Subject-Token`` of a GET/HEAD/DELETE /v3/auth/tokens and its data, once
    the caller is checked: its owner or a cloud admin (403 otherwise); 404 when invalid."""
    ident = request.app[IDENTITY]
    caller = await _caller(request)
    subject_token = request.headers.get("X-Subject-Token")
    if not subject_token:
        raise errors.InvalidArgument("X-Subject-Token header is required")
    try:
        subject = await ident.validate(subject_token)
    except errors.Unauthorized:
        raise errors.NotFound("Could not find token.") from None
    if subject.user_id != caller.user_id and not ident.is_cloud_admin(caller.project_id, caller.roles):
        raise errors.Forbidden("You are not authorized to perform the requested action.")
    return subject_token, subject


async def validate_token(request: web.Request, head: bool) -> web.Response:
    ident = request.app[IDENTITY]
    subject_token, subject = await _subject(request)
    user = await ident.meta.get_user(subject.user_id)
    if user is None:
        raise errors.NotFound("Could not find token.")
    project = await ident.meta.get_project(subject.project_id) if subject.project_id else None
    resp: web.Response
    if head:
        resp = web.Response(status=200)
    else:
        nocatalog = "nocatalog" in request.query
        resp = web.json_response(await token_body(request, subject, user, project, not nocatalog))
    resp.headers["X-Subject-Token"] = subject_token
    return resp


async def revoke_token(request: web.Request) -> web.Response:
    _, subject = await _subject(request)
    await request.app[IDENTITY].revoke(subject)
    return web.Response(status=204)


# -- read-only resources --------------------------------------------------------------


def project_json(request: web.Request, p: Project) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "domain_id": p.domain_id,
        "description": p.description,
        "enabled": p.enabled,
        "is_domain": False,
        "parent_id": p.domain_id,
        "tags": [],
        "options": {},
        "links": {"self": f"{base_url(request)}/v3/projects/{p.id}"},
    }


def user_json(request: web.Request, u: User) -> dict[str, Any]:
    return {
        "id": u.id,
        "name": u.name,
        "domain_id": u.domain_id,
        "enabled": u.enabled,
        "default_project_id": u.default_project_id,
        "password_expires_at": None,
        "options": {},
        "links": {"self": f"{base_url(request)}/v3/users/{u.id}"},
    }


def domain_json(request: web.Request, d: Domain) -> dict[str, Any]:
    return {"id": d.id, "name": d.name, "enabled": d.enabled, "description": "", "tags": [], "options": {},
            "links": {"self": f"{base_url(request)}/v3/domains/{d.id}"}}


async def read_api(request: web.Request, path: str) -> web.Response:
    ident = request.app[IDENTITY]
    caller = await _caller(request)
    admin = ident.is_cloud_admin(caller.project_id, caller.roles)
    parts = path.split("/")[2:]  # after /v3
    name_filter = request.query.get("name")

    if parts == ["auth", "projects"]:
        projects = await ident.meta.projects_for_user(caller.user_id)
        return _collection(request, "projects", [project_json(request, p) for p in projects if p.enabled])
    if parts == ["auth", "domains"]:
        d = await ident.meta.get_domain(DEFAULT_DOMAIN.id)
        return _collection(request, "domains", [{"id": d.id, "name": d.name, "enabled": True}] if d else [])
    if parts == ["auth", "catalog"]:
        if not caller.project_id:
            raise errors.Forbidden("the catalog needs a project-scoped token")
        return web.json_response({"catalog": build_catalog(request, caller.project_id),
                                  "links": {"self": str(request.url)}})
    if parts == ["projects"]:
        if admin:
            projects = await ident.meta.list_projects()
        else:
            projects = await ident.meta.projects_for_user(caller.user_id)
            if not name_filter:
                raise errors.Forbidden("You are not authorized to perform the requested action: identity:list_projects.")
        if name_filter:
            projects = [p for p in projects if p.name == name_filter]
        if "domain_id" in request.query:
            projects = [p for p in projects if p.domain_id == request.query["domain_id"]]
        return _collection(request, "projects", [project_json(request, p) for p in projects])
    if len(parts) == 2 and parts[0] == "projects":
        p = await ident.meta.get_project(parts[1])
        if p is None or not (admin or p.id == caller.project_id):
            if p is None:
                raise errors.NotFound(f"Could not find project: {parts[1]}.")
            raise errors.Forbidden("You are not authorized to perform the requested action: identity:get_project.")
        return web.json_response({"project": project_json(request, p)})
    if parts == ["users"]:
        if not admin:
            raise errors.Forbidden("You are not authorized to perform the requested action: identity:list_users.")
        users = await ident.meta.list_users()
        if name_filter:
            users = [u for u in users if u.name == name_filter]
        if "domain_id" in request.query:
            users = [u for u in users if u.domain_id == request.query["domain_id"]]
        return _collection(request, "users", [user_json(request, u) for u in users])
    if len(parts) >= 2 and parts[0] == "users":
        if parts[1] != caller.user_id and not admin:
            raise errors.Forbidden("You are not authorized to perform the requested action.")
        u = await ident.meta.get_user(parts[1])
        if u is None:
            raise errors.NotFound(f"Could not find user: {parts[1]}.")
        if len(parts) == 2:
            return web.json_response({"user": user_json(request, u)})
        if parts[2:] == ["projects"]:
            projects = await ident.meta.projects_for_user(u.id)
            return _collection(request, "projects", [project_json(request, p) for p in projects])
    if parts == ["domains"] or (len(parts) == 2 and parts[0] == "domains"):
        if admin:
            domains = await ident.meta.list_domains()
        else:  # the domains of the caller's projects (Keystone's policy gives others none)
            ids = {p.domain_id for p in await ident.meta.projects_for_user(caller.user_id)}
            domains = [d for d in await ident.meta.list_domains() if d.id in ids or d.id == DEFAULT_DOMAIN.id]
        if len(parts) == 2:
            d = next((d for d in domains if d.id == parts[1]), None)
            if d is None:
                raise errors.NotFound(f"Could not find domain: {parts[1]}.")
            return web.json_response({"domain": domain_json(request, d)})
        if name_filter:
            domains = [d for d in domains if d.name == name_filter]
        return _collection(request, "domains", [domain_json(request, d) for d in domains])
    if parts == ["roles"] or (len(parts) == 2 and parts[0] == "roles"):
        roles = [{"id": role_id(r), "name": r, "domain_id": None, "description": None, "options": {},
                  "links": {"self": f"{base_url(request)}/v3/roles/{role_id(r)}"}}
                 for r in await ident.list_roles()]
        if len(parts) == 2:
            role = next((r for r in roles if r["id"] == parts[1]), None)
            if role is None:
                raise errors.NotFound(f"Could not find role: {parts[1]}.")
            return web.json_response({"role": role})
        if name_filter:
            roles = [r for r in roles if r["name"] == name_filter]
        return _collection(request, "roles", roles)
    raise errors.NotFound("The resource could not be found.")


# -- Swift v1.0 auth (tempauth-style) -----------------------------------------------------


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def v1_auth(request: web.Request) -> web.Response:
    """``GET /auth/v1.0`` with ``X-Auth-User: project:user`` and ``X-Auth-Key``."""
    if request.method not in ("GET", "HEAD"):
        return web.Response(status=405, text="Method Not Allowed\n")
    ident = request.app[IDENTITY]
    user_hdr = request.headers.get("X-Auth-User") or request.headers.get("X-Storage-User") or ""
    key = request.headers.get("X-Auth-Key") or request.headers.get("X-Storage-Pass") or ""
    if ":" not in user_hdr or not key or not (_is_text(user_hdr) and _is_text(key)):
        # bytes that are not UTF-8 (surrogate escapes from aiohttp) name no user: no store lookup
        return web.Response(status=401, text="Unauthorized\n")
    project_name, user_name = user_hdr.split(":", 1)
    user = await ident.meta.find_user(user_name, DEFAULT_DOMAIN.id)
    try:
        user = await ident.check_password(user, key)
        project = await ident.meta.find_project(project_name, DEFAULT_DOMAIN.id) or await ident.meta.get_project(project_name)
        if project is None:
            raise errors.Unauthorized()
        roles = await ident.scope_roles(user, project)
    except errors.Unauthorized:
        return web.Response(status=401, text="Unauthorized\n")
    token, data = await ident.issue_token(user, project, roles, ("password",))
    request[PROJECT] = project.id
    url = storage_url(request, project.id)
    return web.Response(
        status=200,
        headers={
            "X-Storage-Url": url,
            "X-Auth-Token": token,
            "X-Storage-Token": token,
            "X-Auth-Token-Expires": str(int(data.expires_at - time.time())),
        },
    )
