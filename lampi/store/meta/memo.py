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

The memo belongs to the request's task (a ``contextvars`` variable), shared with the
tasks it starts; it is emptied and closed when the request ends, so such a task
outliving the request reads anew.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

MISS = object()


class Memo:
    __slots__ = ("closed", "forgotten", "values")

    def __init__(self) -> None:
        self.values: dict[tuple[Any, ...], Any] = {}
        self.closed = False
        self.forgotten = 0  # times forgotten: a read that began before the last time is not kept


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
