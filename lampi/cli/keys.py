"""``lampi kms``, ``lampi sse``: the local key store of S3 server-side encryption."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from lampi.cli.common import data_dir_option, emit, json_option, require_store, settings_of
from lampi.core import errors

T = TypeVar("T")


def _key_service(ctx: click.Context, data_dir: str | None) -> Any:
    from lampi.core.sse import KeyService

    settings = settings_of(ctx, data_dir=data_dir)
    require_store(settings)
    return KeyService(settings.data_path / "keys")


def _key_command(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except errors.DomainError as exc:
        raise click.ClickException(exc.message) from None


@click.group()
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
    emit(as_json, {"name": name, "version": version} if as_json else f"created KMS key {name} ({version})")


@kms.command("list")
@data_dir_option
@json_option
@click.pass_context
def kms_list(ctx: click.Context, data_dir: str | None, as_json: bool) -> None:
    """List the KMS keys and their versions (the last wraps new data keys)."""
    keys = _key_service(ctx, data_dir)
    data = [{"name": n, "versions": keys.kms_versions(n)} for n in keys.kms_names()]
    emit(as_json, data, [[d["name"], " ".join(d["versions"])] for d in data], ["Name", "Versions"])


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
    emit(as_json, {"name": name, "version": version} if as_json else f"KMS key {name}: new version {version}")


@click.group()
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
    emit(as_json, {"primary_key": kid} if as_json else f"new SSE-S3 master key {kid}")
