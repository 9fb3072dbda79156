"""Swift large objects: the ``slo`` and ``dlo`` middlewares' behaviour.

* SLO: ``PUT ?multipart-manifest=put`` (validated against the real segments, Swift's
  "Errors:" body, ``heartbeat=on``), GET/HEAD of the concatenation (ETag = quoted MD5
  of the segment ETags, ``X-Static-Large-Object: True``), ``?multipart-manifest=get``
  (``&format=raw``), ``DELETE ?multipart-manifest=delete`` (bulk-delete style body).
* DLO: ``X-Object-Manifest: <container>/<prefix>``; GET/HEAD concatenate the segments
  listed at read time.
* Copy of a large object: the concatenated data by default; the manifest itself with
  ``?multipart-manifest=get``.

Reference: swift/common/middleware/slo.py, dlo.py, bulk.py. The stored model and the
segment reader are protocol-neutral, in ``lampi/core/manifest.py``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
import uuid
from http import HTTPStatus
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

from aiohttp import web

from lampi.core import errors
from lampi.core import manifest as M
from lampi.core.models import ManifestInfo, ObjectRecord
from lampi.http.context import PROJECT, SETTINGS, STORAGE
from lampi.swift.errors import REASONS, swift_error
from lampi.swift.http_util import check_conditionals, http_date, parse_range, x_timestamp

log = logging.getLogger("lampi.swift.slo")

MAX_MANIFEST_SEGMENTS = 1000
MAX_MANIFEST_SIZE = 8 * 1024 * 1024
MIN_SEGMENT_SIZE = 1  # current Swift: every segment at least 1 byte, the last may be empty
YIELD_FREQUENCY = 10.0  # seconds between heartbeat whitespace
ACCEPTABLE_FORMATS = ("text/plain", "application/json", "application/xml", "text/xml")
TRUE = ("true", "1", "yes", "on", "t", "y")


def info() -> dict[str, dict[str, object]]:
    """The ``slo`` and ``dlo`` entries of ``GET /info``."""
    return {
        "slo": {
            "max_manifest_segments": MAX_MANIFEST_SEGMENTS,
            "max_manifest_size": MAX_MANIFEST_SIZE,
            "yield_frequency": int(YIELD_FREQUENCY),
            "min_segment_size": MIN_SEGMENT_SIZE,
            "allow_async_delete": False,
        },
        "dlo": {"max_get_time": 86400},
    }


def _status(code: int) -> str:
    """swob's status line text, e.g. "201 Created"."""
    reason = REASONS[code][0] if code in REASONS else HTTPStatus(code).phrase
    return f"{code} {reason}"


def _out_format(request: web.Request) -> str | None:
    """swob's Accept.best_match over bulk's formats (text/plain when absent)."""
    accept = request.headers.get("Accept")
    if not accept:
        return "text/plain"
    best: tuple[float, int, str] | None = None
    for part in accept.split(","):
        media, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    return "text/plain"  # invalid header: ignored, as Swift does
        if q <= 0:
            continue
        for i, fmt in enumerate(ACCEPTABLE_FORMATS):
            mt, _, st = media.partition("/")
            ft, _, fs = fmt.partition("/")
            if (mt in ("*", ft)) and (st in ("*", fs, "")):
                cand = (q, -i, fmt)
                if best is None or cand > best:
                    best = cand
                break
    return best[2] if best else None


def response_body(fmt: str, data: dict[str, Any], errs: list[list[str]], root: str) -> bytes:
    """bulk.get_response_body: text/plain "Key: value" lines then "Errors:", or json/xml."""
    if fmt == "application/json":
        return json.dumps({**data, "Errors": errs}).encode("ascii")
    if fmt.endswith("/xml"):
        out = [f"<{root}>\n"]
        for k in sorted(data):
            xk = k.replace(" ", "_").lower()
            out.append(f"<{xk}>{escape(str(data[k]))}</{xk}>\n")
        out.append("<errors>\n")
        for n, s in errs:
            out.append(f"<object><name>{escape(n)}</name><status>{escape(s)}</status></object>\n")
        out.append(f"</errors>\n</{root}>\n")
        return "".join(out).encode("utf-8")
    lines = [f"{k}: {data[k]}\n" for k in sorted(data)] + ["Errors:\n"] + [f"{n}, {s}\n" for n, s in errs]
    return "".join(lines).encode("utf-8")


