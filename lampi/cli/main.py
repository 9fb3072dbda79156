"""``lampi`` command line: serve, init, openrc, domain/project/user/role/credential administration, fsck.

Every setting is a flag, a ``LAMPI_*`` environment variable, or a key in the TOML
file given with ``--config`` / ``LAMPI_CONFIG``. Admin commands work directly on the
data dir, also while a server is running on it (SQLite WAL allows that). Only
``lampi serve`` and ``lampi init`` create a data dir; every other command refuses
one that does not exist (exit status 2), so that a mistyped ``--data-dir`` or
another working directory cannot quietly start a second, empty store.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from lampi import __version__
from lampi.config import Settings, load_settings
from lampi.core import errors

T = TypeVar("T")

DATA_DIR_HELP = "Data directory [env LAMPI_DATA_DIR; default ./lampi-data]."
CONFIG_HELP = "TOML config file [env LAMPI_CONFIG]."
NO_STORE_EXIT = 2  # as `lampi fsck` always had it: 1 there means "damage found"


def _settings(ctx: click.Context, **overrides: Any) -> Settings:
    root = ctx.find_root()
    if overrides.get("meta_url") is None and ctx.meta.get("lampi.meta_url"):
        overrides["meta_url"] = ctx.meta["lampi.meta_url"]  # --meta-url (data_dir_option)
    config = overrides.pop("config", None) or ctx.meta.get("lampi.config") or root.params.get("config")
    try:
        return load_settings(overrides, config_file=config)
    except (ValueError, OSError) as exc:
        raise click.UsageError(str(exc)) from None


def _require_store(settings: Settings) -> None:
    """Refuse, in one line naming the path, a data dir that holds no lampi store.

    Only `lampi serve` and `lampi init` create one: an admin command run from another
    directory or with a mistyped --data-dir would otherwise make a second, empty store
    (with an admin of its own) that the running server never sees.
    """
    path = settings.data_path
    if settings.meta_url:  # PostgreSQL: the store checks its schema when opened
        return
    if not (path / "meta.db").is_file():
        err = click.ClickException(
            f"no lampi data in {path.resolve()} (no meta.db): create it with `lampi init` or `lampi serve`, "
            f"or give the existing one with --data-dir or LAMPI_DATA_DIR")
        err.exit_code = NO_STORE_EXIT
        raise err


def _run(settings: Settings, fn: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``fn(identity_service)`` against the data dir's stores (which must exist)."""
    from lampi.identity.service import IdentityService

    _require_store(settings)

    async def go() -> T:
        meta = _open_meta(settings)
        try:
            ident = IdentityService(meta, settings)
            return await fn(ident)
        finally:
            await meta.close()

    try:
        return asyncio.run(go())
    except errors.DomainError as exc:
        raise click.ClickException(exc.message) from None


def _open_meta(settings: Settings) -> Any:
    """The settings' MetaStore (meta_url), for an admin command: an existing one only."""
    from lampi.store.meta.factory import open_meta
    from lampi.store.meta.postgres.schema import SchemaError

    try:
        return open_meta(settings.meta_url, settings.data_path)
    except SchemaError as exc:
        err = click.ClickException(str(exc))
        err.exit_code = NO_STORE_EXIT
        raise err from None


def _emit(as_json: bool, data: Any, rows: list[list[str]] | None = None, headers: list[str] | None = None) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    if rows is None:
        click.echo(data if isinstance(data, str) else json.dumps(data, indent=2))
        return
    table = Table()
    for h in headers or []:
        table.add_column(h, overflow="fold")  # ids and access keys wrap whole, never cut to "…"
    for r in rows:
        table.add_row(*r)
    Console().print(table)


def _remember_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value:
        ctx.meta["lampi.config"] = value  # ctx.meta is shared by the whole command chain
    return value


# `--config` is accepted after the subcommand too (`lampi serve --config lampi.toml`),
# not only before it (`lampi --config lampi.toml serve`).
_config_option = click.option("--config", default=None, expose_value=False, callback=_remember_config,
                              help=CONFIG_HELP)
_data_dir_option = click.option("--data-dir", envvar="LAMPI_DATA_DIR", default=None, help=DATA_DIR_HELP)


def _remember_meta_url(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value:
        ctx.meta["lampi.meta_url"] = value
    return value


# every command that opens the store takes --meta-url (env LAMPI_META_URL and TOML meta_url
# are read by load_settings)
_meta_url_option = click.option(
    "--meta-url", default=None, expose_value=False, callback=_remember_meta_url, metavar="URL",
    help="Metadata store: postgresql://USER@HOST:PORT/DB [env LAMPI_META_URL; default: meta.db (SQLite) in "
         "the data dir].")


def data_dir_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return _config_option(_meta_url_option(_data_dir_option(f)))


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
domain_option = click.option("--domain", "domain_ref", default=None, metavar="DOMAIN",
                             help="Domain (name or id) of the user and project named [default: Default].")
_policies_option = click.option(
    "--storage-policies", envvar="LAMPI_STORAGE_POLICIES", default=None, metavar="NAME[=PATH],...",
    help="Storage policies, each keeping its objects' bytes in its own directory (relative to the data dir; "
         "none: the data dir) [env LAMPI_STORAGE_POLICIES; default default-placement].")
_default_policy_option = click.option(
    "--default-storage-policy", envvar="LAMPI_DEFAULT_STORAGE_POLICY", default=None, metavar="NAME",
    help="Policy of containers made without X-Storage-Policy [env LAMPI_DEFAULT_STORAGE_POLICY; default: "
         "the first].")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="lampi")
