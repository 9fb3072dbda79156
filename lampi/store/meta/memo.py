"""One request's memo of metadata reads.

Handling one request reads the same records several times: a Swift PUT looked its
container up 6 times (the route, the authorization, the quota check, versioning, the
storage policy, the commit) and a GET read its object twice (symlinks, then the object).
On SQLite each read is a few microseconds; over PostgreSQL each is a round trip and a
thread hop, and they were most of a gateway's CPU per request (docs/benchmarks.md,
session 6). So while a request is handled (``scope``: the gateway opens one per
request) the stores remember the container, account and object records they read, and
answer the same read again from memory.

What a request sees does not change with it: the records are those a read at the first
of these moments would have returned, a few milliseconds earlier, which a concurrent
request's write could as well have followed as preceded. And a request sees its own
writes: every write transaction of the store forgets the whole memo, before and after
it. Outside a scope (background passes, admin commands) nothing is remembered.
(The SQLite store keeps container records across requests too, only while meta.db is
unchanged since they were read: ``ContainersMixin._cached``.)

The memo belongs to the request's task (a ``contextvars`` variable), shared with the
tasks it starts; it is emptied and closed when the request ends, so such a task
outliving the request reads anew.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from lampi.store.meta import arrival

MISS = object()


class Memo:
    __slots__ = ("after", "closed", "forgotten", "values")

    def __init__(self) -> None:
        self.values: dict[tuple[Any, ...], Any] = {}
        self.closed = False
        self.forgotten = 0  # times forgotten: a read that began before the last time is not kept
        self.after = 0  # fresh reads begun when the request's last write ended (Shared)


_current: ContextVar[Memo | None] = ContextVar("lampi_meta_memo", default=None)


@contextmanager
def scope() -> Iterator[Memo]:
    """Remember reads until the block ends (one request's handling)."""
    memo = Memo()
    token = _current.set(memo)
    try:
        yield memo
    finally:
        memo.closed = True
        memo.values.clear()
        _current.reset(token)


def active() -> bool:
    """Whether reads are remembered here (a request's scope)."""
    memo = _current.get()
    return memo is not None and not memo.closed


def get(key: tuple[Any, ...]) -> tuple[Any, int]:
    """(the value remembered under ``key`` or ``MISS``, a mark to ``put`` a value read
    now with)."""
    memo = _current.get()
    if memo is None:
        return MISS, 0
    return memo.values.get(key, MISS), memo.forgotten


def put(key: tuple[Any, ...], value: Any, mark: int) -> None:
    """Remember ``value``, read since ``get`` gave ``mark``, unless the memo was
    forgotten meanwhile (a write of this request's, in a task of its own, may have
    committed after the read's snapshot)."""
    memo = _current.get()
    if memo is not None and not memo.closed and memo.forgotten == mark:
        memo.values[key] = value


def forget() -> None:
    """Forget everything (a write is about to change, or changed, the store)."""
    memo = _current.get()
    if memo is not None:
        memo.values.clear()
        memo.forgotten += 1
        memo.after = arrival.now()


class Shared:
    """Reads that the requests of one process share (the PostgreSQL store's container and
    account records: at 16 concurrent requests into one container, each request's
    look-up of it was a round trip of its own).

    A request may use a read that *began after it arrived* (lampi.store.meta.arrival) and
    after its own last write ended (``Memo.after``): such a read sees every change
    committed before the request arrived, on any gateway, as one the request would make
    itself. So a read of a key is numbered when it begins; a request uses the latest
    result if its number is greater than the request's stamp, else joins a read of the
    key in flight that began late enough, else starts one. A request without a stamp
    (no lampi protocol, a background pass, an admin command) or outside a memo scope
    reads anew."""

    MAX = 1024  # keys remembered; past that all are dropped (old results are useless soon)

    def __init__(self) -> None:
        self._latest: dict[tuple[Any, ...], tuple[int, Any]] = {}
        self._flying: dict[tuple[Any, ...], tuple[int, asyncio.Future[Any]]] = {}

    async def read(self, key: tuple[Any, ...], load: Callable[[], Awaitable[Any]], since: int) -> Any:
        got = self._latest.get(key)
        if got is not None and got[0] > since:
            return got[1]
        flying = self._flying.get(key)
        if flying is not None and flying[0] > since:
            return await asyncio.shield(flying[1])
        number = arrival.begin()
        task = asyncio.ensure_future(load())  # a task: a requester cancelled does not cancel the others' read
        self._flying[key] = (number, task)
        try:
            value = await asyncio.shield(task)
        finally:
            if self._flying.get(key, (0, None))[1] is task:
                del self._flying[key]
            if not task.done():
                task.add_done_callback(lambda t: t.cancelled() or t.exception())
        if len(self._latest) >= self.MAX:
            self._latest.clear()
        if number > self._latest.get(key, (0, None))[0]:
            self._latest[key] = (number, value)
        return value


async def read(key: tuple[Any, ...], load: Callable[[], Awaitable[Any]], shared: Shared | None = None) -> Any:
    """The record under ``key``: remembered by the request, else read by ``load`` (with
    ``shared``, a read other requests of the process may share, see ``Shared``)."""
    memo = _current.get()
    if memo is None:
        return await load()
    value = memo.values.get(key, MISS)
    if value is not MISS:
        return value
    mark = memo.forgotten
    stamp = arrival.stamp()
    if shared is not None and stamp is not None:
        value = await shared.read(key, load, max(stamp, memo.after))
    else:
        value = await load()
    put(key, value, mark)
    return value


async def shared(key: tuple[Any, ...], load: Callable[[], Awaitable[Any]], shared: Shared) -> Any:
    """A read other requests of the process may share (``Shared``), not remembered by the
    request: a generation row read again by each check (revocations, identity). Without a
    stamp (no request) read anew."""
    stamp = arrival.stamp()
    if stamp is None:
        return await load()
    memo = _current.get()
    return await shared.read(key, load, stamp if memo is None else max(stamp, memo.after))
