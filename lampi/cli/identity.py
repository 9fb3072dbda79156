"""``lampi domain``, ``lampi project``, ``lampi user``, ``lampi role``: identity
administration on the data dir (projects' quotas included)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from lampi.cli.common import (
    data_dir_option,
    domain_option,
    emit,
    json_option,
    named,
    project_option,
    run_identity,
    settings_of,
    user_option,
)


@click.group()
def project() -> None:
    """Create, list and delete projects (accounts)."""


@project.command("create")
@click.argument("name")
@click.option("--description", default="", help="Free text.")
@click.option("--domain", "domain_ref", default=None, metavar="DOMAIN",
              help="Domain (name or id) of the new project [default: Default].")
@data_dir_option
@json_option
@click.pass_context
def project_create(ctx: click.Context, name: str, description: str, domain_ref: str | None, data_dir: str | None,
                   as_json: bool) -> None:
    """Create project NAME (in domain Default, or --domain)."""
    p = run_identity(settings_of(ctx, data_dir=data_dir), lambda i: i.create_project(name, description, domain_ref))
    emit(as_json, {"id": p.id, "name": p.name, "domain_id": p.domain_id}) if as_json else click.echo(p.id)


@project.command("list")
@data_dir_option
@json_option
@click.pass_context
def project_list(ctx: click.Context, data_dir: str | None, as_json: bool) -> None:
    """List projects."""
    ps = run_identity(settings_of(ctx, data_dir=data_dir), lambda i: i.meta.list_projects())
    data = [{"id": p.id, "name": p.name, "domain_id": p.domain_id, "description": p.description} for p in ps]
    emit(as_json, data, [[p.id, p.name, p.domain_id, p.description] for p in ps],
         ["ID", "Name", "Domain ID", "Description"])


@project.command("delete")
@click.argument("project_ref")
@domain_option
@data_dir_option
@click.pass_context
def project_delete(ctx: click.Context, project_ref: str, domain_ref: str | None, data_dir: str | None) -> None:
    """Delete a project (by name or id); it must have no containers."""

    async def go(i: Any) -> None:
        p = await i.find_project(project_ref, domain_ref)
        await i.delete_project(p.id)  # also ends tokens scoped to it

    run_identity(settings_of(ctx, data_dir=data_dir), go)


# -- users -----------------------------------------------------------------------------


@click.group()
def user() -> None:
    """Create, list and delete users; set passwords."""


@user.command("create")
@click.argument("name")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True, help="The user's password.")
@click.option("--project", "project_ref", default=None, help="Grant a role on this project (name or id).")
@click.option("--role", default=None, metavar="ROLE",
              help="Role on --project (see `lampi role list`) [default: member].")
@click.option("--domain", "domain_ref", default=None, metavar="DOMAIN",
              help="Domain (name or id) of the new user, and of --project when named [default: Default].")
@data_dir_option
@json_option
@click.pass_context
def user_create(ctx: click.Context, name: str, password: str, project_ref: str | None, role: str | None,
                domain_ref: str | None, data_dir: str | None, as_json: bool) -> None:
    """Create user NAME (in domain Default, or --domain)."""
    if role and not project_ref:
        # a role is always on a project; silently dropping it would leave a user without access
        raise click.UsageError("--role needs --project")

    async def go(i: Any) -> Any:
        pid = (await i.find_project(project_ref, domain_ref)).id if project_ref else None
        return await i.create_user(name, password, pid, role or "member", domain_ref)

    u = run_identity(settings_of(ctx, data_dir=data_dir), go)
    emit(as_json, {"id": u.id, "name": u.name, "default_project_id": u.default_project_id}) if as_json else click.echo(u.id)


@user.command("list")
@data_dir_option
@json_option
@click.pass_context
def user_list(ctx: click.Context, data_dir: str | None, as_json: bool) -> None:
    """List users with their role assignments."""

    data = run_identity(settings_of(ctx, data_dir=data_dir), lambda i: i.users_with_roles())
    emit(as_json, data, [[d["id"], d["name"], d["domain_id"],
                          ", ".join(f"{r['role']}@{r['project']}" for r in d["roles"])] for d in data],
         ["ID", "Name", "Domain ID", "Roles"])


@user.command("delete")
@click.argument("user_ref")
@domain_option
@data_dir_option
@click.pass_context
def user_delete(ctx: click.Context, user_ref: str, domain_ref: str | None, data_dir: str | None) -> None:
    """Delete a user (by name or id)."""

    async def go(i: Any) -> None:
        u = await i.find_user(user_ref, domain_ref)
        await i.delete_user(u.id)  # also ends the user's tokens

    run_identity(settings_of(ctx, data_dir=data_dir), go)


@user.command("set-password")
@click.argument("user_ref")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True, help="The new password.")
@domain_option
@data_dir_option
@click.pass_context
def user_set_password(ctx: click.Context, user_ref: str, password: str, domain_ref: str | None,
                      data_dir: str | None) -> None:
    """Set a user's password (the user's existing tokens are revoked, as in Keystone)."""

    async def go(i: Any) -> None:
        u = await i.find_user(user_ref, domain_ref)
        await i.set_password(u.id, password)

    run_identity(settings_of(ctx, data_dir=data_dir), go)


# -- roles -----------------------------------------------------------------------------


@click.group()
def role() -> None:
    """Create, list and delete roles; grant and revoke them to users on projects.

    Built in: admin, member and swiftoperator (operators: full rights on the project's
    storage, ACLs included), reader (reads it), ResellerAdmin (every project's
    storage), service (with an operator's token, the project's SERVICE_ account).
    A role made with `lampi role create` makes a user a project member with no storage
    rights beyond what ACLs grant (as Swift's keystoneauth).
    """


@role.command("create")
@click.argument("name")
@data_dir_option
@json_option
@click.pass_context
def role_create(ctx: click.Context, name: str, data_dir: str | None, as_json: bool) -> None:
    """Create role NAME (unique whatever its case)."""
    from lampi.core.identity import role_id

    r = run_identity(settings_of(ctx, data_dir=data_dir), lambda i: i.create_role(name))
    emit(as_json, {"id": role_id(r), "name": r}) if as_json else click.echo(role_id(r))


@role.command("list")
@data_dir_option
@json_option
@click.pass_context
def role_list(ctx: click.Context, data_dir: str | None, as_json: bool) -> None:
    """List roles, built-in ones first."""
    from lampi.core.authz import BUILTIN_ROLES
    from lampi.core.identity import role_id

    names = run_identity(settings_of(ctx, data_dir=data_dir), lambda i: i.list_roles())
    data = [{"id": role_id(r), "name": r, "builtin": r in BUILTIN_ROLES} for r in names]
    emit(as_json, data, [[d["id"], d["name"], "yes" if d["builtin"] else ""] for d in data],
         ["ID", "Name", "Built in"])


@role.command("delete")
@click.argument("name")
@data_dir_option
@click.pass_context
def role_delete(ctx: click.Context, name: str, data_dir: str | None) -> None:
    """Delete role NAME (not a built-in one) and every assignment of it; the tokens of
    the users who had it stop working."""
    run_identity(settings_of(ctx, data_dir=data_dir), lambda i: i.delete_role(name))


def _role_cmd(grant: bool) -> Callable[..., None]:
    @click.argument("args", nargs=-1, metavar="[USER] [PROJECT] [ROLE]")
    @user_option
    @project_option
    @click.option("--role", "role_opt", default=None, metavar="ROLE",
                  help="The role (see `lampi role list`); or give it as the last argument.")
    @domain_option
    @data_dir_option
    @click.pass_context
    def cmd(ctx: click.Context, args: tuple[str, ...], user_opt: str | None, project_opt: str | None,
            role_opt: str | None, domain_ref: str | None, data_dir: str | None) -> None:
        user_ref, project_ref, role_name = named(args, {"user": user_opt, "project": project_opt, "role": role_opt})

        async def go(i: Any) -> None:
            u = await i.find_user(user_ref, domain_ref)
            p = await i.find_project(project_ref, domain_ref)
            if grant:
                await i.grant_role(u.id, p.id, role_name)
            else:
                await i.revoke_role(u.id, p.id, role_name)  # also ends tokens carrying it

        run_identity(settings_of(ctx, data_dir=data_dir), go)

    return cmd


role.command("grant", help="Give USER the role ROLE on PROJECT (as arguments, or --user, --project, --role).")(
    _role_cmd(True))
role.command("revoke", help="Take the role ROLE on PROJECT from USER (as arguments, or --user, --project, --role).")(
    _role_cmd(False))


# -- domains ---------------------------------------------------------------------------


@click.group()
def domain() -> None:
    """Create, list and delete domains (Keystone v3: users and projects of other
    organisations, whose names may repeat those of domain Default)."""


@domain.command("create")
@click.argument("name")
@data_dir_option
@json_option
@click.pass_context
def domain_create(ctx: click.Context, name: str, data_dir: str | None, as_json: bool) -> None:
    """Create domain NAME; print its id."""
    d = run_identity(settings_of(ctx, data_dir=data_dir), lambda i: i.create_domain(name))
    emit(as_json, {"id": d.id, "name": d.name}) if as_json else click.echo(d.id)


@domain.command("list")
@data_dir_option
@json_option
@click.pass_context
def domain_list(ctx: click.Context, data_dir: str | None, as_json: bool) -> None:
    """List domains."""
    ds = run_identity(settings_of(ctx, data_dir=data_dir), lambda i: i.meta.list_domains())
    data = [{"id": d.id, "name": d.name, "enabled": d.enabled} for d in ds]
    emit(as_json, data, [[d.id, d.name] for d in ds], ["ID", "Name"])


@domain.command("delete")
@click.argument("domain_ref")
@data_dir_option
@click.pass_context
def domain_delete(ctx: click.Context, domain_ref: str, data_dir: str | None) -> None:
    """Delete a domain (by name or id); it must have no projects and no users."""
    run_identity(settings_of(ctx, data_dir=data_dir), lambda i: i.delete_domain(domain_ref))


# -- fsck ------------------------------------------------------------------------------


# -- project quotas (lampi/core/quotas.py) -----------------------------------------------


def _quota_value(text: str | None) -> tuple[bool, int | None]:
    """(given, value): lampi.core.quotas.parse_quota_value, a usage error otherwise."""
    from lampi.core.quotas import parse_quota_value

    try:
        return parse_quota_value(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@project.command("set-quota")
@click.argument("project_ref")
@click.option("--bytes", "qbytes", default=None, metavar="N",
              help="Storage quota in bytes [default: setting quota_bytes, 10 TiB].")
@click.option("--containers", default=None, metavar="N",
              help="Maximum number of containers [default: setting quota_containers, 1000].")
@click.option("--objects-per-container", default=None, metavar="N",
              help="Maximum objects in one container [default: setting quota_objects_per_container, 500000].")
@domain_option
@data_dir_option
@json_option
@click.pass_context
def project_set_quota(ctx: click.Context, project_ref: str, qbytes: str | None, containers: str | None,
                      objects_per_container: str | None, domain_ref: str | None, data_dir: str | None,
                      as_json: bool) -> None:
    """Set the quotas of a project (by name or id); show them when no option is given.

    Each value is a number, 0 or 'unlimited' for no limit, or 'default' to follow the
    server's settings again. Takes effect at once, also on a running server.
    """
    from lampi.core.quotas import QuotaDefaults, set_project_quotas

    updates: dict[str, int | None] = {}
    for key, text in (("bytes", qbytes), ("containers", containers),
                      ("objects_per_container", objects_per_container)):
        given, value = _quota_value(text)
        if given:
            updates[key] = value
    settings = settings_of(ctx, data_dir=data_dir)

    async def go(i: Any) -> dict[str, Any]:
        p = await i.find_project(project_ref, domain_ref)
        return await set_project_quotas(i.meta, QuotaDefaults.from_settings(settings), p.id, updates)

    data = run_identity(settings, go)
    shown = {k: ("unlimited" if v == 0 and k in ("bytes", "containers", "objects_per_container") else str(v))
             for k, v in data.items()}
    emit(as_json, data, [[k, v] for k, v in shown.items()], ["Quota", "Value"])