@click.option("--config", envvar="LAMPI_CONFIG", default=None, help=CONFIG_HELP)
def cli(config: str | None) -> None:
    """lampi — object storage speaking the OpenStack Swift API (with Keystone v3 login)
    and the S3 API over the same buckets: a self-hostable twin of CSC's Allas.

    Start a server with `lampi serve` (its first start creates the data dir, an admin
    user and an OpenStack RC file; `lampi init` does that alone), load the credentials
    with `eval "$(lampi openrc)"`
    and use swift, openstack, rclone or python-swiftclient; S3 keys (for aws, s3cmd,
    boto3) come from `openstack ec2 credentials create` or `lampi credential create`.
    The admin commands (project, user, role, credential, fsck) work on an existing
    data dir, also while the server runs.
    """
    from lampi.store.fsmodes import private_umask

    private_umask()  # whatever a command creates in the data dir is private (0600/0700)


@cli.command()
@click.option("--host", envvar="LAMPI_HOST", default=None, help="Address to listen on [env LAMPI_HOST; default 127.0.0.1].")
@click.option("--port", envvar="LAMPI_PORT", type=int, default=None, help="TCP port [env LAMPI_PORT; default 8080].")
@data_dir_option
@click.option("--workers", envvar="LAMPI_WORKERS", type=int, default=None,
              help="Worker processes sharing the port [env LAMPI_WORKERS; default 1].")
@click.option("--public-url", envvar="LAMPI_PUBLIC_URL", default=None,
              help="Public base URL when behind a proxy, e.g. https://objects.example.org [env LAMPI_PUBLIC_URL].")
@click.option("--region", envvar="LAMPI_REGION", default=None, help="Region in the catalog [env LAMPI_REGION; default regionOne].")
@click.option("--token-ttl", envvar="LAMPI_TOKEN_TTL", type=int, default=None,
              help="Token lifetime in seconds [env LAMPI_TOKEN_TTL; default 28800 = 8 h].")
@click.option("--log-level", envvar="LAMPI_LOG_LEVEL", default=None,
              type=click.Choice(["debug", "info", "warning", "error"]), help="Log level [env LAMPI_LOG_LEVEL; default info].")
@click.option("--log-format", envvar="LAMPI_LOG_FORMAT", default=None, type=click.Choice(["auto", "json", "console"]),
              help="Log format [env LAMPI_LOG_FORMAT; default auto: console on a TTY, else JSON lines].")
@click.option("--s3-domain", envvar="LAMPI_S3_DOMAIN", default=None,
              help="Serve S3 virtual-hosted style at <bucket>.DOMAIN [env LAMPI_S3_DOMAIN; default: path style only].")
@click.option("--s3-port", envvar="LAMPI_S3_PORT", type=int, default=None,
              help="Also listen on this port for S3 only [env LAMPI_S3_PORT; default none].")
@click.option("--trusted-proxies", envvar="LAMPI_TRUSTED_PROXIES", default=None,
              help="Proxies (IPs/CIDRs, comma-separated) whose X-Forwarded-Host is trusted [env LAMPI_TRUSTED_PROXIES].")
@click.option("--min-free-space", envvar="LAMPI_MIN_FREE_SPACE", default=None,
              help="Free space uploads must leave on the data dir's filesystem, bytes (K/M/G/T) or percent; "
                   "less: 507 Insufficient Storage [env LAMPI_MIN_FREE_SPACE; default 1%].")
@click.option("--header-timeout", envvar="LAMPI_HEADER_TIMEOUT", type=float, default=None,
              help="Seconds to send a request's headers, then 408 [env LAMPI_HEADER_TIMEOUT; default 20; 0: none].")
@click.option("--body-timeout", envvar="LAMPI_BODY_TIMEOUT", type=float, default=None,
              help="Seconds a request body may stall, then 408 [env LAMPI_BODY_TIMEOUT; default 60; 0: none].")
@click.option("--keepalive-timeout", envvar="LAMPI_KEEPALIVE_TIMEOUT", type=float, default=None,
              help="Seconds an idle kept-alive connection stays open [env LAMPI_KEEPALIVE_TIMEOUT; default 75].")
@click.option("--max-connections", envvar="LAMPI_MAX_CONNECTIONS", type=int, default=None,
              help="Connections per worker [env LAMPI_MAX_CONNECTIONS; default 0: from the open-file limit].")
@click.option("--bucket-namespace", envvar="LAMPI_BUCKET_NAMESPACE", default=None,
              type=click.Choice(["global", "project"]),
              help="Container/bucket names unique in the whole service (global, as Allas) or per project "
                   "(project, as RGW tenants) [env LAMPI_BUCKET_NAMESPACE; default global].")
