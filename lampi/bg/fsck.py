"""Consistency check of a data dir: metadata against blobs.

Finds (and with ``repair`` removes) blobs no object refers to — leftovers of uploads
interrupted between blob commit and metadata commit, or of overwrites interrupted
before the old blob was deleted — and partial writes in ``tmp/``. Reports objects
whose blob is missing or has the wrong size (those are never deleted automatically).
Files younger than ``grace`` seconds are left alone: they may belong to an upload in
flight on a running server.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from lampi.store.blob.base import BlobStore
from lampi.store.meta.base import MetaStore


@dataclass
class FsckReport:
    objects: int = 0
    blobs: int = 0
    orphan_blobs: list[str] = field(default_factory=list)
    partials: list[str] = field(default_factory=list)
    missing_blobs: list[tuple[str, str, str]] = field(default_factory=list)
    size_mismatches: list[tuple[str, str, int, int]] = field(default_factory=list)
    removed: int = 0
    skipped_young: int = 0
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
        }


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
    for container, name, blob_id, size in objects:
        referenced.add(blob_id)
        actual = on_disk.get(blob_id)
        if actual is None:
            rep.missing_blobs.append((container, name, blob_id))
        elif actual != size:
            rep.size_mismatches.append((container, name, size, actual))
        if progress:
            progress.advance(task)
    # re-read references: an upload may have committed metadata while we scanned
    referenced |= await meta.blob_refs()
    for blob_id in on_disk:
        if blob_id in referenced:
            continue
        if blob_id in young:
            rep.skipped_young += 1
            continue
        rep.orphan_blobs.append(blob_id)
        if repair:
            await blobs.delete(blob_id)
            rep.removed += 1
    for ident, mtime in list(blobs.iter_partials()):
        if now - mtime < grace:
            rep.skipped_young += 1
            continue
        rep.partials.append(ident)
        if repair:
            blobs.remove_partial(ident)
            rep.removed += 1
    return rep
