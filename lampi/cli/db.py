"""``lampi db``: the metadata database (meta_url) and its schema."""

from __future__ import annotations

import click

from lampi.cli.common import config_option, meta_url_option, settings_of


@click.group()
def db() -> None:
    """The metadata database (meta_url): its schema."""


@db.command("upgrade")
@config_option
@meta_url_option
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Create the PostgreSQL schema in an empty database, or bring an older one up to
    this lampi's version (one transaction; safe to run twice or from two hosts). A
    gateway refuses to serve a database whose schema is older than its own. SQLite
    (no meta_url) brings itself up to date at every start."""
    import psycopg

    from lampi.store.meta.postgres.schema import SchemaError, upgrade

    settings = settings_of(ctx)
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
