"""The object expirer: reclaims objects whose ``X-Delete-At`` has passed.

Readers and listings stop seeing an expired object at once (the metadata store
filters on ``delete_at``); this task removes the rows for good — fixing the
container and account counters — and deletes their blobs. Every worker process runs
one, every ``expirer_interval`` seconds (with some jitter so workers spread out).
They need no other coordination: each pass is one write transaction that removes a
row only while it is still expired (``MetaStore.reap_expired``), so two workers
never reclaim the same row twice and a pass interrupted anywhere is simply redone by
the next. A blob whose row was removed but which a crash kept from being deleted is
an orphan that ``lampi fsck`` collects.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator

from lampi.core.storage import Storage

log = logging.getLogger("lampi.expirer")

BATCH = 500  # rows per transaction: keeps each write short for the request path


async def run_once(storage: Storage, now: float | None = None) -> int:
    """Reclaim every object expired at ``now``; return how many were removed."""
    now = time.time() if now is None else now
    total = 0
    while True:
        blob_ids = await storage.meta.reap_expired(now, BATCH)
        for blob_id in blob_ids:
            await storage.release_blob(blob_id)  # (an S3 multipart object's parts too)
        total += len(blob_ids)
        if len(blob_ids) < BATCH:
            return total


async def run_forever(storage: Storage, interval: float) -> None:
    await asyncio.sleep(interval * random.uniform(0.1, 1.0))
    while True:
        try:
            n = await run_once(storage)
            if n:
                log.info("expirer reclaimed %d expired object(s)", n)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("expirer pass failed")
        await asyncio.sleep(interval * random.uniform(0.8, 1.2))


def context(storage: Storage, interval: float):  # type: ignore[no-untyped-def]
    """An aiohttp ``cleanup_ctx`` running the expirer while the app runs (0: off)."""

    async def ctx(_app: object) -> AsyncIterator[None]:
        task = asyncio.ensure_future(run_forever(storage, interval)) if interval > 0 else None
        yield
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    return ctx