def is_dlo(rec: ObjectRecord) -> bool:
    return "x-object-manifest" in rec.sysmeta


def is_slo(rec: ObjectRecord) -> bool:
    return rec.manifest is not None and rec.manifest.kind == M.SLO


def is_mpu(rec: ObjectRecord) -> bool:
    """An S3 multipart object: served as a large object (real size, ``X-Static-Large-Object``,
    the S3 ETag ``<md5>-N``), deleted as one object with its parts."""
    return rec.manifest is not None and rec.manifest.kind == M.MPU


def check_put_headers(request: web.Request) -> web.Response | None:
    """PUT/POST checks of the two middlewares on a plain (non-manifest) write."""
    if "X-Static-Large-Object" in request.headers:
        return swift_error(
            400,
            "X-Static-Large-Object is a reserved header. To create a static large object "
            "add query param multipart-manifest=put.",
            method=request.method,
        )
    if request.method == "PUT" and "X-Object-Manifest" in request.headers:
        value = request.headers["X-Object-Manifest"]
        container, _, prefix = value.partition("/")
        if not container or not prefix or "?" in value or "&" in value or prefix[0] == "/":
            return swift_error(400, "X-Object-Manifest must be in the format container/prefix", method="PUT")
    return None


# -- SLO PUT ----------------------------------------------------------------------------


def _parse_range(spec: str) -> tuple[int | None, int | None] | None:
    """One swob byte range "M-N", "M-" or "-N"; None if invalid."""
    first_s, sep, last_s = spec.strip().partition("-")
    if not sep or "," in spec:
        return None
    for p in (first_s, last_s):
        if p and not (p.isascii() and p.isdigit()):
            return None
    if not first_s and not last_s:
        return None
    first = int(first_s) if first_s else None
    last = int(last_s) if last_s else None
    if first is not None and last is not None and last < first:
        return None
    return first, last


def _range_for(rng: tuple[int | None, int | None], size: int) -> tuple[int, int] | None:
    """(start, end-exclusive) of a parsed range over ``size`` bytes; None if unsatisfiable."""
    first, last = rng
    if first is None:
        assert last is not None
        if last == 0 or size == 0:
            return None
        return max(0, size - last), size
    if first >= size:
        return None
    return first, size if last is None else min(last + 1, size)


