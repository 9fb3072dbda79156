"""``lampi migrate``: copy a whole store (metadata + blobs + keys) into another one.

Typically a single node's data dir (SQLite + files) into PostgreSQL + Ceph RADOS, but
any MetaStore / BlobStore pair to any other (SQLite + files into SQLite + files, for a
test or a move to another disk). In this order, each step idempotent:

1. **Checks** (``MigrateRefused``, nothing written): both stores have the same tables
   with the same columns (the schema this lampi knows; a table it does not know how to
   copy is refused), and the target holds no other store's data: every domain, project,
   user, container and S3 key it has already is one of the source's (an empty target,
   or one an interrupted ``lampi migrate`` of this source left).
2. **Keys** (``lampi.store.keyring.store_keys``): token keys, EC2-secret sealing keys, SSE
   and KMS keys into the target's key directory, so that the target opens what the
   source sealed (S3 secrets, SSE objects) and accepts its tokens.
3. **Blobs**: every blob the metadata refers to (``MetaStore.blob_refs``: objects, their
   versions, SLO/DLO manifests and segments — objects like the others —, parts of
   multipart uploads in progress and of completed ones), written under the same id
   (``BlobStore.writer(blob_id=...)``), then read back from the target and compared with
   the source: size and MD5. ``jobs`` blobs at a time. Blobs come before the rows that
   refer to them (the commit order of lampi: a target interrupted here has no row
   naming a missing blob). Verified blobs are noted in a journal, so a run after an
   interruption skips them (after checking the target still has them, at their size);
   a blob copied but not yet noted is read back and compared rather than copied again.
4. **Rows**: table by table (``MIGRATED_TABLES``, foreign keys first), in pages of
   primary keys, written as upserts (``MetaStore.export_rows`` / ``import_rows``): the
   same row copied twice is one row, counters are copied as they are (exact, not
   recounted).

The source must not change meanwhile: the caller holds the source data dir's lock
(``lampi.store.dirlock``), so no ``lampi serve`` runs on it.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lampi.core.models import is_inline
from lampi.store.keyring import install_store_keys, store_keys
from lampi.store.meta.base import MIGRATED_TABLES, NOT_MIGRATED

PAGE = 1000  # rows per export page / import transaction
# tables whose rows say whose store it is: a target with one the source lacks is another store's
IDENTIFYING = ("domains", "projects", "users", "containers", "credentials")


class MigrateRefused(Exception):
    """The migration cannot start (the message says why); nothing was written."""


class MigrateFailed(Exception):
    """A blob did not survive the copy (read back different); the message names it."""


@dataclass
class MigrateReport:
    rows: dict[str, int] = field(default_factory=dict)  # table → rows copied
    blobs: int = 0  # blobs the metadata refers to
    copied: int = 0  # blobs written this run (and verified)
    already: int = 0  # blobs a former run had copied (checked, not written again)
    in_place: int = 0  # blobs whose source store is the target's store: nothing to copy
    bytes_copied: int = 0
    bytes_total: int = 0
    missing: list[str] = field(default_factory=list)  # referred to, but not in the source
    keys_written: int = 0
    leftovers_removed: int = 0  # partial blobs of an interrupted run removed from the target
    blob_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def objects(self) -> int:
        return self.rows.get("objects", 0) + self.rows.get("object_versions", 0)

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "objects": self.objects, "blobs": self.blobs, "blobs_copied": self.copied,
                "blobs_already_copied": self.already, "blobs_in_place": self.in_place,
                "bytes_copied": self.bytes_copied, "bytes_total": self.bytes_total,
                "missing_in_source": self.missing, "keys_written": self.keys_written,
                "leftovers_removed": self.leftovers_removed,
                "seconds": round(self.seconds, 3), "blob_seconds": round(self.blob_seconds, 3)}


# -- checks -------------------------------------------------------------------------------


async def check_schemas(src: Any, dst: Any) -> None:
    """MigrateRefused when the two stores' tables or columns differ, or the source has a
    table this lampi does not know how to copy."""
    known = {t for t, _pk in MIGRATED_TABLES} | set(NOT_MIGRATED)
    unknown = sorted(set(await src.table_names()) - known)
    if unknown:
        raise MigrateRefused(f"the source has table(s) this lampi does not know how to copy: {', '.join(unknown)} "
                             "(a newer lampi made it: migrate with that version)")
    for table, _pk in MIGRATED_TABLES:
        a, b = await src.table_columns(table), await dst.table_columns(table)
        if set(a) != set(b):
            only_src, only_dst = sorted(set(a) - set(b)), sorted(set(b) - set(a))
            what = "; ".join(x for x in (
                f"only the source has {', '.join(only_src)}" if only_src else "",
                f"only the target has {', '.join(only_dst)}" if only_dst else "") if x)
            raise MigrateRefused(f"the schemas differ: table {table}: {what or 'missing'} (run the same lampi "
                                 "version on both; `lampi db upgrade` brings a PostgreSQL schema up to date)")


async def _keys(store: Any, table: str, pk: tuple[str, ...], columns: list[str]) -> set[tuple[Any, ...]]:
    idx = [columns.index(k) for k in pk]
    out: set[tuple[Any, ...]] = set()
    after = None
    while True:
        rows = await store.export_rows(table, after, PAGE * 10)
        if not rows:
            return out
        for r in rows:
            out.add(tuple(r[i] for i in idx))
        after = tuple(rows[-1][i] for i in idx)


async def check_target(src: Any, dst: Any) -> bool:
    """MigrateRefused when the target holds another store's data; True when it holds
    some of this one's (a former run was interrupted: this one continues it)."""
    pks = dict(MIGRATED_TABLES)
    resuming = False
    for table in IDENTIFYING:
        columns = await dst.table_columns(table)
        theirs = await _keys(dst, table, pks[table], columns)
        if not theirs:
            continue
        resuming = True
        extra = theirs - await _keys(src, table, pks[table], await src.table_columns(table))
        if extra:
            example = "/".join(str(v) for v in sorted(extra)[0])
            raise MigrateRefused(f"the target holds another store's data: {len(extra)} row(s) of {table} the source "
                                 f"does not have (e.g. {example}); give an empty target")
    return resuming


