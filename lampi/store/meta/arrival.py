"""Fresh reads that requests may share.

Some checks must see every change another process or worker committed before the
request arrived: the S3 key cache reads the store's identity generation per request
(lampi.s3.sigv4), so a revoked key stops working at once. That read is a SQLite query
on the event loop (or a PostgreSQL round trip), and under writes it is the dearest part
of an S3 request's authentication (docs/benchmarks.md, session 5). A read that *began
after* a request arrived is as fresh as one the request would make itself, so requests
that arrived before it may use its result.

So fresh reads are numbered in each process (``begin``), and the protocol stamps each
request with the number of fresh reads begun so far (``now``) when bytes of its
connection last arrived before the request is handled (lampi.gateway.guard): at or
after its head was complete. A result read under a number greater than a request's
stamp began after that request arrived (``Latest.usable``). A request without a stamp
(a server without lampi's protocol) shares nothing and reads anew.

The stamp is kept in the request's task (``stamp``, a ``contextvars`` variable): the S3
key cache, the PostgreSQL store's token revocation check and its container, account
and quota reads (lampi.store.meta.memo.Shared) are shared so.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

_begun = 0  # fresh reads begun in this process (one event loop per worker)
_stamp: ContextVar[int | None] = ContextVar("lampi_arrival", default=None)


def set_stamp(number: int) -> None:
    """Stamp the request handled in this task (lampi.gateway.guard)."""
    _stamp.set(number)


def stamp() -> int | None:
    """The stamp of the request handled in this task (None: not stamped)."""
    return _stamp.get()


def now() -> int:
    """The number of fresh reads begun so far: a request's stamp."""
    return _begun


def begin() -> int:
    """Number a fresh read about to begin."""
    global _begun
    _begun += 1
    return _begun


class Latest:
    """The result of the latest-begun fresh read of one thing, with its number."""

    __slots__ = ("number", "value")

    def __init__(self) -> None:
        self.number = 0
        self.value: Any = None

    def fresh_for(self, stamp: int | None) -> bool:
        """Did the read behind ``value`` begin after a request stamped ``stamp`` arrived?"""
        return stamp is not None and self.number > stamp

    def record(self, number: int, value: Any) -> None:
        """A read numbered ``number`` returned ``value``; a later-begun one's result stays."""
        if number > self.number:
            self.number, self.value = number, value