def _validate_input(raw: bytes, container: str, name: str) -> list[dict[str, Any]]:
    """slo.parse_and_validate_input: raises _BadManifest with Swift's messages."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise _BadManifest("Manifest must be valid JSON.\n") from None
    if not isinstance(parsed, list):
        raise _BadManifest("Manifest must be a list.\n")
    problems: list[str] = []
    for i, seg in enumerate(parsed):
        if not isinstance(seg, dict):
            problems.append(f"Index {i}: not a JSON object")
            continue
        if "path" not in seg:
            # inline "data" segments are not supported by lampi (see swift-compatibility.md)
            problems.append(f"Index {i}: expected keys to include one of 'path'")
            continue
        extra = sorted(k for k in seg if k not in ("path", "etag", "size_bytes", "range"))
        if extra:
            problems.append(f"Index {i}: extraneous keys " + ", ".join(json.dumps(k) for k in extra))
            continue
        if not isinstance(seg["path"], str):
            problems.append(f'Index {i}: "path" must be a string')
            continue
        if not (seg.get("etag") is None or isinstance(seg["etag"], str)):
            problems.append(f'Index {i}: "etag" must be a string or null (if provided)')
            continue
        if "/" not in seg["path"].strip("/"):
            problems.append(f"Index {i}: path does not refer to an object. Path must be of the form /container/object.")
            continue
        size = seg.get("size_bytes")
        if size is not None:
            try:
                if isinstance(size, bool) or isinstance(size, float):
                    raise ValueError
                size = int(size)
            except (TypeError, ValueError):
                problems.append(f"Index {i}: invalid size_bytes")
                continue
            seg["size_bytes"] = size
            if size < 1 and i != len(parsed) - 1:
                problems.append(f"Index {i}: too small; each segment must be at least 1 byte.")
                continue
        if seg["path"].lstrip("/") == f"{container}/{name}":
            problems.append(f"Index {i}: manifest must not include itself as a segment")
            continue
        if seg.get("range"):
            if not isinstance(seg["range"], str):
                problems.append(f"Index {i}: invalid range")
                continue
            if "," in seg["range"]:
                specs = [_parse_range(s) for s in seg["range"].split(",")]
                if all(specs):
                    problems.append(f"Index {i}: multiple ranges (only one allowed)")
                else:
                    problems.append(f"Index {i}: invalid range")
                continue
            rng = _parse_range(seg["range"])
            if rng is None:
                problems.append(f"Index {i}: invalid range")
                continue
            seg["range"] = rng
            if size is not None and _range_for(rng, size) is None:
                problems.append(f"Index {i}: unsatisfiable range")
                continue
    if problems:
        raise _BadManifest("".join(p + "\n" for p in problems))
    return parsed


class _BadManifest(Exception):
    pass


async def _read_capped(request: web.Request, cap: int) -> bytes | None:
    from lampi.swift.objects import send_continue

    await send_continue(request)
    buf = bytearray()
    try:
        async for chunk in request.content.iter_any():
            buf += chunk
            if len(buf) > cap:
                return None
    except (ConnectionResetError, web.RequestPayloadError) as exc:
        raise errors.IncompleteBody(str(exc)) from None
    return bytes(buf)


async def put_manifest(request: web.Request, project_id: str, container: str, name: str) -> web.StreamResponse:
    """``PUT ?multipart-manifest=put``: validate every segment, then store the manifest."""
    from lampi.swift.objects import _content_type, _delete_at, _sysmeta, _user_meta

    storage = request.app[STORAGE]
    settings = request.app[SETTINGS]
    if request.headers.get("X-Copy-From"):
        return swift_error(405, "Multipart Manifest PUTs cannot be COPY requests", method="PUT")
    length = request.content_length
    if length is None and "chunked" not in request.headers.get("Transfer-Encoding", "").lower():
        return swift_error(411, method="PUT")
    if length is not None and length > MAX_MANIFEST_SIZE:
        return swift_error(413, f"Manifest File > {MAX_MANIFEST_SIZE} bytes", method="PUT")
    # header checks first, so a refused manifest stores nothing
    meta, sysmeta, delete_at = _user_meta(request), _sysmeta(request), _delete_at(request)
    sysmeta.pop("x-object-manifest", None)
    from lampi.swift import quotas

    # container_quotas / account_quotas sit before slo in Swift's pipeline: they count
    # the manifest PUT's own Content-Length (the manifest JSON, which is also what
    # bytes-used counts), not the segments, and one more object
    await quotas.check_upload(request, project_id, container, length)
    raw = await _read_capped(request, MAX_MANIFEST_SIZE)
    if raw is None:
        return swift_error(413, f"Manifest File > {MAX_MANIFEST_SIZE} bytes", method="PUT")
    if length is None:  # chunked: checked once its size is known
        await quotas.check_upload(request, project_id, container, len(raw))
    try:
        parsed = _validate_input(raw, container, name)
    except _BadManifest as exc:
        return swift_error(400, str(exc), method="PUT")
    if len(parsed) > MAX_MANIFEST_SEGMENTS:
        return swift_error(413, f"Number of object-backed segments must be <= {MAX_MANIFEST_SEGMENTS}", method="PUT")
    fmt = _out_format(request) or "text/plain"
    heartbeat = request.query.get("heartbeat", "").lower() in TRUE
    resp: web.StreamResponse | None = None
    if heartbeat:
        # Swift answers 202 at once and keeps the connection alive with whitespace;
        # the final status is in the body
        resp = web.StreamResponse(status=202)
        resp.content_type = fmt
        await resp.prepare(request)
        await resp.write(b" ")
    last_beat = time.monotonic()

    async def beat() -> None:
        nonlocal last_beat
        if resp is not None and time.monotonic() - last_beat > YIELD_FREQUENCY:
            await resp.write(b" ")
            last_beat = time.monotonic()

    problems: list[list[str]] = []
    stored: list[dict[str, Any]] = []
    total = 0
    heads: dict[str, ObjectRecord | int] = {}
    for i, seg in enumerate(parsed):
        path = seg["path"]
        qname = quote(path)
        if path not in heads:
            heads[path] = await _head_segment(storage, project_id, path)
            await beat()
        head = heads[path]
        if isinstance(head, int):
            problems.append([qname, _status(head)])
            continue
        seg_len = head.size
        rng_s = None
        if seg.get("range"):
            r = _range_for(seg["range"], head.size)
            if r is None:
                problems.append([qname, "Unsatisfiable Range"])
            elif r != (0, head.size):
                rng_s = f"{r[0]}-{r[1] - 1}"
                seg_len = r[1] - r[0]
        if seg_len < MIN_SEGMENT_SIZE and i != len(parsed) - 1:
            problems.append([qname, "Too small; each segment must be at least 1 byte."])
        if seg.get("size_bytes") is not None and seg["size_bytes"] != head.size:
            problems.append([qname, "Size Mismatch"])
        if seg.get("etag") is not None and seg["etag"].strip('"') != head.etag:
            problems.append([qname, "Etag Mismatch"])
        lm = datetime.fromtimestamp(math.ceil(head.last_modified), tz=timezone.utc)
        item: dict[str, Any] = {
            "name": "/" + path.lstrip("/"),
            "bytes": head.size,
            "hash": head.etag,
            "content_type": head.content_type,
            "last_modified": lm.strftime("%Y-%m-%dT%H:%M:%S.%f"),
        }
        if rng_s:
            item["range"] = rng_s
        if head.manifest is not None:
            item["sub_slo"] = True
        stored.append(item)
        total += seg_len

    async def finish(status: int, data: dict[str, Any], errs: list[list[str]], headers: dict[str, str] | None = None,
                     body: bytes | None = None) -> web.StreamResponse:
        if resp is not None:
            data = {"Response Status": _status(status), **data}
            if status >= 300:
                data.setdefault("Response Body", "\n".join(REASONS.get(status, ("",))))
            await resp.write(b"\r\n\r\n" + response_body(fmt, data, errs, "upload"))
            await resp.write_eof()
            return resp
        if body is None:
            body = response_body(fmt, data, errs, "upload") if status >= 300 else b""
        r = web.Response(status=status, body=body, headers=headers or {})
        r.content_type = fmt if status >= 300 else "text/html"
        if status < 300:
            r.charset = "UTF-8"
        return r

    if problems:
        return await finish(400, {}, problems)
    etag = M.slo_etag(stored)
    client_etag = request.headers.get("ETag")
    if client_etag and client_etag.strip().strip('"') != etag:
        if resp is None:
            return swift_error(422, method="PUT")
        return await finish(422, {}, [])
    body = json.dumps(stored).encode("utf-8")
    ctype = _content_type(request, name)

    async def one() -> AsyncIterator[bytes]:
        yield body

    from lampi.swift import versioning

    await versioning.before_write(storage, project_id, container, name)  # archive the current version
    rec = await storage.put_object(
        container, name, one(), content_type=ctype, meta=meta, sysmeta=sysmeta, delete_at=delete_at,
        max_size=settings.max_object_size, manifest=ManifestInfo(M.SLO, parts=len(stored)),
        total_size=total, total_etag=etag,
    )
    headers = {"ETag": f'"{rec.etag}"', "Last-Modified": http_date(rec.last_modified),
               "X-Timestamp": x_timestamp(rec.last_modified)}
    if resp is not None:
        return await finish(201, {"Etag": headers["ETag"], "Last Modified": headers["Last-Modified"],
                                  "Response Body": ""}, [])
    return await finish(201, {}, [], headers=headers)


async def _head_segment(storage: Any, project_id: str, path: str) -> ObjectRecord | int:
    """The segment's record, or the status its HEAD would get (404 outside the account)."""
    cont, _, obj = path.lstrip("/").partition("/")
    c = await storage.meta.get_container(cont)
    if c is None or c.project_id != project_id or not obj:
        return 404
    rec = await storage.meta.get_object(cont, obj, time.time())
    return 404 if rec is None else rec


