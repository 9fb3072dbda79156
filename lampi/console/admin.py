"""The console's admin pages: projects, users, role assignments and quotas, for lampi's
cloud admin (the ``admin`` role on the admin project, ``IdentityService.is_cloud_admin``,
the rule the Keystone API applies to its admin reads). Everyone else gets 403.

Each action is the admin CLI's (``lampi project`` / ``user`` / ``role``, lampi/cli/
identity.py) through the same code: ``IdentityService`` (create_project, create_user,
grant_role, revoke_role, delete_*) and ``lampi.core.quotas`` (parse_quota_value,
set_project_quotas), with the same rules (names, roles, a project must be empty to be
deleted; revoking a role or deleting a user ends their tokens). lampi's Keystone API
has no write calls for these (as `lampi` serves it, identity administration is the
CLI's), so the console calls the service in-process, after checking the session's
token as every page does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from lampi.console import views as V
from lampi.core import errors, quotas

Page = Callable[[web.Request, V.Sess], Awaitable[web.StreamResponse]]

_STATUS = {errors.NotFound: 404, errors.Conflict: 409, errors.Forbidden: 403, errors.InvalidArgument: 400,
           errors.InvalidName: 400, errors.ContainerNotEmpty: 409}


def admin_only(fn: Page) -> Page:
    async def handler(request: web.Request, sess: V.Sess) -> web.StreamResponse:
        if not sess.admin:
            return V.render(request, "error.html", status=403, what="Administration",
                            message="Only lampi's administrators (the admin role on the admin project) may "
                                    "use these pages.")
        return await fn(request, sess)
    return handler


def refused(request: web.Request, exc: errors.DomainError, what: str) -> web.Response:
    status = next((st for cls, st in _STATUS.items() if isinstance(exc, cls)), 400)
    return V.render(request, "error.html", status=status, what=what, message=exc.message or "Refused.")


def bad(request: web.Request, what: str, message: str) -> web.Response:
    return V.render(request, "error.html", status=400, what=what, message=message)


def _field(form: dict[str, Any], name: str) -> str:
    v = form.get(name)
    if isinstance(v, list):  # post_form keeps every "name" (the objects of a multi-select)
        v = v[0] if len(v) == 1 else None
    return v.strip() if isinstance(v, str) else ""


@V.page()
@admin_only
async def overview(request: web.Request, sess: V.Sess) -> web.StreamResponse:
    ident = request.app[V.IDENT]
    meta = ident.meta
    defaults = quotas.QuotaDefaults.from_settings(request.app[V.CONF])
    projects = []
    for p in sorted(await meta.list_projects(), key=lambda p: p.name.lower()):
        q = await quotas.set_project_quotas(meta, defaults, p.id, {})  # no updates: the limits and usage
        projects.append({"id": p.id, "name": p.name, "domain_id": p.domain_id, "description": p.description, **q})
    users = sorted(await ident.users_with_roles(), key=lambda u: u["name"].lower())
    return V.render(request, "admin.html", projects=projects, users=users, roles=await ident.list_roles(),
                    csrf=sess.csrf)


@V.page()
@admin_only
async def create_project(request: web.Request, sess: V.Sess) -> web.StreamResponse:
    form = await V.post_form(request, sess)
    name = _field(form, "name")
    try:
        await request.app[V.IDENT].create_project(name, _field(form, "description"))
    except errors.DomainError as exc:
        return refused(request, exc, f"Creating project {name}")
    return V.see_other("/admin#projects-h")


@V.page()
@admin_only
async def delete_project(request: web.Request, sess: V.Sess) -> web.StreamResponse:
    form = await V.post_form(request, sess)
    ident = request.app[V.IDENT]
    ref = _field(form, "project")
    try:
        p = await ident.find_project(ref)
        await ident.delete_project(p.id)  # refused while it has containers
    except errors.DomainError as exc:
        return refused(request, exc, f"Deleting project {ref}")
    return V.see_other("/admin#projects-h")


@V.page()
@admin_only
async def create_user(request: web.Request, sess: V.Sess) -> web.StreamResponse:
    form = await V.post_form(request, sess)
    ident = request.app[V.IDENT]
    name, password = _field(form, "name"), str(form.get("password") or "")
    project_ref, role = _field(form, "project"), _field(form, "role") or "member"
    if password != str(form.get("password2") or ""):
        return bad(request, f"Creating user {name}", "The two passwords differ.")
    try:
        pid = (await ident.find_project(project_ref)).id if project_ref else None
        await ident.create_user(name, password, pid, role)
    except errors.DomainError as exc:
        return refused(request, exc, f"Creating user {name}")
    return V.see_other("/admin#users-h")


@V.page()
@admin_only
async def delete_user(request: web.Request, sess: V.Sess) -> web.StreamResponse:
    form = await V.post_form(request, sess)
    ident = request.app[V.IDENT]
    ref = _field(form, "user")
    try:
        u = await ident.find_user(ref)
        if u.id == sess.user_id:
            return bad(request, f"Deleting user {u.name}", "You cannot delete the user you are logged in as.")
        await ident.delete_user(u.id)  # also ends their tokens
    except errors.DomainError as exc:
        return refused(request, exc, f"Deleting user {ref}")
    return V.see_other("/admin#users-h")


def _role_action(grant: bool) -> Page:
    async def act(request: web.Request, sess: V.Sess) -> web.StreamResponse:
        form = await V.post_form(request, sess)
        ident = request.app[V.IDENT]
        what = "Granting a role" if grant else "Revoking a role"
        user_ref, project_ref, role = _field(form, "user"), _field(form, "project"), _field(form, "role")
        if not (user_ref and project_ref and role):
            return bad(request, what, "Choose a user, a project and a role.")
        try:
            u = await ident.find_user(user_ref)
            p = await ident.find_project(project_ref)
            if grant:
                await ident.grant_role(u.id, p.id, role)
            else:
                await ident.revoke_role(u.id, p.id, role)  # also ends their tokens on that project
        except errors.DomainError as exc:
            return refused(request, exc, what)
        return V.see_other("/admin#users-h")
    return act


@V.page()
@admin_only
async def set_quota(request: web.Request, sess: V.Sess) -> web.StreamResponse:
    """As ``lampi project set-quota``: each value a number, 0 or "unlimited" (no limit),
    "default" (the server's setting again), or empty (unchanged)."""
    form = await V.post_form(request, sess)
    ident = request.app[V.IDENT]
    ref = _field(form, "project")
    updates: dict[str, int | None] = {}
    for key in quotas.QUOTA_KEYS:
        try:
            given, value = quotas.parse_quota_value(_field(form, key))
        except ValueError as exc:
            return bad(request, f"Quotas of {ref}", f"{key.replace('_', ' ')}: {exc}")
        if given:
            updates[key] = value
    try:
        p = await ident.find_project(ref)
        await quotas.set_project_quotas(ident.meta, quotas.QuotaDefaults.from_settings(request.app[V.CONF]), p.id,
                                        updates)
    except errors.DomainError as exc:
        return refused(request, exc, f"Quotas of {ref}")
    return V.see_other("/admin#projects-h")


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/admin", overview)
    r.add_post("/admin/projects", create_project)
    r.add_post("/admin/projects/delete", delete_project)
    r.add_post("/admin/quota", set_quota)
    r.add_post("/admin/users", create_user)
    r.add_post("/admin/users/delete", delete_user)
    r.add_post("/admin/roles/grant", V.page()(admin_only(_role_action(True))))
    r.add_post("/admin/roles/revoke", V.page()(admin_only(_role_action(False))))
