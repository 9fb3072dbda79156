"""``lampi credential``: EC2 credentials (S3 access keys) and the key that encrypts their
secrets at rest."""

from __future__ import annotations

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
def credential() -> None:
    """Create, list and delete S3 key pairs (Keystone EC2 credentials)."""


@credential.command("create")
@click.argument("args", nargs=-1, metavar="[USER] [PROJECT]")
@user_option
@project_option
@domain_option
@data_dir_option
@json_option
@click.pass_context
def credential_create(ctx: click.Context, args: tuple[str, ...], user_opt: str | None, project_opt: str | None,
                      domain_ref: str | None, data_dir: str | None, as_json: bool) -> None:
    """Make an S3 key pair acting as USER in PROJECT (names or ids; as arguments, or --user and --project)."""
    from lampi.identity import ec2

    user_ref, project_ref = named(args, {"user": user_opt, "project": project_opt})

    async def go(i: Any) -> Any:
        u = await i.find_user(user_ref, domain_ref)
        p = await i.find_project(project_ref, domain_ref)
        return await ec2.create(i, u.id, p.id)

    c = run_identity(settings_of(ctx, data_dir=data_dir), go)
    data = {"access": c.access, "secret": c.secret, "user_id": c.user_id, "project_id": c.project_id}
    emit(as_json, data) if as_json else click.echo(f"access: {c.access}\nsecret: {c.secret}")


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

    data = run_identity(settings_of(ctx, data_dir=data_dir), go)
    emit(as_json, data, [[d["access"], d["user_id"], d["project_id"]] for d in data], ["Access", "User ID", "Project ID"])


@credential.command("delete")
@click.argument("access")
@data_dir_option
@click.pass_context
def credential_delete(ctx: click.Context, access: str, data_dir: str | None) -> None:
    """Delete the key pair with access key ACCESS (it stops working at once)."""

    async def go(i: Any) -> None:
        await i.meta.delete_credential(access)

    run_identity(settings_of(ctx, data_dir=data_dir), go)


@credential.command("rotate-key")
@data_dir_option
@json_option
@click.pass_context
def credential_rotate_key(ctx: click.Context, data_dir: str | None, as_json: bool) -> None:
    """Seal every S3 secret with a new key (keys/credential-N), remove the old key.

    Safe while a server runs: its workers pick up the new key. Back up keys/ afterwards:
    a copy of meta.db needs the keys that were current when it was taken.
    """
    rep = run_identity(settings_of(ctx, data_dir=data_dir), lambda i: i.meta.rotate_credential_key())
    data = {"primary_key": rep.primary, "resealed": rep.sealed, "removed_keys": [str(p) for p in rep.removed_keys],
            "unopenable": list(rep.unopenable)}
    if as_json:
        emit(True, data)
    else:
        click.echo(f"new primary key {rep.primary}: re-sealed {rep.sealed} secret(s), "
                   f"removed {len(rep.removed_keys)} old key file(s)")
    if rep.unopenable:
        raise click.ClickException(f"{len(rep.unopenable)} secret(s) could not be unsealed (their key is missing or "
                                   f"they were altered), left as they were: {', '.join(rep.unopenable)}")


# -- server-side encryption keys (S3 SSE-S3 and SSE-KMS; lampi/core/sse.py) ----------------
