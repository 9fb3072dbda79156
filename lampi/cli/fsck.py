"""``lampi fsck``: check metadata against blobs, remove orphans and partial uploads."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import click

from lampi.cli.common import (
    NO_STORE_EXIT,
    blob_url_option,
    data_dir_option,
    json_option,
    open_store,
    policies_option,
    require_store,
    settings_of,
)


@click.command()
@data_dir_option
@click.option("--dry-run", is_flag=True, help="Report only; remove nothing.")
@click.option("--grace", type=float, default=60.0, show_default=True,
              help="Also leave files younger than this many seconds alone (a secondary guard: "
                   "uploads in flight are recognised by their lock).")
@json_option
@policies_option
@blob_url_option
@click.pass_context
def fsck(ctx: click.Context, data_dir: str | None, dry_run: bool, grace: float, as_json: bool,
         storage_policies: str | None, blob_url: str | None) -> None:
    """Check metadata against blobs; remove orphaned blobs and partial uploads.

    Exit status 0 when the store is clean (after removals), 1 when objects have a
    missing or wrong-sized blob, 2 when there is no data dir to check.
    """
    from rich.progress import Progress

    from lampi.bg.fsck import fsck as run_fsck
    from lampi.store.blob.base import BlobStoreUnavailable
    from lampi.store.blob.policies import open_policy_stores

    settings = settings_of(ctx, data_dir=data_dir, storage_policies=storage_policies, blob_url=blob_url)
    require_store(settings)  # exit status 2, not 1, which means "damage found"

    async def go() -> Any:
        meta = open_store(settings)
        try:
            with Progress(transient=True, disable=as_json or not sys.stderr.isatty()) as progress:
                return await run_fsck(meta, open_policy_stores(settings), repair=not dry_run, grace=grace,
                                      progress=progress)
        finally:
            await meta.close()

    try:
        rep = asyncio.run(go())
    except BlobStoreUnavailable as exc:
        err = click.ClickException(str(exc))
        err.exit_code = NO_STORE_EXIT
        raise err from None
    if as_json:
        click.echo(json.dumps(rep.as_dict(), indent=2))
    else:
        # (inline blobs, in the metadata store, are checked too: MISSING lines below)
        click.echo(f"objects with a blob: {rep.objects}  blobs: {rep.blobs}")
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
