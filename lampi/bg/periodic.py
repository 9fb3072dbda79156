"""Background passes (the expirer, S3 lifecycle), one worker at a time.

Every worker runs a loop: the first try after a random part of ``interval``, then
every ``interval`` seconds ±20 %. Before each pass it takes the pass's lease in the
metadata store (``MetaStore.take_lease``, valid ``LEASE_INTERVALS`` intervals and
renewed by every pass of its holder): only the holder runs the pass, so N workers
(or, with a shared metadata store, N gateways) do the work once, and when the holder
stops another worker takes over within a few intervals. A pass that fails is logged
and the next one runs as usual.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from lampi import metrics

LEASE_INTERVALS = 3

_holder_of: tuple[int, str] = (0, "")  # (pid, name): a forked worker names itself anew


def _holder() -> str:
    """This process as a lease holder: host, pid and a random part (pids are reused)."""
    global _holder_of
    if _holder_of[0] != os.getpid():
        _holder_of = (os.getpid(), f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}")
    return _holder_of[1]


async def run_forever(run_once: Callable[[], Awaitable[int]], interval: float, log: logging.Logger,
                      done: str, failed: str, lease: Callable[[str, float], Awaitable[bool]] | None = None,
                      name: str = "") -> None:
    """Call ``run_once`` for ever; log ``done % n`` when it did something, ``failed`` when it raised.
    With ``lease`` (``take_lease`` bound to the store and a lease name), only while
    this process holds that lease."""
    await asyncio.sleep(interval * random.uniform(0.1, 1.0))
    while True:
        try:
            if lease is None or await lease(_holder(), interval * LEASE_INTERVALS):
                try:
                    n = await run_once()
                except Exception:
                    metrics.note_pass(name or "background", False)
                    raise
                metrics.note_pass(name or "background", True, n)
                if n:
                    log.info(done, n)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            short = exhaustion(exc)
            if short is None:
                log.exception(failed)
            else:  # the machine's state, not a bug: one line, no traceback (as the listener)
                log.warning("%s: %s (%s: %s)", failed, short, type(exc).__name__, exc)
        await asyncio.sleep(interval * random.uniform(0.8, 1.2))


_EXHAUSTED = (errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS)


def exhaustion(exc: BaseException) -> str | None:
    """The resource a failure ran out of (file descriptors, memory), or None for any
    other failure. Libraries do not always say: SQLite answers "unable to open database
    file" when open() failed with EMFILE, so with no errno in the exception's chain this
    process's own descriptors are probed."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _EXHAUSTED:
            return os.strerror(seen.errno)
        seen = seen.__cause__ or seen.__context__
    try:
        os.close(os.dup(2))
    except OSError as probe:
        if probe.errno in _EXHAUSTED:
            return os.strerror(probe.errno)
    return None


def context(run_once: Callable[[], Awaitable[int]], interval: float, log: logging.Logger,
            done: str, failed: str, meta: Any = None, name: str = ""):  # type: ignore[no-untyped-def]
    """An aiohttp ``cleanup_ctx`` running ``run_forever`` while the app runs (interval 0:
    off); with ``meta``, under the lease ``name`` in that metadata store."""
    lease = None
    if meta is not None and name:
        async def lease(holder: str, ttl: float) -> bool:
            return await meta.take_lease(name, holder, ttl, time.time())

    async def ctx(_app: object) -> AsyncIterator[None]:
        task = asyncio.ensure_future(run_forever(run_once, interval, log, done, failed, lease, name)) \
            if interval > 0 else None
        yield
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    return ctx