# -- GET / HEAD ---------------------------------------------------------------------------


def segment_access(request: web.Request, project_id: str, listing: bool = False) -> M.SegmentAccess:
    """The check run before a segment container is read (``listing``: listed, for a
    DLO). Swift's slo/dlo fetch segments in sub-requests carrying the caller's
    authority, so the caller must be allowed to read each segment container (owner,
    account ACL, container ACL incl. ``.r:`` referrers for anonymous callers): a public
    manifest over a private ``_segments`` container gets 401/403, not the data
    (``acl.check_subrequest``, which also applies a temp URL's scope)."""
    from lampi.swift import acl

    async def check(container: str) -> None:
        await acl.check_subrequest(request, project_id, container, None if listing else "")

    return check


async def get(request: web.Request, rec: ObjectRecord, headers: dict[str, str]) -> web.StreamResponse:
    """GET/HEAD of an SLO or DLO manifest object (``headers``: the object's own)."""
    storage = request.app[STORAGE]
    project_id = request[PROJECT]
    manifest_get = request.query.get("multipart-manifest") == "get"
    if is_mpu(rec):
        headers = dict(headers, **{"ETag": f'"{rec.etag}"', "X-Static-Large-Object": "True"})

        def mpu_reader(off: int, n: int) -> AsyncIterator[bytes]:
            return M.read(storage, rec, project_id, off, n)

        return await serve(request, rec, headers, rec.size, rec.etag, mpu_reader)
    if is_slo(rec):
        assert rec.manifest is not None
        if manifest_get:
            return await _manifest_get(request, rec, headers)
        headers = dict(headers, **{"ETag": f'"{rec.etag}"', "X-Static-Large-Object": "True",
                                  "X-Manifest-Etag": rec.manifest.body_etag})

        access = segment_access(request, project_id)

        def reader(off: int, n: int) -> AsyncIterator[bytes]:
            return M.read(storage, rec, project_id, off, n, access)

        return await serve(request, rec, headers, rec.size, rec.etag, reader)
    # DLO
    cont, prefix = M.parse_dlo(rec.sysmeta["x-object-manifest"])
    # Swift lists the segment container with the caller's authority: a DLO needs read
    # with listing (.rlistings for anonymous callers) on it, else its 401/403
    await segment_access(request, project_id, listing=True)(cont)
    total, etag = await M.dlo_totals(storage, project_id, cont, prefix)
    headers = dict(headers, ETag=f'"{etag}"')
    access = segment_access(request, project_id)

    def dlo_reader(off: int, n: int) -> AsyncIterator[bytes]:
        return M.dlo_read(storage, project_id, cont, prefix, off, n, access)

    return await serve(request, rec, headers, total, etag, dlo_reader)


