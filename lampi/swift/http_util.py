"""Header helpers for the Swift adapter: metadata, ranges, conditionals, dates."""

from __future__ import annotations

import math
import re
from email.utils import formatdate, parsedate_to_datetime

from multidict import CIMultiDictProxy

from lampi.core import errors
from lampi.core.models import ObjectRecord
from lampi.swift import constraints as C


def http_date(ts: float) -> str:
    return formatdate(math.ceil(ts), usegmt=True)


def x_timestamp(ts: float) -> str:
    return f"{ts:016.5f}"


def parse_meta(
    headers: CIMultiDictProxy[str], kind: str, allow_remove: bool = True
) -> dict[str, str | None]:
    """Collect ``X-<kind>-Meta-*`` (and ``X-Remove-<kind>-Meta-*``) headers.

    Returns lower-case keys (without the prefix) mapped to a value, or None for a
    removal. Applies Swift's metadata limits (check_metadata) → InvalidMetadata.
    """
    prefix = f"x-{kind}-meta-"
    rprefix = f"x-remove-{kind}-meta-"
    out: dict[str, str | None] = {}
    count = 0
    size = 0
    for name, value in headers.items():
        lname = name.lower()
        if lname.startswith(prefix):
            key = lname[len(prefix):]
            if not key:
                raise errors.InvalidMetadata("Metadata name cannot be empty")
            count += 1
            size += len(key.encode()) + len(value.encode())
            if len(key.encode()) > C.MAX_META_NAME_LENGTH:
                raise errors.InvalidMetadata(f"Metadata name too long; max {C.MAX_META_NAME_LENGTH}")
            if len(value.encode()) > C.MAX_META_VALUE_LENGTH:
                raise errors.InvalidMetadata(f"Metadata value longer than {C.MAX_META_VALUE_LENGTH}: {key}")
            out[key] = value if value != "" else None
        elif allow_remove and lname.startswith(rprefix):
            key = lname[len(rprefix):]
            if key:
                out[key] = None
    if count > C.MAX_META_COUNT:
        raise errors.InvalidMetadata(f"Too many metadata items; max {C.MAX_META_COUNT}")
    if size > C.MAX_META_OVERALL_SIZE:
        raise errors.InvalidMetadata(f"Total metadata too large; max {C.MAX_META_OVERALL_SIZE}")
    return out


def check_total_meta(meta: dict[str, str]) -> None:
    """Swift limits on the resulting metadata of an account, container or object."""
    if len(meta) > C.MAX_META_COUNT:
        raise errors.InvalidMetadata(f"Too many metadata items; max {C.MAX_META_COUNT}")
    if sum(len(k.encode()) + len(v.encode()) for k, v in meta.items()) > C.MAX_META_OVERALL_SIZE:
        raise errors.InvalidMetadata(f"Total metadata too large; max {C.MAX_META_OVERALL_SIZE}")


_RANGE_RE = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


def parse_range(header: str | None, length: int) -> list[tuple[int, int]] | None:
    """Byte ranges as (start, end-exclusive) clipped to ``length``.

    None: no usable Range header (serve the whole object, as Swift does for
    syntactically invalid ones). Raises RangeNotSatisfiable when no range overlaps.
    """
    if not header:
        return None
    header = header.strip()
    if not header.lower().startswith("bytes="):
        return None
    specs = header[6:].split(",")
    if len(specs) > C.MAX_RANGES:
        return None
    parsed: list[tuple[int | None, int | None]] = []
    for spec in specs:
        m = _RANGE_RE.match(spec)
        if not m or (m.group(1) == "" and m.group(2) == ""):
            return None
        first = int(m.group(1)) if m.group(1) else None
        last = int(m.group(2)) if m.group(2) else None
        if first is not None and last is not None and last < first:
            return None
        parsed.append((first, last))
    out: list[tuple[int, int]] = []
    for first, last in parsed:
        if first is None:  # suffix: last N bytes
            assert last is not None
            if last == 0:
                continue
            out.append((max(0, length - last), length))
        else:
            if first >= length:
                continue
            end = length if last is None else min(last + 1, length)
            out.append((first, end))
    if not out:
        raise errors.RangeNotSatisfiable()
    return out


def _etags(header: str) -> list[str]:
    return [t.strip().removeprefix("W/").strip('"') for t in header.split(",") if t.strip()]


def _http_ts(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def check_conditionals(headers: CIMultiDictProxy[str], rec: ObjectRecord) -> None:
    """Swift's order: If-Match, If-None-Match, If-Unmodified-Since, If-Modified-Since."""
    etag = rec.etag
    last_modified = math.ceil(rec.last_modified)
    im = headers.get("If-Match")
    if im is not None:
        tags = _etags(im)
        if "*" not in tags and etag not in tags:
            raise errors.PreconditionFailed()
    inm = headers.get("If-None-Match")
    if inm is not None:
        tags = _etags(inm)
        if "*" in tags or etag in tags:
            raise errors.NotModified()
    ius = headers.get("If-Unmodified-Since")
    if ius is not None:
        t = _http_ts(ius)
        if t is not None and last_modified > t:
            raise errors.PreconditionFailed()
    ims = headers.get("If-Modified-Since")
    if ims is not None and inm is None:
        t = _http_ts(ims)
        if t is not None and last_modified <= t:
            raise errors.NotModified()
