"""``lampi migrate``: copy a store into another (lampi.bg.migrate), e.g. a single node's
data dir (SQLite + files) into PostgreSQL + Ceph RADOS."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import sqlite3
import sys
from typing import Any

import click

from lampi.cli.common import (
    NO_STORE_EXIT,
    blob_url_option,
    data_dir_option,
    json_option,
    policies_option,
    require_store,
    settings_of,
)
from lampi.config import Settings


def _refuse(msg: str) -> click.ClickException:
    err = click.ClickException(" ".join(msg.split()))  # one line (libpq's messages have two)
    err.exit_code = NO_STORE_EXIT
    return err


@click.command()
@data_dir_option
@policies_option
@blob_url_option
@click.option("--to-data-dir", envvar="LAMPI_MIGRATE_TO_DATA_DIR", default=None, metavar="DIR",
              help="The target's data dir: its keys/ (token, S3-secret and SSE keys) and RC file, and with no "
                   "--to-meta-url / --to-blob-url its meta.db / blobs [env LAMPI_MIGRATE_TO_DATA_DIR; default: "
                   "the source's data dir].")
@click.option("--to-meta-url", envvar="LAMPI_MIGRATE_TO_META_URL", default="", metavar="URL",
              help="The target's metadata store: postgresql://USER@HOST:PORT/DB (its schema is made if the "
                   "database has none) [env LAMPI_MIGRATE_TO_META_URL; default: meta.db (SQLite) in --to-data-dir].")
@click.option("--to-blob-url", envvar="LAMPI_MIGRATE_TO_BLOB_URL", default="", metavar="URL",
              help="Where the target keeps object bytes: rados://<pool>?conf=/etc/ceph/ceph.conf&id=<client> "
                   "[env LAMPI_MIGRATE_TO_BLOB_URL; default: files under --to-data-dir].")
@click.option("--jobs", type=click.IntRange(1, 256), default=8, show_default=True,
              help="Blobs copied at a time.")
@json_option
@click.pass_context
def migrate(ctx: click.Context, data_dir: str | None, storage_policies: str | None, blob_url: str | None,
            to_data_dir: str | None, to_meta_url: str, to_blob_url: str, jobs: int, as_json: bool) -> None:
    """Copy a store into another: metadata, object bytes and keys.

    The source is the store the usual options name (--data-dir, --meta-url, --blob-url:
    typically a single node's SQLite + files); the target is given with --to-meta-url
    (PostgreSQL), --to-blob-url (a Ceph RADOS pool) and --to-data-dir (where the target's
    gateways find keys/; default the source's). Everything moves: domains, projects,
    users (password hashes as they are), roles and assignments, S3 keys and the keys
    that seal them, token and SSE keys, containers with their metadata (ACLs, quotas,
    versioning, lifecycle, CORS, policies, temp-URL keys), objects, SLO/DLO manifests
    and segments, versions, multipart uploads in progress and their parts.

    Every blob is read back from the target and compared with the source (size and
    MD5). An interrupted migrate run again continues where it stopped and copies
    nothing twice. Refused (exit status 2, nothing written) while a `lampi serve` runs
    on the source data dir, when the target holds another store's data, when the
    two schemas differ, or when the target cannot be reached. Exit status 0 when
    everything was copied and verified, 1 when blobs the metadata names are missing
    in the source (listed; `lampi fsck` reports them too) or the copy failed.
    """
    from lampi.bg import migrate as mig
    from lampi.store.blob.base import BlobStoreUnavailable
    from lampi.store.dirlock import DataDirLock
    from lampi.store.keyring import SealError
    from lampi.store.meta.base import SchemaError

    src = settings_of(ctx, data_dir=data_dir, storage_policies=storage_policies, blob_url=blob_url)
    require_store(src)
    try:
        dst = dataclasses.replace(src, data_dir=to_data_dir or src.data_dir, meta_url=to_meta_url,
                                  blob_url=to_blob_url)  # checked as any settings
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    same_dir = dst.data_path.resolve() == src.data_path.resolve()
    if same_dir and dst.meta_url == src.meta_url and dst.blob_url == src.blob_url:
        raise _refuse("the target is the source: give --to-meta-url, --to-blob-url or --to-data-dir")
    if same_dir and not dst.meta_url:
        raise _refuse("the target's metadata would be the source's meta.db: give --to-meta-url, or "
                      "--to-data-dir for a SQLite target")

    lock = DataDirLock(src.data_path)
    if not lock.acquire(exclusive=True):
        raise _refuse(f"a lampi server is running on {src.data_path.resolve()} (it holds "
                      f"{lock.path.name}): stop it first, the copy would miss what it writes")
    dst_lock = None
    if not same_dir:
        dst.data_path.mkdir(parents=True, exist_ok=True, mode=0o700)
        dst_lock = DataDirLock(dst.data_path)
        if not dst_lock.acquire(exclusive=True):
            lock.release()
            raise _refuse(f"a lampi server is running on the target data dir {dst.data_path.resolve()}: stop it first")
    try:
        report = _run(src, dst, jobs, as_json, mig, (SchemaError, BlobStoreUnavailable, SealError))
    finally:
        if dst_lock is not None:
            dst_lock.release()
        lock.release()
    _summary(report, src, dst, as_json)
    sys.exit(1 if report.missing else 0)


def _target_text(dst: Settings) -> str:
    from lampi.store.meta.postgres.conn import _safe

    meta = _safe(dst.meta_url) if dst.meta_url else str(dst.data_path.resolve() / "meta.db")
    blobs = dst.blob_url or str(dst.data_path.resolve())
    return f"{meta} + {blobs}"


def _run(src: Settings, dst: Settings, jobs: int, as_json: bool, mig: Any, refusals: tuple[type, ...]) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from lampi.core import errors
    from lampi.store.blob.policies import open_policy_stores
    from lampi.store.meta.factory import open_meta

    console = Console(stderr=True)
    quiet = as_json or not console.is_terminal

    def say(line: str) -> None:
        if not as_json:
            click.echo(line, err=True)

    async def go() -> Any:
        import time

        t0 = time.monotonic()
        report = mig.MigrateReport()
        src_meta = open_meta(src.meta_url, src.data_path)
        dst_meta = src_blobs = dst_blobs = None
        journal = None
        try:
            dst_meta = open_meta(dst.meta_url, dst.data_path, create=True)
            src_blobs = open_policy_stores(src)
            dst_blobs = open_policy_stores(dst)
            await asyncio.to_thread(dst_blobs.check)
            await mig.check_schemas(src_meta, dst_meta)
            resuming = await mig.check_target(src_meta, dst_meta)
            say(f"lampi migrate: {src.data_path.resolve()} -> {_target_text(dst)}"
                + (" (continuing an interrupted run)" if resuming else ""))
            await mig.copy_keys(src.data_path / "keys", dst.data_path / "keys", report)
            journal = mig.Journal(mig.journal_path(src.data_path, _target_text(dst)))
            with Progress(TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console,
                          transient=False, disable=quiet) as progress:
                blob_task = progress.add_task("blobs", total=None, info="")

                def on_blob(n: int, nbytes: int) -> None:
                    progress.update(blob_task, completed=n, total=report.blobs, info=f"{nbytes / 1e6:,.1f} MB")

                await mig.copy_blobs(src_meta, src_blobs, dst_blobs, report, jobs=jobs, journal=journal,
                                     progress=on_blob)
                progress.update(blob_task, completed=report.blobs, total=report.blobs)
                report.leftovers_removed = await asyncio.to_thread(mig.clear_leftovers, dst_blobs)
                say(f"blobs: {report.blobs} ({report.copied} copied and verified, {report.already} copied before, "
                    f"{report.in_place} in place)")
                row_task = progress.add_task("rows", total=None, info="")

                def on_rows(table: str, n: int) -> None:
                    progress.update(row_task, description=f"rows: {table}", completed=n)

                await mig.copy_rows(src_meta, dst_meta, report, progress=on_rows)
                progress.update(row_task, description="rows", completed=sum(report.rows.values()),
                                total=sum(report.rows.values()))
            rc, dst_rc = src.data_path / "openrc.sh", dst.data_path / "openrc.sh"
            if rc.exists() and not dst_rc.exists():  # the admin's password, as it is in the copy
                shutil.copy2(rc, dst_rc)
        except refusals as exc:
            raise _refuse(str(exc)) from None
        except mig.MigrateRefused as exc:
            raise _refuse(str(exc)) from None
        except mig.MigrateFailed as exc:
            raise click.ClickException(f"{exc}; nothing is lost: run lampi migrate again") from None
        except (errors.DomainError, OSError, sqlite3.Error) as exc:
            msg = exc.message if isinstance(exc, errors.DomainError) else str(exc)
            raise click.ClickException(" ".join(f"the copy stopped: {msg}; run lampi migrate again to "
                                                "continue".split())) from None
        finally:
            if journal is not None:
                journal.close()
            for store in (src_meta, dst_meta, src_blobs, dst_blobs):
                if store is not None:
                    await store.close()
        report.seconds = time.monotonic() - t0
        return report

    try:
        return asyncio.run(go())
    except refusals as exc:  # raised while opening a store
        raise _refuse(str(exc)) from None


def _summary(report: Any, src: Settings, dst: Settings, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    rate = report.objects / report.seconds if report.seconds else 0.0
    mb = report.bytes_copied / 1e6
    click.echo(f"moved {report.objects} objects and versions, {sum(report.rows.values())} rows in "
               f"{len(report.rows)} tables, {report.blobs} blobs ({report.copied} copied and verified, "
               f"{mb:.1f} MB; {report.already} already copied; {report.in_place} in place), "
               f"{report.keys_written} key files, in {report.seconds:.1f} s ({rate:.0f} objects/s)")
    click.echo("rows: " + ", ".join(f"{t} {n}" for t, n in report.rows.items() if n))
    for bid in report.missing:
        click.echo(f"MISSING in the source: blob {bid} (its metadata was copied; see lampi fsck)")
    if not report.missing:
        click.echo(f"done: serve it with lampi serve --data-dir {dst.data_path.resolve()}"
                   + (" --meta-url URL" if dst.meta_url else "") + (" --blob-url URL" if dst.blob_url else ""))
