"""What the command groups of the ``lampi`` CLI share: settings from flags, environment
and the TOML file; the data-dir check; running a function against the identity
service; output (tables or JSON); the common options."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from lampi.config import Settings, load_settings
from lampi.core import errors

T = TypeVar("T")

DATA_DIR_HELP = "Data directory [env LAMPI_DATA_DIR; default ./lampi-data]."
CONFIG_HELP = "TOML config file [env LAMPI_CONFIG]."
NO_STORE_EXIT = 2  # as `lampi fsck` always had it: 1 there means "damage found"


def settings_of(ctx: click.Context, **overrides: Any) -> Settings:
    root = ctx.find_root()
    if overrides.get("meta_url") is None and ctx.meta.get("lampi.meta_url"):
        overrides["meta_url"] = ctx.meta["lampi.meta_url"]  # --meta-url (data_dir_option)
    if overrides.get("master_key_file") is None and ctx.meta.get("lampi.master_key_file"):
        overrides["master_key_file"] = ctx.meta["lampi.master_key_file"]  # --master-key-file (data_dir_option)
    config = overrides.pop("config", None) or ctx.meta.get("lampi.config") or root.params.get("config")
    try:
        return load_settings(overrides, config_file=config)
    except (ValueError, OSError) as exc:
        raise click.UsageError(str(exc)) from None


def require_store(settings: Settings) -> None:
    """Refuse, in one line naming the path, a data dir that holds no lampi store.

    Only `lampi serve` and `lampi init` create one: an admin command run from another
    directory or with a mistyped --data-dir would otherwise make a second, empty store
    (with an admin of its own) that the running server never sees.
    """
    path = settings.data_path
    if settings.meta_url:  # PostgreSQL: the store checks its schema when opened (open_store)
        return
    if not (path / "meta.db").is_file():
        err = click.ClickException(
            f"no lampi data in {path.resolve()} (no meta.db): create it with `lampi init` or `lampi serve`, "
            f"or give the existing one with --data-dir or LAMPI_DATA_DIR")
        err.exit_code = NO_STORE_EXIT
        raise err


def run_identity(settings: Settings, fn: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``fn(identity_service)`` against the data dir's stores (which must exist)."""
    from lampi.core.identity import IdentityService

    require_store(settings)

    async def go() -> T:
        meta = open_store(settings)
        try:
            ident = IdentityService(meta, settings)
            return await fn(ident)
        finally:
            await meta.close()

    try:
        return asyncio.run(go())
    except errors.DomainError as exc:
        raise click.ClickException(exc.message) from None


def open_store(settings: Settings) -> Any:
    """The settings' MetaStore (meta_url: SQLite in the data dir, or PostgreSQL) for an
    admin command: an existing one only (a PostgreSQL database without the schema, or
    with an older or newer one, is refused with exit status 2 and what to do)."""
    from lampi.store.keyring import MasterKeyError
    from lampi.store.meta.factory import master_key_source, open_meta
    from lampi.store.meta.base import SchemaError

    try:
        meta = open_meta(settings.meta_url, settings.data_path, master_key=master_key_source(settings))
    except SchemaError as exc:
        err = click.ClickException(str(exc))
        err.exit_code = NO_STORE_EXIT
        raise err from None
    try:
        meta.keys.check()  # keys in the database: the master key is refused here, in one line
    except MasterKeyError as exc:
        import threading

        # closed on a thread of its own: the caller may be inside an event loop (run_identity)
        closer = threading.Thread(target=asyncio.run, args=(meta.close(),))
        closer.start()
        closer.join()
        err = click.ClickException(str(exc))
        err.exit_code = NO_STORE_EXIT
        raise err from None
    return meta


def emit(as_json: bool, data: Any, rows: list[list[str]] | None = None, headers: list[str] | None = None) -> None:
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
meta_url_option = click.option(
    "--meta-url", default=None, expose_value=False, callback=_remember_meta_url, metavar="URL",
    help="Metadata store: postgresql://USER@HOST:PORT/DB [env LAMPI_META_URL; default: meta.db (SQLite) in "
         "the data dir].")


def _remember_master_key_file(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value:
        ctx.meta["lampi.master_key_file"] = value
    return value


# ... and --master-key-file (env LAMPI_MASTER_KEY_FILE, TOML master_key_file; the key itself:
# LAMPI_MASTER_KEY or TOML master_key, never a flag)
master_key_file_option = click.option(
    "--master-key-file", default=None, expose_value=False, callback=_remember_master_key_file, metavar="PATH",
    help="File holding the master key that seals the keys kept in the metadata store [env LAMPI_MASTER_KEY_FILE; "
         "or the key itself in LAMPI_MASTER_KEY; default: the data dir's master.key].")


def data_dir_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return _config_option(meta_url_option(master_key_file_option(_data_dir_option(f))))


def config_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return _config_option(f)


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
domain_option = click.option("--domain", "domain_ref", default=None, metavar="DOMAIN",
                             help="Domain (name or id) of the user and project named [default: Default].")
policies_option = click.option(
    "--storage-policies", envvar="LAMPI_STORAGE_POLICIES", default=None, metavar="NAME[=PATH],...",
    help="Storage policies, each keeping its objects' bytes in its own directory (relative to the data dir; "
         "none: the data dir) [env LAMPI_STORAGE_POLICIES; default default-placement].")
blob_url_option = click.option(
    "--blob-url", envvar="LAMPI_BLOB_URL", default=None, metavar="URL",
    help="Where object bytes are kept: rados://<pool>?conf=/etc/ceph/ceph.conf&id=<client> for a Ceph pool "
         "[env LAMPI_BLOB_URL; default: files under the data dir].")
default_policy_option = click.option(
    "--default-storage-policy", envvar="LAMPI_DEFAULT_STORAGE_POLICY", default=None, metavar="NAME",
    help="Policy of containers made without X-Storage-Policy [env LAMPI_DEFAULT_STORAGE_POLICY; default: "
         "the first].")


def named(args: tuple[str, ...], given: dict[str, str | None]) -> list[str]:
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


user_option = click.option("--user", "user_opt", default=None, metavar="USER",
                           help="The user (name or id); or give it as the first argument.")
project_option = click.option("--project", "project_opt", default=None, metavar="PROJECT",
                              help="The project (name or id); or give it as an argument after USER.")