@_policies_option
@_default_policy_option
@click.option("--storage-url-form", envvar="LAMPI_STORAGE_URL_FORM", default=None, type=click.Choice(["allas", "swift"]),
              help="Catalog object-store URL: allas, <base>/swift/v1/AUTH_<id>; swift, <base>/v1/AUTH_<id> (both are "
                   "served) [env LAMPI_STORAGE_URL_FORM; default allas].")
@click.option("--sse-c-require-tls/--no-sse-c-require-tls", "sse_c_require_tls", default=None,
              help="Refuse S3 SSE-C keys sent over plain HTTP (behind a TLS proxy: --trusted-proxies and "
                   "X-Forwarded-Proto: https) [env LAMPI_SSE_C_REQUIRE_TLS; default: require].")
@click.pass_context
def serve(ctx: click.Context, **flags: Any) -> None:
    """Run the server: Keystone v3, the Swift API and the S3 API on one port.

    Zero config: SQLite metadata and files under the data dir. The first start
    creates domain Default, project `admin` and user `admin` with a random password,
    and writes an OpenStack RC file v3 (see `lampi openrc`). S3 is served path style
    on the same port, virtual-hosted style with --s3-domain, and on a port of its own
    with --s3-port.
    """
    import signal

    # A stop signal while the server starts (these imports are most of it) is noted, not
    # fatal: the server stops at its next start-up step and exits 0 (lampi.http.server).
    early: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: early.append(signum))

    from lampi.http.server import serve as run_server
    from lampi.log import setup_logging

    settings = _settings(ctx, **flags)
    setup_logging(settings.log_level, settings.log_format)

    def announce(s: Settings, boot: Any, took: float) -> None:
        dd = str(s.data_path.resolve())
        msg = [
            f"lampi {__version__} listening on {s.base_url()} ({s.workers} worker{'s' if s.workers != 1 else ''})",
            f"  Keystone v3:  {s.base_url()}/v3",
            f"  Swift:        {s.base_url()}{'/swift' if s.storage_url_form == 'allas' else ''}/v1/AUTH_{boot.project.id}",
            f"  S3:           {s.base_url()}" + (f" and port {s.s3_port}" if s.s3_port else "")
            + (f" (virtual hosts *.{s.s3_domain})" if s.s3_domain else ""),
            f"  data dir:     {dd}",
            f"  credentials:  eval \"$(lampi openrc --data-dir {dd})\"",
        ]
        if boot.created:
            msg.append(f"  first start: created project '{boot.project.name}' and user '{boot.user.name}' "
                       f"(password in {dd}/openrc.sh)")
        click.echo("\n".join(msg), err=True)

    sys.exit(run_server(settings, announce, stopped=lambda: bool(early)))


@cli.command()
@click.option("--host", envvar="LAMPI_HOST", default=None,
              help="Address the server will listen on, for the RC file's URL [env LAMPI_HOST; default 127.0.0.1].")
@click.option("--port", envvar="LAMPI_PORT", type=int, default=None,
              help="Port the server will listen on, for the RC file's URL [env LAMPI_PORT; default 8080].")
@click.option("--public-url", envvar="LAMPI_PUBLIC_URL", default=None,
              help="Public base URL, for the RC file's URL [env LAMPI_PUBLIC_URL].")
@click.option("--region", envvar="LAMPI_REGION", default=None,
              help="Region in the RC file [env LAMPI_REGION; default regionOne].")
@data_dir_option
@click.pass_context
def init(ctx: click.Context, **flags: Any) -> None:
    """Create a data dir without starting a server.

    The same first-start set-up as `lampi serve`: the metadata store, domain Default,
    project `admin`, user `admin` with a random password and the OpenStack RC file v3
    (`lampi openrc`). On an existing data dir nothing is created; as `lampi serve`
    does, the RC file is pointed at the given host and port (or, if it was lost,
    written again with a new admin password).
    """
    from lampi.http.server import bootstrap

    settings = _settings(ctx, **flags)
    boot = bootstrap(settings)
    dd = settings.data_path.resolve()
    if boot.created:
        click.echo(f"created lampi data dir {dd}: project '{boot.project.name}', user '{boot.user.name}' "
                   f"(password in {dd / 'openrc.sh'})")
    else:
        click.echo(f"lampi data dir {dd} exists already; nothing created")
    click.echo(f"  credentials:  eval \"$(lampi openrc --data-dir {dd})\"")
    click.echo(f"  start:        lampi serve --data-dir {dd}")


@cli.command()
@data_dir_option
@click.pass_context
def openrc(ctx: click.Context, data_dir: str | None) -> None:
    """Print the admin's OpenStack RC file v3: eval "$(lampi openrc)"."""
    settings = _settings(ctx, data_dir=data_dir)
    _require_store(settings)
    path = settings.data_path / "openrc.sh"
    if not path.exists():
        raise click.ClickException(f"{path.resolve()} not found: `lampi serve` or `lampi init` writes it anew "
                                   "(with a new admin password)")
    click.echo(path.read_text(), nl=False)


# -- projects ---------------------------------------------------------------------------


