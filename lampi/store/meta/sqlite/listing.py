"""Swift listing semantics (prefix, delimiter, markers, limit, reverse) over ordered,
paged range scans, so no listing ever loads more than one batch of rows."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from lampi.core.models import ListingEntry, ListParams

_LIST_BATCH = 1000


def _after(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix``.

    None when there is none (``prefix`` is all U+10FFFF). Code points are stepped over
    the surrogate block, which no (UTF-8) name can hold and sqlite3 cannot bind.
    """
    while prefix:
        nxt = ord(prefix[-1]) + 1
        if nxt <= 0x10FFFF:
            if 0xD800 <= nxt <= 0xDFFF:
                nxt = 0xE000
            return prefix[:-1] + chr(nxt)
        prefix = prefix[:-1]
    return None


def raw_row(row: tuple[Any, ...]) -> Any:
    """``make`` for raw rows (fold_listing then returns the fetched list as it is)."""
    return row


def fold_listing(
    fetch: Callable[[str | None, bool, str | None, bool, int], list[tuple[Any, ...]]],
    params: ListParams,
    make: Callable[[tuple[Any, ...]], ListingEntry],
) -> list[ListingEntry]:
    """Swift listing semantics over ordered range scans.

    ``fetch(lower, lower_inclusive, upper, upper_inclusive, n)`` returns up to ``n`` rows
    (name first) ordered by name — descending when ``params.reverse``. Prefix,
    delimiter (subdir folding), marker, end_marker, limit and reverse are applied here
    without ever loading more than one batch.
    """
    prefix, delim, limit = params.prefix, params.delimiter, params.limit
    path = params.path
    if path is not None:  # Swift's path=: one level under "path/", no subdir entries
        prefix = path = path.rstrip("/") + "/" if path else ""
        delim = "/"
    out: list[ListingEntry] = []
    if limit <= 0:
        return out
    # Swift swaps the markers for a reverse listing and skips a subdir equal to the
    # (swapped) marker, i.e. to the exclusive *lower* bound in both directions.
    skip_subdir = params.end_marker if params.reverse else params.marker
    pupper = _after(prefix) if prefix else None
    if not params.reverse:
        lower: str | None = prefix or None
        lower_inc = True
        if params.marker and (lower is None or params.marker >= lower):
            lower, lower_inc = params.marker, False
        upper: str | None = params.end_marker or None
        if pupper is not None and (upper is None or pupper < upper):
            upper = pupper
        upper_inc = False
    else:
        # reverse: marker is the exclusive upper bound, end_marker the exclusive lower
        upper = params.marker or None
        upper_inc = False
        if pupper is not None and (upper is None or pupper < upper):
            upper = pupper
        lower = params.end_marker or None
        lower_inc = False
        if prefix and (lower is None or prefix > lower):
            lower, lower_inc = prefix, True
    if not delim:
        # No subdirs to fold: the listing is the first ``limit`` rows of one range scan
        # (the prefix is a range too), in one query. Speed: paging by _LIST_BATCH and
        # checking each row in Python was a fifth of a 10,000-object listing. It holds no
        # more rows than the listing returns anyway (``limit``, 10,000 from a client).
        rows = fetch(lower, lower_inc, upper, upper_inc, limit)
        # sorted by name, so all rows have the prefix when the first and last do
        if not rows or not prefix or (rows[0][0].startswith(prefix) and rows[-1][0].startswith(prefix)):
            return rows if make is raw_row else [make(r) for r in rows]
    while len(out) < limit:
        want = min(_LIST_BATCH, limit - len(out))
        rows = fetch(lower, lower_inc, upper, upper_inc, want)
        if not rows:
            break
        moved = False
        for row in rows:
            name = row[0]
            if prefix and not name.startswith(prefix):
                return out
            if delim:
                idx = name.find(delim, len(prefix))
                # path=: a name with more after the delimiter is in a deeper level (skipped
                # whole, listed as nothing); "dir/" itself is an entry of its level
                deeper = idx >= 0 and (path is None or len(name) > idx + len(delim))
                if deeper:
                    subdir = name[: idx + len(delim)]
                    if path is None and subdir != skip_subdir:
                        out.append(ListingEntry(name=subdir, is_subdir=True))
                    if not params.reverse:
                        lower, lower_inc = _after(subdir), True
                        if lower is None:  # nothing sorts after this subdir
                            return out
                    else:
                        upper, upper_inc = subdir, False
                    moved = True
                    break
            if name != path:  # path=: the directory marker object itself is not listed
                out.append(make(row))
                if len(out) >= limit:
                    return out
            if not params.reverse:
                lower, lower_inc = name, False
            else:
                upper, upper_inc = name, False
        if not moved and len(rows) < want:
            break
    return out



def range_fetch(
    c: sqlite3.Connection, base: str, base_args: list[Any], reverse: bool
) -> Callable[[str | None, bool, str | None, bool, int], list[Any]]:
    """A ``fold_listing`` fetch over ``base`` (a SELECT whose WHERE clause takes
    ``base_args``; rows name first), ordered by name."""

    def fetch(lo: str | None, lo_inc: bool, hi: str | None, hi_inc: bool, n: int) -> list[Any]:
        sql = base
        args: list[Any] = list(base_args)
        if lo is not None:
            sql += " AND name >= ?" if lo_inc else " AND name > ?"
            args.append(lo)
        if hi is not None:
            sql += " AND name <= ?" if hi_inc else " AND name < ?"
            args.append(hi)
        sql += " ORDER BY name DESC" if reverse else " ORDER BY name"
        sql += " LIMIT ?"
        args.append(n)
        return c.execute(sql, args).fetchall()

    return fetch


class _Scan:
    """A paged range scan: rows after the current position, ``_LIST_BATCH`` at a time;
    ``seek`` moves the position (dropping what was buffered)."""

    def __init__(self, c: sqlite3.Connection, base: str, args: list[Any], order: str,
                 after: Callable[[tuple[Any, ...]], tuple[str, list[Any]]]) -> None:
        self.c, self.base, self.args, self.order, self.after = c, base, args, order, after
        self.cond: tuple[str, list[Any]] | None = None
        self.buf: list[tuple[Any, ...]] = []
        self.pos = 0
        self.done = False

    def seek(self, cond: tuple[str, list[Any]]) -> None:
        self.cond, self.buf, self.pos, self.done = cond, [], 0, False

    def peek(self) -> tuple[Any, ...] | None:
        if self.pos >= len(self.buf) and not self.done:
            sql, args = self.base, list(self.args)
            if self.cond is not None:
                sql += " AND " + self.cond[0]
                args += self.cond[1]
            self.buf = self.c.execute(sql + self.order + " LIMIT ?", [*args, _LIST_BATCH]).fetchall()
            self.pos = 0
            self.done = len(self.buf) < _LIST_BATCH
            if self.buf:
                self.cond = self.after(self.buf[-1])
        return self.buf[self.pos] if self.pos < len(self.buf) else None

    def pop(self) -> tuple[Any, ...]:
        row = self.buf[self.pos]
        self.pos += 1
        return row
