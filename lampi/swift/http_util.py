"""Request and header helpers of the Swift adapter: metadata, ranges, conditionals,
expiry, an object PUT's body and headers (shared by objects, slo, symlink, bulk)."""

from __future__ import annotations

import math
import mimetypes
import time
from collections.abc import AsyncIterator
from datetime import timezone
from email.utils import parsedate_to_datetime

from aiohttp import web
from multidict import CIMultiDictProxy

from lampi.core import errors
from lampi.core.models import CKey, ObjectRecord
from lampi.core.numbers import uint
from lampi.http.context import STORAGE
from lampi.http.expect import send_continue
from lampi.http.transfer import body_chunks
from lampi.swift import constraints as C
from lampi.swift.errors import swift_error


def x_timestamp(ts: float) -> str:
    return f"{ts:016.5f}"


MAX_DELETE_AT = 9999999999  # the latest expiry Swift stores (2286-11-20), a 10-digit timestamp


def normalize_delete_at(ts: int) -> int:
    """An expiry time clamped to [0, MAX_DELETE_AT], as Swift's
    ``normalize_delete_at_timestamp``: a huge X-Delete-At is "never", not an integer
    too large for the metadata store; a negative one is in the past."""
    return min(max(0, ts), MAX_DELETE_AT)


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
    # Swift's check_metadata: limits checked item by item, in header order, with
    # Swift's messages (the key as swob title-cases header names).
    for name, value in headers.items():
        lname = name.lower()
        if lname.startswith(prefix):
            key = lname[len(prefix):]
            shown = prefix + name.title()[len(prefix):]
            if not key:
                raise errors.InvalidMetadata("Metadata name cannot be empty")
            # aiohttp passes undecodable header bytes on as surrogate escapes. Swift
            # refuses them for accounts and containers, and keeps an object's as sent
            # (check_metadata); limits count the bytes received either way.
            if kind != "object" and not (_is_utf8(key) and _is_utf8(value)):
                raise errors.InvalidMetadata("Metadata must be valid UTF-8")
            count += 1
            size += nbytes(key) + nbytes(value)
            if nbytes(key) > C.MAX_META_NAME_LENGTH:
                raise errors.InvalidMetadata(f"Metadata name too long: {shown}")
            if nbytes(value) > C.MAX_META_VALUE_LENGTH:
                raise errors.InvalidMetadata(f"Metadata value longer than {C.MAX_META_VALUE_LENGTH}: {shown}")
            if count > C.MAX_META_COUNT:
                raise errors.InvalidMetadata(f"Too many metadata items; max {C.MAX_META_COUNT}")
            if size > C.MAX_META_OVERALL_SIZE:
                raise errors.InvalidMetadata(f"Total metadata too large; max {C.MAX_META_OVERALL_SIZE}")
            out[key] = value if value != "" else None
        elif allow_remove and lname.startswith(rprefix):
            key = lname[len(rprefix):]
            if key:
                out[key] = None
    return out


# Headers whose values lampi follows as paths: one that is not UTF-8 is refused as a
# path that is not (412), the others as Swift refuses such a Content-Type (400)
PATH_HEADERS = frozenset(("x-copy-from", "x-copy-from-account", "destination", "destination-account",
                          "x-symlink-target", "x-symlink-target-account", "x-object-manifest",
                          "x-versions-location", "x-history-location"))
TEXT_HEADERS = frozenset(("content-type", "content-disposition", "content-encoding", "content-language",
                          "cache-control", "expires", "origin", "access-control-request-headers",
                          "access-control-request-method", *PATH_HEADERS))
_META = ("x-object-meta-", "x-container-meta-", "x-account-meta-")


def check_header_text(headers: CIMultiDictProxy[str]) -> None:
    """Refuse a request whose headers lampi stores, follows or sends back hold bytes that
    are not UTF-8. aiohttp passes those on as surrogate escapes, which neither the
    metadata store nor a response can hold (a 500 wherever they arrived). Metadata has its
    own check and message (``parse_meta``)."""
    for name, value in headers.items():
        if value.isascii() or _is_utf8(value):
            continue
        lname = name.lower()
        if lname.startswith(_META) or not (lname in TEXT_HEADERS or lname.startswith("x-")):
            continue
        if lname in PATH_HEADERS:
            raise errors.PreconditionFailed("Invalid UTF8 or contains NULL")
        raise errors.InvalidArgument(f"Invalid {name.title()}")