async def _manifest_get(request: web.Request, rec: ObjectRecord, headers: dict[str, str]) -> web.StreamResponse:
    storage = request.app[STORAGE]
    assert rec.manifest is not None
    body = await M.load_body(storage, rec)
    headers = dict(headers, **{"X-Static-Large-Object": "True", "ETag": rec.manifest.body_etag})
    ctype = "application/json; charset=utf-8"
    if request.query.get("format") == "raw":
        items = json.loads(body)
        for it in items:
            it.pop("content_type", None)
            it.pop("last_modified", None)
            it.pop("sub_slo", None)
            it["path"] = it.pop("name", None)
            it["size_bytes"] = it.pop("bytes", None)
            it["etag"] = it.pop("hash", None)
        body = json.dumps(items, sort_keys=True).encode("utf-8")
        headers["ETag"] = hashlib.md5(body, usedforsecurity=False).hexdigest()
        ctype = rec.content_type  # as the client sent it on PUT, so it can be PUT back
    resp = web.Response(status=200, body=None if request.method == "HEAD" else body, headers=headers)
    resp.headers["Content-Type"] = ctype
    if request.method == "HEAD":
        resp.content_length = len(body)
    return resp


async def serve(
    request: web.Request,
    rec: ObjectRecord,
    headers: dict[str, str],
    size: int,
    etag: str,
    reader: Callable[[int, int], AsyncIterator[bytes]],
) -> web.StreamResponse:
    """Conditionals, ranges (single and multipart/byteranges) and streaming over a large
    object of ``size`` bytes whose entity tag is ``etag``."""
    from dataclasses import replace

    view = replace(rec, etag=etag, size=size)
    try:
        check_conditionals(request.headers, view)
    except (errors.NotModified, errors.PreconditionFailed) as exc:
        status = 304 if isinstance(exc, errors.NotModified) else 412
        return web.Response(status=status, headers=headers)
    head = request.method == "HEAD"
    try:
        ranges = parse_range(request.headers.get("Range"), size)
        if size == 0:
            ranges = None
    except errors.RangeNotSatisfiable:
        resp = swift_error(416, method=request.method)
        resp.headers["Content-Range"] = f"bytes */{size}"
        resp.headers.update({k: v for k, v in headers.items() if k in ("ETag", "Last-Modified", "X-Timestamp")})
        return resp
    if not ranges:
        spans = [(0, size)]
        resp = web.StreamResponse(status=200, headers=headers)
        resp.content_type = rec.content_type
        resp.content_length = size
    elif len(ranges) == 1:
        spans = ranges
        s, e = ranges[0]
        resp = web.StreamResponse(status=206, headers=headers)
        resp.content_type = rec.content_type
        resp.content_length = e - s
        resp.headers["Content-Range"] = f"bytes {s}-{e - 1}/{size}"
    else:
        spans = ranges
    if head:
        if ranges and len(ranges) > 1:
            resp = web.StreamResponse(status=200, headers=headers)
            resp.content_type = rec.content_type
            resp.content_length = size
        await resp.prepare(request)
        return resp
    if ranges and len(ranges) > 1:
        boundary = uuid.uuid4().hex
        metas = [
            f"--{boundary}\r\nContent-Type: {rec.content_type}\r\nContent-Range: bytes {s}-{e - 1}/{size}\r\n\r\n".encode()
            for s, e in ranges
        ]
        closing = f"\r\n--{boundary}--".encode()
        total = sum(map(len, metas)) + sum(e - s for s, e in ranges) + 2 * (len(ranges) - 1) + len(closing)
        resp = web.StreamResponse(status=206, headers=headers)
        resp.headers["Content-Type"] = f"multipart/byteranges;boundary={boundary}"
        resp.content_length = total
    # pull the first chunk before sending headers: a missing first segment is a 409
    first_iter = reader(spans[0][0], spans[0][1] - spans[0][0])
    try:
        first = await anext(first_iter, b"")
    except errors.SegmentError as exc:
        log.warning("large object %s/%s: %s", rec.container, rec.name, exc)
        return swift_error(409, method=request.method)
    except (errors.Unauthorized, errors.Forbidden) as exc:
        # the caller may not read the first segment's container: its 401/403
        from lampi.swift.errors import to_response

        return to_response(exc, request.method)
    await resp.prepare(request)
    try:
        for i, (s, e) in enumerate(spans):
            if ranges and len(ranges) > 1:
                if i:
                    await resp.write(b"\r\n")
                await resp.write(metas[i])
            it = first_iter if i == 0 else reader(s, e - s)
            sent = 0
            if i == 0 and first:
                await resp.write(first)
                sent += len(first)
            async for chunk in it:
                sent += len(chunk)
                await resp.write(chunk)
            if sent != e - s:
                raise errors.SegmentError(f"segments changed while reading ({sent} of {e - s} bytes)")
        if ranges and len(ranges) > 1:
            await resp.write(closing)
    except (errors.SegmentError, errors.Unauthorized, errors.Forbidden) as exc:
        # Swift drops the connection mid-body when a later segment is missing, changed
        # or not readable by the caller
        log.warning("large object %s/%s cut: %s", rec.container, rec.name, exc)
        if request.transport is not None:
            request.transport.close()
        return resp
    await resp.write_eof()
    return resp


