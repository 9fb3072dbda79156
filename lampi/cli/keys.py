"""``lampi kms``, ``lampi sse``: the key store of S3 server-side encryption; ``lampi token``:
the Keystone token keys; ``lampi master-key``: the master key sealing the keys kept in
the metadata store (docs/scale-out.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from lampi.cli.common import (
    NO_STORE_EXIT,
    data_dir_option,
    emit,
    json_option,
    open_store,
    require_store,
    settings_of,
)
from lampi.core import errors

T = TypeVar("T")


@contextmanager
def _store_keys(ctx: click.Context, data_dir: str | None) -> Iterator[Any]:
    """The key source of the settings' store: files in keys/, or the metadata store's table."""
    settings = settings_of(ctx, data_dir=data_dir)
    require_store(settings)
    meta = open_store(settings)
    try:
        yield meta.keys
    finally:
        asyncio.run(meta.close())


def _key_service(ctx: click.Context, data_dir: str | None, fn: Callable[[Any], T]) -> T:
    from lampi.core.sse import KeyService

    with _store_keys(ctx, data_dir) as keys:
        return _key_command(lambda: fn(KeyService(keys)))


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
    version = _key_service(ctx, data_dir, lambda keys: keys.kms_create(name))
    emit(as_json, {"name": name, "version": version} if as_json else f"created KMS key {name} ({version})")


@kms.command("list")
@data_dir_option
@json_option
@click.pass_context
def kms_list(ctx: click.Context, data_dir: str | None, as_json: bool) -> None:
    """List the KMS keys and their versions (the last wraps new data keys)."""
    data = _key_service(ctx, data_dir,
                        lambda keys: [{"name": n, "versions": keys.kms_versions(n)} for n in keys.kms_names()])
    emit(as_json, data, [[d["name"], " ".join(d["versions"])] for d in data], ["Name", "Versions"])


@kms.command("rotate")
@click.argument("name")
@data_dir_option
@json_option
@click.pass_context
def kms_rotate(ctx: click.Context, name: str, data_dir: str | None, as_json: bool) -> None:
    """Make a new version of KMS key NAME for new objects; older versions stay, for the
    objects they encrypted. Safe while a server runs. Back up keys/ afterwards."""
    version = _key_service(ctx, data_dir, lambda keys: keys.kms_rotate(name))
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
    kid = _key_service(ctx, data_dir, lambda keys: keys.rotate_master())
    emit(as_json, {"primary_key": kid} if as_json else f"new SSE-S3 master key {kid}")


@click.group()
def token() -> None:
    """The keys signing Keystone tokens (keys/fernet-N, or the metadata store's keys table)."""


@token.command("rotate-key")
@click.option("--keep", type=click.IntRange(min=2), default=3, show_default=True,
              help="Keys kept, the new one included: tokens signed with an older key stop validating.")
@data_dir_option
@json_option
@click.pass_context
def token_rotate_key(ctx: click.Context, keep: int, data_dir: str | None, as_json: bool) -> None:
    """Make a new token signing key; keep the newest KEEP keys (tokens they signed go on
    validating until they expire), remove older ones. Safe while servers run: every
    gateway signs with the new key once it has seen it (within a second) and verifies
    tokens of the new key at once."""
    with _store_keys(ctx, data_dir) as keys:
        ring = keys.ring("fernet")
        ring.primary(create=True)
        kid = ring.add_key()
        removed = ring.remove(ring.key_ids()[:-keep])
    data = {"primary_key": kid, "removed_keys": [str(r) for r in removed]}
    emit(as_json, data if as_json else f"new token key {kid}; removed {len(removed)} old key(s)")


@click.group("master-key")
def master_key() -> None:
    """The master key sealing the keys kept in the metadata store (PostgreSQL, or a
    master key given to a single node): every gateway needs the same one."""


@master_key.command("generate")
def master_key_generate() -> None:
    """Print a new master key (for LAMPI_MASTER_KEY or a master_key_file of mode 0600):
    for a store that has no keys yet, or as the new key of a rotation (`lampi master-key
    rotate`): a store's keys open only with the master key they are sealed with."""
    from cryptography.fernet import Fernet

    click.echo(Fernet.generate_key().decode())


@master_key.command("rotate")
@data_dir_option
@json_option
@click.pass_context
def master_key_rotate(ctx: click.Context, data_dir: str | None, as_json: bool) -> None:
    """Re-seal every key kept in the metadata store with the FIRST of the master keys
    given (LAMPI_MASTER_KEY "new,old", or one a line in the master key file), in one
    transaction; safe to run again. The procedure: (1) give every gateway "new,old" and
    restart them; (2) run this with the same setting; (3) give everything "new" alone.
    Refused (exit status 2), nothing changed, when a row opens with none of the keys."""
    from lampi.store.keyring import MasterKeyError

    settings = settings_of(ctx, data_dir=data_dir)
    require_store(settings)
    meta = open_store(settings)  # a master key list that opens nothing is refused here, in one line
    try:
        keys = meta.keys
        if not getattr(keys, "shared", False):
            raise _exit2(f"this store keeps its keys as files in {keys.where} (no master key given): there is no "
                         "master key to rotate")
        try:
            resealed, total = keys.rotate_master()
        except MasterKeyError as exc:
            raise _exit2(str(exc)) from None
    finally:
        asyncio.run(meta.close())
    data = {"resealed": resealed, "rows": total}
    emit(as_json, data if as_json else f"re-sealed {resealed} of {total} key row(s) with the first master key")


def _exit2(message: str) -> click.ClickException:
    err = click.ClickException(message)
    err.exit_code = NO_STORE_EXIT
    return err