def nbytes(text: str) -> int:
    """Bytes of a header value as received (surrogate escapes count as the byte each stands for)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogateescape"))


def swob_title(name: str) -> str:
    """A header name as Swift sends it: swob's HeaderKeyDict title-cases every name as
    ``bytes.title`` does (an ASCII letter after a non-letter upper case, the others
    lower case; other bytes as they are): ``X-Container-Meta-Project-Code``, ``Etag``."""
    if name.isascii():
        return name.title()
    return name.encode("utf-8", "surrogateescape").title().decode("utf-8", "surrogateescape")


def header_text(text: str) -> str:
    """A stored value fit to send in a header: bytes that were not UTF-8 (kept as
    surrogate escapes) as U+FFFD, which aiohttp can encode."""
    if text.isascii() or _is_utf8(text):
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_total_meta(meta: dict[str, str]) -> None:
    """Swift limits on the resulting metadata of an account, container or object."""
    if len(meta) > C.MAX_META_COUNT:
        raise errors.InvalidMetadata(f"Too many metadata items; max {C.MAX_META_COUNT}")
    if sum(nbytes(k) + nbytes(v) for k, v in meta.items()) > C.MAX_META_OVERALL_SIZE:
        raise errors.InvalidMetadata(f"Total metadata too large; max {C.MAX_META_OVERALL_SIZE}")


MAX_RANGES = C.MAX_RANGES
MAX_RANGE_OVERLAPS = C.MAX_RANGE_OVERLAPS
MAX_NONASCENDING_RANGES = C.MAX_NONASCENDING_RANGES


def parse_range(header: str | None, length: int) -> list[tuple[int, int]] | None:
    """Byte ranges as (start, end-exclusive) clipped to ``length``, as swob.Range does.

    None: no usable Range header (serve the whole object, as Swift does for
    syntactically invalid ones). Raises RangeNotSatisfiable when no range overlaps
    the object, or when the request is egregious (more than 50 ranges, more than 2
    overlapping pairs, or 8 or more ranges out of order) — Swift answers 416 then.
    For an empty object a suffix range yields ``[(0, 0)]``: Swift serves it whole (200).
    """
    if not header:
        return None
    value = header.replace(" ", "")
    if not value.lower().startswith("bytes="):
        return None
    parsed: list[tuple[int | None, int | None]] = []
    for spec in value[6:].split(","):
        first_s, sep, last_s = spec.partition("-")
        if not sep:
            return None
        first = uint(first_s) if first_s else None
        last = uint(last_s) if last_s else None
        if (first_s and first is None) or (last_s and last is None):
            return None
        if first is None and last is None:
            return None
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
        elif first < length:
            out.append((first, length if last is None else min(last + 1, length)))
    if not out or len(out) > MAX_RANGES:
        raise errors.RangeNotSatisfiable()
    overlaps = 0
    for i, (s1, e1) in enumerate(out):
        for s2, e2 in out[i + 1 :]:
            if s1 < s2 < e1 or s1 < e2 < e1 or s2 < s1 < e2 or s2 < e1 < e2:
                overlaps += 1
                if overlaps > MAX_RANGE_OVERLAPS:
                    raise errors.RangeNotSatisfiable()
    if len(out) >= MAX_NONASCENDING_RANGES and any(a > b for a, b in zip(out, out[1:])):
        raise errors.RangeNotSatisfiable()
    return out


def _etag_matches(header: str, etag: str) -> bool:
    """swob.Match: comma-separated tags, one pair of surrounding quotes removed; ``*``
    matches anything. Weak tags (``W/"..."``) are compared as given, so never match."""
    tags = set()
    for tag in header.split(","):
        tag = tag.strip()
        if len(tag) >= 2 and tag[0] == '"' and tag[-1] == '"':
            tag = tag[1:-1]
        if tag:
            tags.add(tag)
    return "*" in tags or etag in tags


def _http_ts(value: str) -> float | None:
    try:
        dt = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if dt.tzinfo is None:  # "-0000" or no zone: HTTP dates are GMT
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def check_conditionals(headers: CIMultiDictProxy[str], rec: ObjectRecord) -> None:
    """swob's order: If-None-Match (304), If-Match (412), If-Modified-Since (304),
    If-Unmodified-Since (412). Times compare in whole seconds: Last-Modified is the
    ceiling of the object's timestamp. Unparseable dates are ignored."""
    etag = rec.etag
    last_modified = math.ceil(rec.last_modified)
    inm = headers.get("If-None-Match")
    if inm is not None and _etag_matches(inm, etag):
        raise errors.NotModified()
    im = headers.get("If-Match")
    if im is not None and not _etag_matches(im, etag):
        raise errors.PreconditionFailed()
    ims = headers.get("If-Modified-Since")
    if ims is not None:
        t = _http_ts(ims)
        if t is not None and last_modified <= t:
            raise errors.NotModified()
    ius = headers.get("If-Unmodified-Since")
    if ius is not None:
        t = _http_ts(ius)
        if t is not None and last_modified > t:
            raise errors.PreconditionFailed()