@cli.group()
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
    p = _run(_settings(ctx, data_dir=data_dir), lambda i: i.create_project(name, description, domain_ref))
    _emit(as_json, {"id": p.id, "name": p.name, "domain_id": p.domain_id}) if as_json else click.echo(p.id)


@project.command("list")
@data_dir_option
@json_option
@click.pass_context
def project_list(ctx: click.Context, data_dir: str | None, as_json: bool) -> None:
    """List projects."""
    ps = _run(_settings(ctx, data_dir=data_dir), lambda i: i.meta.list_projects())
    data = [{"id": p.id, "name": p.name, "domain_id": p.domain_id, "description": p.description} for p in ps]
    _emit(as_json, data, [[p.id, p.name, p.domain_id, p.description] for p in ps],
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

    _run(_settings(ctx, data_dir=data_dir), go)


# -- users -----------------------------------------------------------------------------


@cli.group()
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

    u = _run(_settings(ctx, data_dir=data_dir), go)
    _emit(as_json, {"id": u.id, "name": u.name, "default_project_id": u.default_project_id}) if as_json else click.echo(u.id)


@user.command("list")
@data_dir_option
@json_option
@click.pass_context
def user_list(ctx: click.Context, data_dir: str | None, as_json: bool) -> None:
    """List users with their role assignments."""

    async def go(i: Any) -> list[dict[str, Any]]:
        out = []
        for u in await i.meta.list_users():
            roles = []
            for p in await i.meta.projects_for_user(u.id):
                for r in await i.meta.roles_for(u.id, p.id):
                    roles.append({"project": p.name, "project_id": p.id, "role": r})
            out.append({"id": u.id, "name": u.name, "domain_id": u.domain_id, "enabled": u.enabled, "roles": roles})
        return out

    data = _run(_settings(ctx, data_dir=data_dir), go)
    _emit(as_json, data, [[d["id"], d["name"], d["domain_id"],
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

    _run(_settings(ctx, data_dir=data_dir), go)


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

    _run(_settings(ctx, data_dir=data_dir), go)


# -- roles -----------------------------------------------------------------------------


@cli.group()
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
    from lampi.identity.service import role_id

    r = _run(_settings(ctx, data_dir=data_dir), lambda i: i.create_role(name))
    _emit(as_json, {"id": role_id(r), "name": r}) if as_json else click.echo(role_id(r))


@role.command("list")
@data_dir_option
@json_option
@click.pass_context
def role_list(ctx: click.Context, data_dir: str | None, as_json: bool) -> None:
    """List roles, built-in ones first."""
    from lampi.core.authz import BUILTIN_ROLES
    from lampi.identity.service import role_id

    names = _run(_settings(ctx, data_dir=data_dir), lambda i: i.list_roles())
    data = [{"id": role_id(r), "name": r, "builtin": r in BUILTIN_ROLES} for r in names]
    _emit(as_json, data, [[d["id"], d["name"], "yes" if d["builtin"] else ""] for d in data],
          ["ID", "Name", "Built in"])


@role.command("delete")
@click.argument("name")
@data_dir_option
@click.pass_context
def role_delete(ctx: click.Context, name: str, data_dir: str | None) -> None:
    """Delete role NAME (not a built-in one) and every assignment of it; the tokens of
    the users who had it stop working."""
    _run(_settings(ctx, data_dir=data_dir), lambda i: i.delete_role(name))


def _named(args: tuple[str, ...], given: dict[str, str | None]) -> list[str]:
    """The user, project (and role) a command names: each from its option (--user,
    --project, --role) when given, else from the positional arguments in order, so that
    `role grant alice lab member` and `role grant --user alice --project lab member` agree."""
    rest = list(args)
    out = []
    for name, value in given.items():
        if value is None:
            if not rest:
                raise click.UsageError(f"missing {name.upper()} (as an argument or --{name})")
            value = rest.pop(0)
        out.append(value)
    if rest:
        raise click.UsageError(f"unexpected extra argument{'s' if len(rest) > 1 else ''}: {' '.join(rest)}")
    return out


_user_option = click.option("--user", "user_opt", default=None, metavar="USER",
                            help="The user (name or id); or give it as the first argument.")
_project_option = click.option("--project", "project_opt", default=None, metavar="PROJECT",
                               help="The project (name or id); or give it as an argument after USER.")


def _role_cmd(grant: bool) -> Callable[..., None]:
    @click.argument("args", nargs=-1, metavar="[USER] [PROJECT] [ROLE]")
    @_user_option
    @_project_option
    @click.option("--role", "role_opt", default=None, metavar="ROLE",
                  help="The role (see `lampi role list`); or give it as the last argument.")
    @domain_option
    @data_dir_option
    @click.pass_context
    def cmd(ctx: click.Context, args: tuple[str, ...], user_opt: str | None, project_opt: str | None,
            role_opt: str | None, domain_ref: str | None, data_dir: str | None) -> None:
        user_ref, project_ref, role_name = _named(args, {"user": user_opt, "project": project_opt, "role": role_opt})

        async def go(i: Any) -> None:
            u = await i.find_user(user_ref, domain_ref)
            p = await i.find_project(project_ref, domain_ref)
            if grant:
                await i.grant_role(u.id, p.id, role_name)
            else:
                await i.revoke_role(u.id, p.id, role_name)  # also ends tokens carrying it

        _run(_settings(ctx, data_dir=data_dir), go)

    return cmd


role.command("grant", help="Give USER the role ROLE on PROJECT (as arguments, or --user, --project, --role).")(
    _role_cmd(True))
role.command("revoke", help="Take the role ROLE on PROJECT from USER (as arguments, or --user, --project, --role).")(
    _role_cmd(False))


# -- domains ---------------------------------------------------------------------------


@cli.group()
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
    d = _run(_settings(ctx, data_dir=data_dir), lambda i: i.create_domain(name))
    _emit(as_json, {"id": d.id, "name": d.name}) if as_json else click.echo(d.id)


@domain.command("list")
@data_dir_option
@json_option
@click.pass_context
def domain_list(ctx: click.Context, data_dir: str | None, as_json: bool) -> None:
    """List domains."""
    ds = _run(_settings(ctx, data_dir=data_dir), lambda i: i.meta.list_domains())
    data = [{"id": d.id, "name": d.name, "enabled": d.enabled} for d in ds]
    _emit(as_json, data, [[d.id, d.name] for d in ds], ["ID", "Name"])


@domain.command("delete")
@click.argument("domain_ref")
@data_dir_option
@click.pass_context
def domain_delete(ctx: click.Context, domain_ref: str, data_dir: str | None) -> None:
    """Delete a domain (by name or id); it must have no projects and no users."""
    _run(_settings(ctx, data_dir=data_dir), lambda i: i.delete_domain(domain_ref))


# -- db ------------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """The metadata database (meta_url): its schema."""


@db.command("upgrade")
@_config_option
@_meta_url_option
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Create the PostgreSQL schema in an empty database, or bring an older one up to
    this lampi's version (one transaction; safe to run twice or from two hosts). A
    gateway refuses to serve a database whose schema is older than its own. SQLite
    (no meta_url) brings itself up to date at every start."""
    import psycopg

    from lampi.store.meta.postgres.schema import SchemaError, upgrade

    settings = _settings(ctx)
    if not settings.meta_url:
        click.echo("meta_url is not set: the SQLite store in the data dir upgrades itself when opened")
        return
    try:
        with psycopg.connect(settings.meta_url, autocommit=True, connect_timeout=10) as conn:
            before, after = upgrade(conn)
    except (SchemaError, psycopg.Error) as exc:
        raise click.ClickException(str(exc)) from None
    if before == after:
        click.echo(f"schema version {after}: up to date")
    else:
        click.echo(f"schema version {'none' if before is None else before} -> {after}")


# -- fsck ------------------------------------------------------------------------------


@cli.command()
@data_dir_option
@click.option("--dry-run", is_flag=True, help="Report only; remove nothing.")
@click.option("--grace", type=float, default=60.0, show_default=True,
              help="Also leave files younger than this many seconds alone (a secondary guard: "
                   "uploads in flight are recognised by their lock).")
@json_option
@_policies_option
@click.pass_context
def fsck(ctx: click.Context, data_dir: str | None, dry_run: bool, grace: float, as_json: bool,
         storage_policies: str | None) -> None:
    """Check metadata against blobs; remove orphaned blobs and partial uploads.

    Exit status 0 when the store is clean (after removals), 1 when objects have a
    missing or wrong-sized blob, 2 when there is no data dir to check.
    """
    from rich.progress import Progress

    from lampi.bg.fsck import fsck as run_fsck
    from lampi.store.blob.policies import open_policy_stores

    settings = _settings(ctx, data_dir=data_dir, storage_policies=storage_policies)
    _require_store(settings)  # exit status 2, not 1, which means "damage found"

    async def go() -> Any:
        meta = _open_meta(settings)
        try:
            with Progress(transient=True, disable=as_json or not sys.stderr.isatty()) as progress:
                return await run_fsck(meta, open_policy_stores(settings), repair=not dry_run, grace=grace,
                                      progress=progress)
        finally:
            await meta.close()

    rep = asyncio.run(go())
    if as_json:
        click.echo(json.dumps(rep.as_dict(), indent=2))
    else:
        click.echo(f"objects: {rep.objects}  blobs: {rep.blobs}")
        click.echo(f"orphaned blobs: {len(rep.orphan_blobs)}  partial uploads: {len(rep.partials)}"
                   f"  {'removed: ' + str(rep.removed) if not dry_run else '(dry run)'}")
        for c, o, b in rep.missing_blobs:
            click.echo(f"MISSING blob {b} for {c}/{o}")
        for c, o, e, a in rep.size_mismatches:
            click.echo(f"SIZE MISMATCH {c}/{o}: metadata {e} bytes, blob {a} bytes")
        if rep.skipped_young:
            click.echo(f"left {rep.skipped_young} file(s) younger than {grace:g}s alone")
        if rep.skipped_in_use:
            click.echo(f"left {rep.skipped_in_use} file(s) of uploads in progress alone")
        click.echo("clean" if rep.clean else "NOT CLEAN")
    sys.exit(0 if rep.clean else 1)


# -- EC2 credentials (S3 keys) ------------------------------------------------------------


@cli.group()
def credential() -> None:
    """Create, list and delete S3 key pairs (Keystone EC2 credentials)."""


@credential.command("create")
@click.argument("args", nargs=-1, metavar="[USER] [PROJECT]")
@_user_option
@_project_option
@domain_option
@data_dir_option
@json_option
@click.pass_context
def credential_create(ctx: click.Context, args: tuple[str, ...], user_opt: str | None, project_opt: str | None,
                      domain_ref: str | None, data_dir: str | None, as_json: bool) -> None:
    """Make an S3 key pair acting as USER in PROJECT (names or ids; as arguments, or --user and --project)."""
    from lampi.identity import ec2

    user_ref, project_ref = _named(args, {"user": user_opt, "project": project_opt})

    async def go(i: Any) -> Any:
        u = await i.find_user(user_ref, domain_ref)
        p = await i.find_project(project_ref, domain_ref)
        return await ec2.create(i, u.id, p.id)

    c = _run(_settings(ctx, data_dir=data_dir), go)
    data = {"access": c.access, "secret": c.secret, "user_id": c.user_id, "project_id": c.project_id}
    _emit(as_json, data) if as_json else click.echo(f"access: {c.access}\nsecret: {c.secret}")


@credential.command("list")
@click.option("--user", "user_ref", default=None, metavar="USER", help="Only this user's keys (name or id).")
@click.option("--project", "project_ref", default=None, metavar="PROJECT",
              help="Only keys for this project (name or id).")
@domain_option
@data_dir_option
@json_option
@click.pass_context
def credential_list(ctx: click.Context, user_ref: str | None, project_ref: str | None, domain_ref: str | None,
                    data_dir: str | None, as_json: bool) -> None:
    """List S3 key pairs (secrets only with --json)."""

    async def go(i: Any) -> list[dict[str, Any]]:
        uid = (await i.find_user(user_ref, domain_ref)).id if user_ref else None
        pid = (await i.find_project(project_ref, domain_ref)).id if project_ref else None
        return [{"access": c.access, "secret": c.secret, "user_id": c.user_id, "project_id": c.project_id}
                for c in await i.meta.list_credentials(uid) if pid is None or c.project_id == pid]

    data = _run(_settings(ctx, data_dir=data_dir), go)
    _emit(as_json, data, [[d["access"], d["user_id"], d["project_id"]] for d in data], ["Access", "User ID", "Project ID"])


@credential.command("delete")
@click.argument("access")
@data_dir_option
@click.pass_context
def credential_delete(ctx: click.Context, access: str, data_dir: str | None) -> None:
    """Delete the key pair with access key ACCESS (it stops working at once)."""

    async def go(i: Any) -> None:
        await i.meta.delete_credential(access)

    _run(_settings(ctx, data_dir=data_dir), go)


@credential.command("rotate-key")
@data_dir_option
@json_option
@click.pass_context
def credential_rotate_key(ctx: click.Context, data_dir: str | None, as_json: bool) -> None:
    """Seal every S3 secret with a new key (keys/credential-N), remove the old key.

    Safe while a server runs: its workers pick up the new key. Back up keys/ afterwards:
    a copy of meta.db needs the keys that were current when it was taken.
    """
    rep = _run(_settings(ctx, data_dir=data_dir), lambda i: i.meta.rotate_credential_key())
    data = {"primary_key": rep.primary, "resealed": rep.sealed, "removed_keys": [str(p) for p in rep.removed_keys],
            "unopenable": list(rep.unopenable)}
    if as_json:
        _emit(True, data)
    else:
        click.echo(f"new primary key {rep.primary}: re-sealed {rep.sealed} secret(s), "
                   f"removed {len(rep.removed_keys)} old key file(s)")
    if rep.unopenable:
        raise click.ClickException(f"{len(rep.unopenable)} secret(s) could not be unsealed (their key is missing or "
                                   f"they were altered), left as they were: {', '.join(rep.unopenable)}")


# -- server-side encryption keys (S3 SSE-S3 and SSE-KMS; lampi/core/sse.py) ----------------


def _key_service(ctx: click.Context, data_dir: str | None) -> Any:
    from lampi.core.sse import KeyService

    settings = _settings(ctx, data_dir=data_dir)
    _require_store(settings)
    return KeyService(settings.data_path / "keys")


def _key_command(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except errors.DomainError as exc:
        raise click.ClickException(exc.message) from None


@cli.group()
def kms() -> None:
    """Named keys of the local key store for S3 SSE-KMS (x-amz-server-side-encryption: aws:kms).

    A key is files keys/kms/NAME-N in the data dir; clients name it in
    x-amz-server-side-encryption-aws-kms-key-id or a bucket's default encryption.
    """


@kms.command("create")
@click.argument("name")
@data_dir_option
@json_option
@click.pass_context
def kms_create(ctx: click.Context, name: str, data_dir: str | None, as_json: bool) -> None:
    """Make the KMS key NAME (letters, digits, '.', '_', '-'). Back up keys/ afterwards."""
    keys = _key_service(ctx, data_dir)
    version = _key_command(lambda: keys.kms_create(name))
    _emit(as_json, {"name": name, "version": version} if as_json else f"created KMS key {name} ({version})")


@kms.command("list")
@data_dir_option
@json_option
@click.pass_context
def kms_list(ctx: click.Context, data_dir: str | None, as_json: bool) -> None:
    """List the KMS keys and their versions (the last wraps new data keys)."""
    keys = _key_service(ctx, data_dir)
    data = [{"name": n, "versions": keys.kms_versions(n)} for n in keys.kms_names()]
    _emit(as_json, data, [[d["name"], " ".join(d["versions"])] for d in data], ["Name", "Versions"])


@kms.command("rotate")
@click.argument("name")
@data_dir_option
@json_option
@click.pass_context
def kms_rotate(ctx: click.Context, name: str, data_dir: str | None, as_json: bool) -> None:
    """Make a new version of KMS key NAME for new objects; older versions stay, for the
    objects they encrypted. Safe while a server runs. Back up keys/ afterwards."""
    keys = _key_service(ctx, data_dir)
    version = _key_command(lambda: keys.kms_rotate(name))
    _emit(as_json, {"name": name, "version": version} if as_json else f"KMS key {name}: new version {version}")


@cli.group()
def sse() -> None:
    """The master keys of S3 SSE-S3 (x-amz-server-side-encryption: AES256), keys/sse-N."""


@sse.command("rotate-key")
@data_dir_option
@json_option
@click.pass_context
def sse_rotate_key(ctx: click.Context, data_dir: str | None, as_json: bool) -> None:
    """Make a new SSE-S3 master key (keys/sse-N) for new objects. Older keys stay: the
    data keys of older objects are wrapped with them. Safe while a server runs. Back up
    keys/ afterwards."""
    keys = _key_service(ctx, data_dir)
    kid = _key_command(keys.rotate_master)
    _emit(as_json, {"primary_key": kid} if as_json else f"new SSE-S3 master key {kid}")


# -- bench -----------------------------------------------------------------------------


def _sizes(_ctx: Any, _param: Any, value: Any) -> Any:
    from lampi.bench.util import parse_size

    try:
        return parse_size(value) if value is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@cli.command()
@click.option("--compare", type=click.Choice(["swift"]), default=None,
              help="Also start a single-node OpenStack Swift (installed from PyPI into a cache venv) and lampi, "
                   "run every phase on both, alternating, and print lampi/Swift ratios.")
@click.option("--limits", "with_limits", is_flag=True,
              help="Measure sequential write+fsync, 4 KiB write+fsync rate and loopback TCP throughput too.")
@click.option("-A", "--auth", default=None, help="v1 auth URL [env ST_AUTH], with -U/-K.")
@click.option("-U", "--user", default=None, help="v1 user, e.g. project:user [env ST_USER].")
@click.option("-K", "--key", default=None, help="v1 key (password) [env ST_KEY].")
@click.option("--storage-url", default=None, help="Storage URL, with --token [env OS_STORAGE_URL].")
@click.option("--token", default=None, help="Auth token [env OS_AUTH_TOKEN].")
@click.option("--s3-endpoint", default=None,
              help="Benchmark this S3 endpoint (path style, SigV4) instead of a Swift one.")
@click.option("--s3-access-key", default=None, help="S3 access key [env AWS_ACCESS_KEY_ID].")
@click.option("--s3-secret-key", default=None, help="S3 secret key [env AWS_SECRET_ACCESS_KEY].")
@click.option("--s3-region", default=None, help="SigV4 region [env AWS_DEFAULT_REGION; default us-east-1].")
@click.option("--s3", is_flag=True,
              help="--compare: also run every phase on lampi's S3 API (an EC2 key pair is made) and "
                   "report lampi S3/Swift ratios.")
@click.option("--objects", type=int, default=5000, show_default=True, help="Small objects per concurrency level.")
@click.option("--object-size", default="4KiB", show_default=True, callback=_sizes, help="Small object size.")
@click.option("--concurrency", default="16,64", show_default=True,
              help="Comma-separated concurrency levels for the small-object phases.")
@click.option("--list-objects", type=int, default=10000, show_default=True, help="Objects in the listed container.")
@click.option("--list-page", type=int, default=10000, show_default=True, help="limit= per listing request.")
@click.option("--list-repeats", type=int, default=5, show_default=True, help="Full listings to time.")
@click.option("--large-size", default="1GiB", show_default=True, callback=_sizes, help="Large object size.")
@click.option("--large-count", type=int, default=1, show_default=True, help="Large objects (sequential).")
@click.option("--phases", default="small,list,large", show_default=True, help="Which phase groups to run.")
@click.option("--client-procs", type=int, default=1, show_default=True,
              help="Client processes for the small-object phases (concurrency is split across them).")
@click.option("--limits-size", default=None, callback=_sizes,
              help="Bytes written / sent for the --limits measurements [default: the large object size "
                   "when the large phase runs, else 1GiB]: a file that fits in the page cache's dirty "
                   "limit writes faster than one that does not, so the sizes should match.")
@click.option("--limits-dir", default=None, help="Directory for the disk limits [default: the run's work dir or $TMPDIR].")
@click.option("--workers", type=int, default=None, help="--compare: workers per server [default: CPU count].")
@click.option("--work-dir", default=None, help="--compare: parent of the run's data dirs [default: $TMPDIR].")
@click.option("--keep", is_flag=True, help="--compare: keep the data dirs and logs.")
@click.option("--cache-dir", default=None, help="--compare: where Swift is installed [default ~/.cache/lampi-bench].")
@click.option("--server-pid", "server_pids", type=int, multiple=True,
              help="PID of the server under test (repeatable): its RSS (with children) is reported.")
@click.option("--json", "json_file", default=None, help="Also write the results as JSON to this file.")
@click.option("--markdown", "markdown_file", default=None, help="Also write the tables as Markdown to this file.")
@click.option("--no-progress", is_flag=True, help="No progress display.")
def bench(concurrency: str, phases: str, no_progress: bool, objects: int, object_size: int, list_objects: int,
          list_page: int, list_repeats: int, large_size: int, large_count: int, client_procs: int,
          **opts: Any) -> None:
    """Benchmark a Swift or S3 endpoint: small-object PUT/GET/HEAD/DELETE, listing, large objects.

    The endpoint comes from -A/-U/-K (v1 auth), --storage-url/--token, or the OS_*
    variables (Keystone v3, e.g. eval "$(lampi openrc)"); or --s3-endpoint with SigV4
    keys (--s3-access-key/--s3-secret-key or AWS_*). With --compare swift, lampi
    and a local single-node Swift are started, benchmarked side by side and stopped.
    Exit status 1 when any request failed.
    """
    from lampi.bench.command import bench as run_bench
    from lampi.bench.runner import BenchConfig
    from lampi.bench.util import BenchError

    try:
        levels = [int(c) for c in concurrency.split(",") if c.strip()]
    except ValueError:
        raise click.BadParameter(f"not a list of integers: {concurrency!r}", param_hint="--concurrency") from None
    groups = [p.strip() for p in phases.split(",") if p.strip()]
    bad = set(groups) - {"small", "list", "large"}
    if bad or not groups:
        raise click.BadParameter(f"choose from small, list, large (got {phases!r})", param_hint="--phases")
    if not levels or min(levels) < 1 or min(objects, list_objects, list_page, list_repeats, large_count, client_procs) < 1:
        raise click.UsageError("counts, sizes and concurrency levels must be positive")
    cfg = BenchConfig(objects=objects, object_size=object_size, concurrency=levels, list_objects=list_objects,
                      list_page=list_page, list_repeats=list_repeats, large_size=large_size,
                      large_count=large_count, phases=groups, client_procs=client_procs)
    try:
        doc = run_bench(cfg, show_progress=not no_progress, **opts)
    except BenchError as exc:
        raise click.ClickException(str(exc)) from None
    failed = sum(p["errors"] for p in doc["phases"]) + len(doc.get("setup_errors", []))
    sys.exit(1 if failed or doc.get("leftover_processes") else 0)


# -- project quotas (lampi/core/quotas.py) -----------------------------------------------


def _quota_value(text: str | None) -> tuple[bool, int | None]:
    """(given, value): a number of bytes/items, 0 or "unlimited" (no limit), or
    "default" (back to the configured default)."""
    if text is None:
        return False, None
    t = text.strip().lower()
    if t == "default":
        return True, None
    if t == "unlimited":
        return True, 0
    if not t.isdigit():
        raise click.BadParameter(f"{text!r}: expected a whole number, 'unlimited' or 'default'")
    return True, int(t)


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
    from lampi.core.quotas import QuotaDefaults, project_limits

    updates: dict[str, int | None] = {}
    for key, text in (("bytes", qbytes), ("containers", containers),
                      ("objects_per_container", objects_per_container)):
        given, value = _quota_value(text)
        if given:
            updates[key] = value
    settings = _settings(ctx, data_dir=data_dir)

    async def go(i: Any) -> dict[str, Any]:
        p = await i.find_project(project_ref, domain_ref)
        if updates:
            await i.meta.set_project_quota(p.id, updates)
        lim = await project_limits(i.meta, QuotaDefaults.from_settings(settings), p.id)
        acct = await i.meta.get_account(p.id)
        return {"project_id": p.id, "bytes": lim.bytes, "containers": lim.containers,
                "objects_per_container": lim.objects_per_container, "bytes_used": acct.bytes_used,
                "container_count": acct.container_count}

    data = _run(settings, go)
    shown = {k: ("unlimited" if v == 0 and k in ("bytes", "containers", "objects_per_container") else str(v))
             for k, v in data.items()}
    _emit(as_json, data, [[k, v] for k, v in shown.items()], ["Quota", "Value"])


def main() -> None:
    try:
        cli(prog_name="lampi")
    except Exception as exc:
        # A full disk (data dir, metadata store) is one line for the operator, not a traceback.
        from lampi.store.space import full_message, is_full

        if not is_full(exc):
            raise
        msg = exc.message if isinstance(exc, errors.DomainError) else full_message(
            getattr(exc, "filename", None) or "the data dir")
        click.echo(f"Error: {msg}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
