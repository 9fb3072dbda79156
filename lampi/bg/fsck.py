"""Consistency check of a data dir: metadata against blobs, exact on a live store.

Finds (and with ``repair`` removes) blobs no metadata refers to — leftovers of uploads
interrupted between blob commit and metadata commit, or of overwrites interrupted
before the old blob was deleted — and partial writes in ``tmp/``. Reports objects
(and object versions) whose blob is missing or has the wrong size; those are never
repaired automatically.

Safe and exact beside running servers (docs/operations.md has this for operators). It
rests on the order every write keeps: a blob gets a fresh id, is renamed into
``blobs/`` before the metadata transaction that refers to it commits, and is deleted
only after the transaction that dropped the last reference to it; its writer holds a
lock on the file (``BlobStore.claim_*``) from its creation in ``tmp/`` until that
metadata transaction has finished.

* Missing / wrong size. The object list is one snapshot, the blob scan comes after it:
  an overwrite or delete in between makes a live object's old blob look missing. So a
  suspect is re-checked — the blob looked at again, *then* the rows referring to it
  read again — and reported only if a row still refers to it. That is real damage: the
  blob existed when it was listed (it was referenced), and a legitimate delete comes
  only after its last reference is gone, which never returns (ids are not reused).
* Orphans. A blob neither in the list nor in the references read after the scan is a
  candidate. fsck claims it (the writer lock, without waiting) and skips it while a
  writer holds it — committed, its metadata transaction not finished yet. Once claimed,
  no transaction that could refer to it is running or can start, so the references
  read again under the claim (one snapshot) are final: only then is it reported and
  deleted.
* A dry run cannot remove, so it reports an orphan only if it is still on disk
  ``SETTLE`` seconds after it was judged: a blob an overwrite or delete freed at that
  instant is unreferenced too, but the server deletes it right after its metadata
  commit. (With repair, removing such a blob first is harmless.)
* Partials are removed only under the claim: an upload holds its temp file's lock for
  as long as it writes, however long it pauses.
* ``grace``: files modified less than ``grace`` seconds ago are left alone too — a
  secondary guard only (a server of an older lampi that takes no locks).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from lampi.core.models import is_inline
from lampi.store.blob.base import BlobStore
from lampi.store.meta.base import MetaStore

CLAIM_BATCH = 256  # orphan candidates claimed (files held open) at a time
SETTLE = 2.0  # seconds a dry run waits before it reports an orphan (module docstring)


@dataclass
class FsckReport:
    objects: int = 0  # objects and versions whose bytes are a blob (not inline)
    blobs: int = 0  # blobs found in the blob store
    orphan_blobs: list[str] = field(default_factory=list)
    partials: list[str] = field(default_factory=list)
    missing_blobs: list[tuple[str, str, str]] = field(default_factory=list)
    size_mismatches: list[tuple[str, str, int, int]] = field(default_factory=list)
    removed: int = 0
    skipped_young: int = 0
    skipped_in_use: int = 0  # held by a writer (or gone) when fsck came to judge it
    rechecked: int = 0  # suspects the re-check found fine (changed by a live server)
    repaired: bool = False

    @property
    def clean(self) -> bool:
        """No damage left: nothing missing or mismatched, and leftovers removed."""
        leftovers = (self.orphan_blobs or self.partials) and not self.repaired
        return not (leftovers or self.missing_blobs or self.size_mismatches)

    def as_dict(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "objects": self.objects,
            "blobs": self.blobs,
            "orphan_blobs": self.orphan_blobs,
            "partials": self.partials,
            "missing_blobs": [{"container": c, "object": o, "blob": b} for c, o, b in self.missing_blobs],
            "size_mismatches": [
                {"container": c, "object": o, "expected": e, "actual": a} for c, o, e, a in self.size_mismatches
            ],
            "removed": self.removed,
            "skipped_young": self.skipped_young,
            "skipped_in_use": self.skipped_in_use,
            "rechecked": self.rechecked,
        }


async def _recheck(meta: MetaStore, blobs: BlobStore, suspects: set[str], rep: FsckReport) -> None:
    """Report the suspects (blob missing or of another size in the scan) whose damage
    holds when looked at again: blob first, rows after (module docstring)."""
    now = {b: blobs.blob_size(b) for b in suspects}
    damaged: set[str] = set()
    for container, name, blob_id, stored in await meta.objects_with_blobs(only=suspects):
        actual = now[blob_id]
        if actual is None:
            rep.missing_blobs.append((container, name, blob_id))
        elif actual != stored:
            rep.size_mismatches.append((container, name, stored, actual))
        else:
            continue
        damaged.add(blob_id)
    rep.rechecked = len(suspects - damaged)


async def _collect(meta: MetaStore, blobs: BlobStore, candidates: list[str], rep: FsckReport, repair: bool) -> None:
    """Claim each candidate, read the references again under the claims, and report
    (and delete) the unreferenced ones."""
    with contextlib.ExitStack() as claims:
        claimed = []
        for blob_id in candidates:
            if claims.enter_context(blobs.claim_blob(blob_id)):
                claimed.append(blob_id)
            else:  # a writer holds it (metadata not committed yet), or deleted meanwhile
                rep.skipped_in_use += 1
        if not claimed:
            return
        still = await meta.referenced_blobs(claimed)
        for blob_id in claimed:
            if blob_id in still:  # committed meanwhile
                rep.rechecked += 1
                continue
            rep.orphan_blobs.append(blob_id)
            if repair:
                await blobs.delete(blob_id)
                rep.removed += 1


async def fsck(
    meta: MetaStore, blobs: BlobStore, repair: bool = True, grace: float = 60.0, progress: Any = None
) -> FsckReport:
    rep = FsckReport(repaired=repair)
    now = time.time()
    objects = await meta.objects_with_blobs()
    rep.objects = len(objects)
    on_disk: dict[str, int] = {}
    young: set[str] = set()
    task = progress.add_task("scanning blobs", total=None) if progress else None
    for blob_id, size, mtime in blobs.iter_blobs():
        on_disk[blob_id] = size
        if now - mtime < grace:
            young.add(blob_id)
        if progress:
            progress.advance(task)
    rep.blobs = len(on_disk)
    if progress:
        progress.update(task, total=rep.blobs, completed=rep.blobs)
        task = progress.add_task("checking objects", total=len(objects))
    referenced: set[str] = set()
    suspects: set[str] = set()
    for _container, _name, blob_id, size in objects:
        referenced.add(blob_id)
        if on_disk.get(blob_id) != size:
            suspects.add(blob_id)
        if progress:
            progress.advance(task)
    if suspects:
        await _recheck(meta, blobs, suspects, rep)
    # references read after the scan: a blob committed meanwhile is referenced by now
    # (or still held by its writer, which the claim finds out)
    referenced |= await meta.blob_refs()
    candidates = []
    for blob_id in on_disk:
        if blob_id in referenced:
            continue
        if blob_id in young:
            rep.skipped_young += 1
            continue
        candidates.append(blob_id)
    for i in range(0, len(candidates), CLAIM_BATCH):
        await _collect(meta, blobs, candidates[i:i + CLAIM_BATCH], rep, repair)
    judged = time.monotonic()
    for ident, mtime in list(blobs.iter_partials()):
        if now - mtime < grace:
            rep.skipped_young += 1
            continue
        if repair:
            free = blobs.remove_partial(ident)
        else:
            with blobs.claim_partial(ident) as free:
                pass
        if not free:  # an upload in progress holds it (or it finished meanwhile)
            rep.skipped_in_use += 1
            continue
        rep.partials.append(ident)
        if repair:
            rep.removed += 1
    # inline blobs (lampi.core.models.is_inline): written and released in the metadata
    # store's transactions, so each statement's snapshot is exact: no claim, no settling
    rep.missing_blobs += await meta.inline_missing()
    for blob_id, _size in await meta.inline_orphans():
        rep.orphan_blobs.append(blob_id)
        if repair:
            await meta.drop_inline(blob_id)
            rep.removed += 1
    if rep.orphan_blobs and not repair:
        await asyncio.sleep(SETTLE - (time.monotonic() - judged))
        freed = {b for b in rep.orphan_blobs if not is_inline(b) and blobs.blob_size(b) is None}
        rep.orphan_blobs = [b for b in rep.orphan_blobs if b not in freed]
        rep.rechecked += len(freed)
    return rep