# Object headers stored as system metadata and returned on GET/HEAD.
SYS_HEADERS = ("content-disposition", "content-encoding", "content-language", "cache-control", "expires",
               "x-object-manifest")  # a DLO's manifest header: kept by PUT, replaced by POST, as in Swift


def request_delete_at(request: web.Request) -> int | None:
    h = request.headers
    now = time.time()
    # X-Delete-After wins: Swift turns it into X-Delete-At, replacing a given one
    if "X-Delete-After" in h:
        try:
            after = int(h["X-Delete-After"])
        except ValueError:
            raise errors.InvalidArgument("Non-integer X-Delete-After", plain=True) from None
        at = normalize_delete_at(int(now) + after)  # integer sum: no float overflow
        if at <= now:
            raise errors.InvalidArgument("X-Delete-After in past", plain=True)
        return at
    if "X-Delete-At" in h:
        try:
            at = normalize_delete_at(int(h["X-Delete-At"]))
        except ValueError:
            raise errors.InvalidArgument("Non-integer X-Delete-At", plain=True) from None
        if at <= now:
            raise errors.InvalidArgument("X-Delete-At in past", plain=True)
        return at
    return None


def request_content_type(request: web.Request, name: str) -> str:
    ctype = request.headers.get("Content-Type")
    detect = request.headers.get("X-Detect-Content-Type", "").lower() in ("true", "1", "yes", "on")
    if not ctype or detect:
        guessed = mimetypes.guess_type(name, strict=False)[0]
        ctype = guessed or ctype or "application/octet-stream"
    if ";" in ctype and "swift_bytes=" in ctype:
        ctype = ";".join(p for p in ctype.split(";") if not p.strip().startswith("swift_bytes="))
    return ctype


def request_user_meta(request: web.Request) -> dict[str, str]:
    return {k: v for k, v in parse_meta(request.headers, "object", allow_remove=False).items() if v is not None}


def request_sysmeta(request: web.Request) -> dict[str, str]:
    return {h: request.headers[h] for h in SYS_HEADERS if request.headers.get(h)}


async def request_body(request: web.Request) -> AsyncIterator[bytes]:
    await send_continue(request)
    try:
        async for chunk in body_chunks(request.content):  # as received, never joined
            yield chunk
    except (ConnectionResetError, web.RequestPayloadError) as exc:
        # the client went away (or sent a broken chunked body) before the end:
        # Swift's 499; the storage core aborts the blob, nothing becomes visible
        raise errors.IncompleteBody(str(exc)) from None


async def check_if_none_match(request: web.Request, container: CKey, name: str) -> web.Response | None:
    """Swift: a conditional PUT creates only (``If-None-Match: *``; any other value 400);
    412 when the object exists. None when the PUT may go on."""
    inm = request.headers.get("If-None-Match")
    if inm is None:
        return None
    if inm.strip() != "*":
        return swift_error(400, "If-None-Match only supports *", method="PUT", plain=True)
    try:
        await request.app[STORAGE].head_object(container, name)
    except errors.ObjectNotFound:
        return None
    return swift_error(412, method="PUT")
