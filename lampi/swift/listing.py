"""Account and container listings in Swift's text, JSON and XML formats."""

from __future__ import annotations

import functools
import json
import math
import re
from urllib.parse import parse_qsl
from datetime import datetime, timezone
from xml.etree.ElementTree import Element, SubElement, tostring

import orjson
from aiohttp import web

from lampi.core import errors
from lampi.core.models import ListingEntry, ListParams
from lampi.core.numbers import uint
from lampi.swift.constraints import CONTAINER_LISTING_LIMIT


@functools.lru_cache(maxsize=4096)
def _iso_seconds(secs: int) -> str:
    return datetime.fromtimestamp(secs, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def iso(ts: float) -> str:
    """Swift's listing timestamp: ISO 8601 with microseconds, no zone.

    Speed: formatting a datetime per row was a third of a 10,000-object JSON listing.
    The date and time of day are cached per whole second (objects listed together
    were mostly written in the same few seconds) and the microseconds appended; they
    are rounded exactly as ``datetime.fromtimestamp`` rounds (half to even, carrying
    into the next second), so the text is the same as before.
    """
    frac, whole = math.modf(ts)
    us = round(frac * 1e6)
    if us >= 1000000:
        whole += 1
        us -= 1000000
    elif us < 0:
        whole -= 1
        us += 1000000
    return f"{_iso_seconds(int(whole))}.{us:06d}"


DIGITS3 = [f"{i:03d}" for i in range(1000)]  # "000".."999": microsecond/millisecond text


# swob's Accept grammar (RFC 2616 section 2.2), used to pick the listing format
_TOKEN = r'[^()<>@,;:\"/\[\]?={}\x00-\x20\x7f]+'
_QUOTED = r'"(?:[^"]|(?:\\.))*"'
_EXT = r"(?:\s*;\s*(?:" + _TOKEN + r")\s*=\s*(?:" + _TOKEN + r"|" + _QUOTED + r"))"
_ACCEPT_RE = re.compile(r"^\s*(" + _TOKEN + r")/(" + _TOKEN + r")(" + _EXT + r"*?\s*)$")
_OFFERED = ("text/plain", "application/json", "application/xml", "text/xml")
FORMAT2CONTENT_TYPE = {"plain": "text/plain", "json": "application/json", "xml": "application/xml"}
CONTENT_TYPE2FORMAT = {"text/plain": "plain", "application/json": "json", "application/xml": "xml",
                       "text/xml": "xml"}


def _best_match(accept: str) -> str | None:
    """swob.Accept.best_match over the listing types; ValueError when malformed."""
    if not accept:
        return _OFFERED[0]
    types: list[tuple[str, float, bool]] = []
    for part in accept.split(","):
        m = _ACCEPT_RE.findall(part)
        if not m:
            raise ValueError("Invalid accept header")
        typ, subtype, params = m[0]
        quality = 1.0
        for param in (p.strip() for p in params.split(";") if p.strip()):
            name, _, value = param.partition("=")
            if name.strip() == "q":
                quality = float(value.strip())
        pattern = "^" + (_TOKEN if typ == "*" else re.escape(typ)) + "/" + (
            _TOKEN if subtype == "*" else re.escape(subtype)) + "$"
        types.append((pattern, quality, "*" not in (typ, subtype)))
    types.sort(reverse=True, key=lambda t: (t[1], t[2]))
    for pattern, _, _ in types:
        for option in _OFFERED:
            if re.match(pattern, option):
                return option
    return None


def listing_format(request: web.Request) -> tuple[str, str]:
    """(format, media type) as Swift's get_listing_content_type picks them.

    ``format=`` wins (an unknown value means text); otherwise the Accept header.
    Raises InvalidArgument (400) for a malformed Accept, NotAcceptable (406) when
    nothing offered is acceptable.
    """
    fmt = request.query.get("format")
    accept = request.headers.get("Accept", "")
    if fmt:
        accept = FORMAT2CONTENT_TYPE.get(fmt.lower(), "text/plain")
    try:
        media = _best_match(accept)
    except ValueError:
        raise errors.InvalidArgument("Invalid Accept header") from None
    if media is None:
        raise errors.NotAcceptable()
    return CONTENT_TYPE2FORMAT[media], media


# the parameters each listing reads (swift.common.request_helpers.get_param), in the
# order Swift checks them: the first that is not UTF-8 is named in the 400
CONTAINER_PARAMS = ("marker", "end_marker", "prefix", "delimiter", "path", "format", "reverse", "limit")
ACCOUNT_PARAMS = ("prefix", "delimiter", "reverse", "limit", "marker", "end_marker", "format")


def check_params_utf8(request: web.Request, names: tuple[str, ...]) -> None:
    """Swift's ``get_param``: a listing parameter whose %-decoded bytes are not UTF-8 is
    a 400 naming it (aiohttp's ``query`` would hand it on with U+FFFD in their place)."""
    raw = request.rel_url.raw_query_string
    if "%" not in raw:
        return  # bytes beyond ASCII reach the query %-encoded only (lampi.gateway.guard)
    bad = set()
    for key, value in parse_qsl(raw, keep_blank_values=True, encoding="latin-1"):
        if key in names:
            try:
                value.encode("latin-1").decode("utf-8")
            except UnicodeDecodeError:
                bad.add(key)
    for name in names:
        if name in bad:
            raise errors.InvalidArgument(f'"{name}" parameter not valid UTF-8', plain=True)


def list_params(request: web.Request, container: bool = True) -> ListParams:
    """The listing parameters as Swift's container (or account) server reads them.

    Any delimiter, also of several characters; NUL is an ordinary character in
    markers and prefixes (Swift lists by plain comparison); ``path`` (containers only)
    lists one directory level: prefix ``path/``, delimiter ``/``, subdirs left out.
    """
    q = request.query
    check_params_utf8(request, CONTAINER_PARAMS if container else ACCOUNT_PARAMS)
    limit = CONTAINER_LISTING_LIMIT
    given = uint(q.get("limit") or "-")  # not a whole number: the default, as Swift
    if given is not None:
        limit = given
        if limit > CONTAINER_LISTING_LIMIT:
            raise errors.PreconditionFailed(f"Maximum limit is {CONTAINER_LISTING_LIMIT}")
    reverse = q.get("reverse", "").lower() in ("true", "1", "yes", "on", "t", "y")
    path = q.get("path") if container else None
    return ListParams(
        prefix=q.get("prefix", ""),
        delimiter=q.get("delimiter", ""),
        marker=q.get("marker", ""),
        end_marker=q.get("end_marker", ""),
        limit=limit,
        reverse=reverse,
        path=path,
    )


def to_xml(doc: Element) -> bytes:
    """Swift's ``listing_formats.to_xml``: ElementTree's bytes with the declaration in
    double quotes, so the body is byte for byte what Swift sends."""
    result = tostring(doc, encoding="UTF-8").replace(
        b"<?xml version='1.0' encoding='UTF-8'?>", b'<?xml version="1.0" encoding="UTF-8"?>', 1)
    if not result.startswith(b"<?xml "):
        result = b'<?xml version="1.0" encoding="UTF-8"?>\n' + result
    return result


def _policy_item(r: ListingEntry) -> dict[str, str]:
    """``storage_policy`` of an account listing row whose policy name was filled in
    (``Storage.list_containers``: ``extra["storage_policy"]``, ``Storage.policy_name``)."""
    name = (r.extra or {}).get("storage_policy")
    return {"storage_policy": name} if name else {}


def _container_item(r: ListingEntry) -> dict[str, object]:
    return {"name": r.name, "count": r.count, "bytes": r.bytes, "last_modified": iso(r.last_modified),
            **_policy_item(r)}


def render_containers(fmt: str, account: str, rows: list[ListingEntry]) -> tuple[bytes, str]:
    """An account listing as Swift's account server and ``listing_formats`` make it:
    JSON with ``storage_policy``; XML with a newline after the root's start tag and
    after each entry (``account_to_xml``), subdirs as empty ``<subdir name=..>``."""
    items = [{"subdir": r.name} if r.is_subdir else _container_item(r) for r in rows]
    if fmt == "json":
        return json.dumps(items).encode("ascii"), "application/json"
    if fmt == "xml":
        doc = Element("account", name=account)
        doc.text = "\n"
        for item in items:
            if "subdir" in item:
                sub = SubElement(doc, "subdir", name=str(item["subdir"]))
            else:
                sub = SubElement(doc, "container")
                for key in ("name", "count", "bytes", "last_modified", "storage_policy"):
                    if key in item:
                        SubElement(sub, key).text = str(item[key])
            sub.tail = "\n"
        return to_xml(doc), "application/xml"
    return "".join(r.name + "\n" for r in rows).encode(), "text/plain"


def _slo_hash(r: ListingEntry) -> tuple[str, str | None]:
    """(hash, slo_etag): Swift lists an SLO with its manifest JSON's MD5 as ``hash`` and
    the large object's ETag, quoted, as ``slo_etag`` (JSON listings only)."""
    m = (r.extra or {}).get("manifest")
    if m and m.get("kind") == "slo":
        return m.get("body_etag", r.hash), f'"{r.hash}"'
    return r.hash, None


def _object_item(r: ListingEntry) -> dict[str, object]:
    h, slo_etag = _slo_hash(r)
    item: dict[str, object] = {
        "name": r.name,
        "hash": h,
        "bytes": r.bytes,
        "content_type": r.content_type,
        "last_modified": iso(r.last_modified),
    }
    if slo_etag:
        item["slo_etag"] = slo_etag
    return item


def dumps_ascii(items: object) -> bytes:
    """JSON as Swift sends it: ASCII, non-ASCII characters as ``\\u`` escapes.

    Speed: orjson serialises a 10,000-entry listing about ten times faster than
    ``json.dumps``. It writes non-ASCII characters as UTF-8 and has no ``ensure_ascii``,
    so such a body (rare) is made again with ``json.dumps``, which escapes them as Swift
    does. orjson writes no space after ``:`` and ``,``; JSON clients do not care.
    """
    try:
        body = orjson.dumps(items)
    except TypeError:  # orjson.JSONEncodeError: e.g. a surrogate; json.dumps escapes it
        body = b"\xff"
    return body if body.isascii() else json.dumps(items).encode("ascii")


def render_object_rows(rows: list[object]) -> bytes:
    """A JSON object listing from ``Storage.list_object_rows`` (row tuples, subdir entries):
    the same items as ``render_objects("json", ...)`` without a ListingEntry per row."""
    items: list[dict[str, object]] = []
    append = items.append
    # Speed: ``iso`` inlined (it was two fifths of rendering a 10,000-object listing):
    # the date and time of day once per whole second, the microseconds from a table of
    # three-digit strings. Same arithmetic as ``iso``: for a float, ``ts - int(ts)`` is
    # exactly ``math.modf``'s fraction.
    seconds: dict[int, str] = {}
    digits = DIGITS3
    for r in rows:
        if isinstance(r, ListingEntry):
            append({"subdir": r.name} if r.is_subdir else _object_item(r))
            continue
        name, size, etag, ctype, mtime, manifest, _ = r  # type: ignore[misc]
        if manifest:  # rare: an SLO lists its manifest's MD5 and the SLO ETag
            append(_object_item(ListingEntry(name=name, bytes=size, hash=etag, content_type=ctype,
                                             last_modified=mtime, extra={"manifest": json.loads(manifest)})))
            continue
        whole = int(mtime)
        us = round((mtime - whole) * 1e6)
        if us >= 1000000:
            whole += 1
            us -= 1000000
        elif us < 0:
            whole -= 1
            us += 1000000
        day = seconds.get(whole)
        if day is None:
            day = seconds[whole] = _iso_seconds(whole) + "."
        append({"name": name, "hash": etag, "bytes": size, "content_type": ctype,
                "last_modified": day + digits[us // 1000] + digits[us % 1000]})
    return dumps_ascii(items)


def render_objects(fmt: str, container: str, rows: list[ListingEntry]) -> tuple[bytes, str]:
    """A container listing in ``fmt``. XML as Swift's ``container_to_xml``: no text
    between elements, a subdir as ``<subdir name=..><name>..</name></subdir>``."""
    if fmt == "json":
        items = [{"subdir": r.name} if r.is_subdir else _object_item(r) for r in rows]
        return dumps_ascii(items), "application/json"
    if fmt == "xml":
        doc = Element("container", name=container)
        for r in rows:
            if r.is_subdir:
                sub = SubElement(doc, "subdir", name=r.name)
                SubElement(sub, "name").text = r.name
            else:
                sub = SubElement(doc, "object")
                SubElement(sub, "name").text = r.name
                SubElement(sub, "hash").text = _slo_hash(r)[0]
                SubElement(sub, "bytes").text = str(r.bytes)
                SubElement(sub, "content_type").text = r.content_type
                SubElement(sub, "last_modified").text = iso(r.last_modified)
        return to_xml(doc), "application/xml"
    return "".join(r.name + "\n" for r in rows).encode(), "text/plain"