# -- DELETE ?multipart-manifest=delete ---------------------------------------------------


async def delete_manifest(request: web.Request, project_id: str, container: str, name: str) -> web.StreamResponse:
    """Delete every segment (nested manifests' too), then the manifest; 200 with a
    bulk-delete style body (the real status is in "Response Status")."""
    storage = request.app[STORAGE]
    fmt = _out_format(request)
    data: dict[str, Any] = {"Response Status": "200 OK", "Response Body": "", "Number Deleted": 0,
                            "Number Not Found": 0}
    failed: list[list[str]] = []
    if fmt is None:  # bulk: no acceptable format → "406 Not Acceptable" in a plain body
        data["Response Status"] = _status(406)
        return web.Response(status=200, body=response_body("text/plain", data, failed, "delete"),
                            content_type="text/plain")
    # (path, error) in Swift's order: segments first, each manifest after its segments
    queue: list[dict[str, Any]] = [{"name": f"/{container}/{name}", "sub_slo": True}]
    todo: list[dict[str, Any]] = []
    while queue:
        if len(queue) > MAX_MANIFEST_SEGMENTS * 10:
            data["Response Status"] = _status(400)
            data["Response Body"] = "Too many buffered slo segments to delete."
            queue = []
            todo = []
            break
        seg = queue.pop(0)
        if seg.get("sub_slo"):
            head = await _head_segment(storage, project_id, seg["name"])
            if isinstance(head, int):
                seg["error"] = {"code": 404, "message": "SLO manifest not found"}
            elif is_mpu(head):
                pass  # an S3 multipart object: deleted as one object, its parts with it
            elif not is_slo(head):
                seg["error"] = {"code": 400, "message": "Not an SLO manifest"}
            else:
                try:
                    queue.extend(json.loads(await M.load_body(storage, head)))
                except (ValueError, errors.SegmentError):
                    seg["error"] = {"code": 500, "message": "Unable to load SLO manifest"}
            seg["sub_slo"] = False
            queue.append(seg)
        else:
            todo.append(seg)
    for seg in todo:
        nm = seg["name"]
        if seg.get("error"):
            if seg["error"]["code"] == 404:
                data["Number Not Found"] += 1
            else:
                failed.append([quote(nm), seg["error"]["message"]])
            continue
        cont, _, obj = nm.lstrip("/").partition("/")
        c = await storage.meta.get_container(cont)
        if c is None or c.project_id != project_id:
            data["Number Not Found"] += 1
            continue
        try:
            await storage.delete_object(cont, obj)
            data["Number Deleted"] += 1
        except errors.ObjectNotFound:
            data["Number Not Found"] += 1
    if failed:
        data["Response Status"] = _status(400)
    elif not (data["Number Deleted"] or data["Number Not Found"]) and data["Response Status"] == "200 OK":
        data["Response Status"] = _status(400)
        data["Response Body"] = "Invalid bulk delete."
    return web.Response(status=200, body=response_body(fmt, data, failed, "delete"), content_type=fmt)


