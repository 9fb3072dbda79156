"""Background passes run in every worker while the app runs (the expirer, S3 lifecycle).

Each worker runs its own loop: the first pass after a random part of ``interval``,
then every ``interval`` seconds ±20 %, so workers spread out. A pass that fails is
logged and the next one runs as usual.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable


async def run_forever(run_once: Callable[[], Awaitable[int]], interval: float, log: logging.Logger,
                      done: str, failed: str) -> None:
    """Call ``run_once`` for ever; log ``done % n`` when it did something, ``failed`` when it raised."""
    await asyncio.sleep(interval * random.uniform(0.1, 1.0))
    while True:
        try:
            n = await run_once()
            if n:
                log.info(done, n)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(failed)
        await asyncio.sleep(interval * random.uniform(0.8, 1.2))


def context(run_once: Callable[[], Awaitable[int]], interval: float, log: logging.Logger,
            done: str, failed: str):  # type: ignore[no-untyped-def]
    """An aiohttp ``cleanup_ctx`` running ``run_forever`` while the app runs (interval 0: off)."""

    async def ctx(_app: object) -> AsyncIterator[None]:
        task = asyncio.ensure_future(run_forever(run_once, interval, log, done, failed)) if interval > 0 else None
        yield
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    return ctx