# -- blobs --------------------------------------------------------------------------------


def _where(store: Any) -> tuple[Any, ...] | None:
    """What identifies a blob store's storage: two stores with the same are one."""
    root = getattr(store, "root", None)
    if root is not None:
        return ("files", str(Path(root).resolve()))
    pool = getattr(store, "pool", None)
    if pool is not None:
        return ("rados", getattr(store, "conf", ""), pool, getattr(store, "namespace", ""))
    return None


class Journal:
    """The blobs verified in the target so far (``<blob id> <size> <md5>`` lines)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.done: dict[str, int] = {}
        self._fh: Any = None
        if path is None:
            return
        try:
            for line in path.read_text().splitlines():
                parts = line.split()
                if len(parts) == 3 and parts[1].isdigit():
                    self.done[parts[0]] = int(parts[1])
        except FileNotFoundError:
            pass
        self._fh = open(path, "a", encoding="ascii")  # noqa: SIM115 - closed by close()
        self._last = time.monotonic()

    def note(self, blob_id: str, size: int, md5: str) -> None:
        if self._fh is None:
            return
        self._fh.write(f"{blob_id} {size} {md5}\n")
        if time.monotonic() - self._last > 1.0:  # a line lost in a crash is only read back again
            self._fh.flush()
            self._last = time.monotonic()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


async def _digest(blobs: Any, blob_id: str) -> tuple[int, str]:
    md5 = hashlib.md5(usedforsecurity=False)
    n = 0
    async for chunk in blobs.read(blob_id):
        md5.update(chunk)
        n += len(chunk)
    return n, md5.hexdigest()


async def copy_blobs(src_meta: Any, src: Any, dst: Any, report: MigrateReport, *, jobs: int = 8,
                     journal: Journal | None = None, progress: Callable[[int, int], None] | None = None) -> None:
    """Copy and verify every blob ``src_meta`` refers to from ``src`` into ``dst`` (both
    PolicyBlobStores); ``progress(blobs, bytes)`` after each."""
    journal = journal or Journal(None)
    started = time.monotonic()
    ids = sorted(b for b in await src_meta.blob_refs() if b and not is_inline(b))  # inline: copied as rows
    report.blobs = len(ids)
    queue = iter(ids)

    async def one(bid: str) -> int:
        size = await asyncio.to_thread(src.blob_size, bid)
        if size is None:
            report.missing.append(bid)
            return 0
        report.bytes_total += size
        src_store, dst_store = src.store_of(bid), dst.store_of(bid)
        if _where(src_store) is not None and _where(src_store) == _where(dst_store):
            report.in_place += 1
            return size
        there = await asyncio.to_thread(dst.blob_size, bid)
        if there == size and journal.done.get(bid) == size:
            report.already += 1
            return size
        if there == size:  # copied by an interrupted run, not yet noted: compare instead of copying
            (n1, d1), (n2, d2) = await asyncio.gather(_digest(src, bid), _digest(dst, bid))
            if (n1, d1) == (n2, d2) == (size, d1):
                journal.note(bid, size, d1)
                report.already += 1
                return size
        md5 = hashlib.md5(usedforsecurity=False)
        w = dst.writer(size, blob_id=bid)
        try:
            async for chunk in src.read(bid):
                md5.update(chunk)
                await w.write(chunk)
            await w.commit()
        except BaseException:
            await w.abort()
            raise
        try:
            n, digest = await _digest(dst, bid)
        finally:
            dst.release(bid)
        if n != size or digest != md5.hexdigest():
            raise MigrateFailed(f"blob {bid} read back from the target differs from the source "
                                f"({n} bytes, MD5 {digest}; source {size} bytes, MD5 {md5.hexdigest()})")
        journal.note(bid, size, digest)
        report.copied += 1
        report.bytes_copied += size
        return size

    done = [0, 0]

    async def worker() -> None:
        for bid in queue:  # one shared iterator: each blob goes to one worker
            n = await one(bid)
            done[0] += 1
            done[1] += n
            if progress is not None:
                progress(done[0], done[1])

    try:
        await asyncio.gather(*(worker() for _ in range(max(1, jobs))))
    finally:
        report.blob_seconds = time.monotonic() - started


def clear_leftovers(dst: Any) -> int:
    """Remove the target's partial blobs that no writer holds (what an interrupted run
    left in a file store's tmp/), as ``lampi serve`` does when it starts; a RADOS head
    still locked by a dead writer stays until its lease ends (a copy of that blob
    replaces it anyway)."""
    return sum(dst.remove_partial(ident) for ident, _mtime in list(dst.iter_partials()))


# -- rows ---------------------------------------------------------------------------------


async def copy_rows(src: Any, dst: Any, report: MigrateReport,
                    progress: Callable[[str, int], None] | None = None) -> None:
    """Every row of every migrated table, foreign keys first; ``progress(table, rows)``."""
    for table, pk in MIGRATED_TABLES:
        columns = await src.table_columns(table)
        idx = [columns.index(k) for k in pk]
        after = None
        n = 0
        while True:
            rows = await src.export_rows(table, after, PAGE)
            if not rows:
                break
            await dst.import_rows(table, columns, rows)
            n += len(rows)
            after = tuple(rows[-1][i] for i in idx)
            if progress is not None:
                progress(table, n)
        report.rows[table] = n
        if progress is not None:
            progress(table, n)


async def copy_keys(src_dir: Path, dst_dir: Path, report: MigrateReport) -> None:
    if Path(src_dir).resolve() == Path(dst_dir).resolve():
        return
    keys = await asyncio.to_thread(store_keys, src_dir)
    report.keys_written = await asyncio.to_thread(install_store_keys, dst_dir, keys)


def journal_path(src_data_dir: Path, target: str) -> Path:
    """Where the journal of a migration of this data dir into ``target`` lives."""
    tag = hashlib.sha256(target.encode()).hexdigest()[:16]
    return Path(src_data_dir) / f"migrate-{tag}.journal"

