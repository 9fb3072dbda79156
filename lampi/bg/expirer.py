"""The object expirer: reclaims objects whose ``X-Delete-At`` has passed.

Readers and listings stop seeing an expired object at once (the metadata store
filters on ``delete_at``); this task removes the rows for good — fixing the
container and account counters — and deletes their blobs. Every worker process runs
one, every ``expirer_interval`` seconds (with some jitter so workers spread out).
They need no other coordination: each pass is one write transaction that removes a
row only while it is still expired (``MetaStore.reap_expired``), so two workers
never reclaim the same row twice and a pass interrupted anywhere is simply redone by
the next. Only the worker holding the ``expirer`` lease runs passes (lampi.bg.periodic). A blob whose row was removed but which a crash kept from being deleted is
an orphan that ``lampi fsck`` collects.
"""

from __future__ import annotations

import logging
import time

from lampi.bg import periodic
from lampi.core.storage import Storage

log = logging.getLogger("lampi.expirer")

BATCH = 500  # rows per transaction: keeps each write short for the request path


async def run_once(storage: Storage, now: float | None = None) -> int:
    """Reclaim every object expired at ``now``; return how many were removed."""
    now = time.time() if now is None else now
    total = 0
    while True:
        blob_ids = await storage.meta.reap_expired(now, BATCH)  # one per object removed
        for blob_id in blob_ids:
            if blob_id:  # ("": an inline blob, gone with its row, or a version's)
                await storage.release_blob(blob_id)  # (an S3 multipart object's parts too)
        total += len(blob_ids)
        if len(blob_ids) < BATCH:
            return total


def context(storage: Storage, interval: float):  # type: ignore[no-untyped-def]
    """An aiohttp ``cleanup_ctx`` running the expirer while the app runs (0: off)."""
    return periodic.context(lambda: run_once(storage), interval, log, "expirer reclaimed %d expired object(s)",
                            "expirer pass failed", storage.meta, "expirer")