# -- COPY -----------------------------------------------------------------------------------


async def copy_size(request: web.Request, src: ObjectRecord, src_project: str) -> int:
    """Bytes a copy of ``src`` writes: a large object's data, its manifest body with
    ``?multipart-manifest=get`` (a DLO's manifest: 0 bytes); what quotas count."""
    manifest_get = request.query.get("multipart-manifest") == "get"
    if is_slo(src):
        return src.stored_size if manifest_get else src.size
    if is_dlo(src) and not manifest_get:
        cont, prefix = M.parse_dlo(src.sysmeta["x-object-manifest"])
        try:
            return (await M.dlo_totals(request.app[STORAGE], src_project, cont, prefix))[0]
        except errors.ContainerNotFound:
            return 0
    if is_dlo(src):
        return src.stored_size  # the manifest object itself
    return src.size  # a plain object; other manifests (S3 multipart) are copied as data


async def copy(
    request: web.Request,
    src: ObjectRecord,
    src_project: str,
    container: str,
    name: str,
    *,
    content_type: str,
    meta: dict[str, str],
    sysmeta: dict[str, str],
    delete_at: int | None,
) -> ObjectRecord:
    """Copy ``src`` to ``container/name``: large objects as their data (a plain object),
    or, with ``?multipart-manifest=get``, the manifest itself."""
    storage = request.app[STORAGE]
    settings = request.app[SETTINGS]
    manifest_get = request.query.get("multipart-manifest") == "get"
    if is_slo(src) and manifest_get:
        assert src.manifest is not None
        return await storage.put_object(
            container, name, storage.read_stored(src), content_type=content_type, meta=meta, sysmeta=sysmeta,
            delete_at=delete_at, expected_size=src.stored_size, manifest=ManifestInfo(M.SLO, parts=src.manifest.parts),
            total_size=src.size, total_etag=src.etag,
        )
    if is_slo(src):  # the data, its segments read with the caller's authority
        return await storage.put_object(
            container, name, M.read(storage, src, src_project, access=segment_access(request, src_project)),
            content_type=content_type, meta=meta, sysmeta=sysmeta, delete_at=delete_at, expected_size=src.size,
        )
    if is_dlo(src) and not manifest_get:
        cont, prefix = M.parse_dlo(src.sysmeta["x-object-manifest"])
        await segment_access(request, src_project, listing=True)(cont)
        total, _ = await M.dlo_totals(storage, src_project, cont, prefix)
        if total > settings.max_object_size:
            raise errors.EntityTooLarge()
        sysmeta = {k: v for k, v in sysmeta.items() if k != "x-object-manifest"}
        return await storage.put_object(
            container, name, M.dlo_read(storage, src_project, cont, prefix, 0, total,
                                        segment_access(request, src_project)), content_type=content_type,
            meta=meta, sysmeta=sysmeta, delete_at=delete_at, expected_size=total, max_size=settings.max_object_size,
        )
    return await storage.copy_object(
        src, container, name, content_type=content_type, meta=meta, sysmeta=sysmeta, delete_at=delete_at,
    )

