"""Swift SLO manifest writes: ``PUT ?multipart-manifest=put`` (the segment list validated
against the real segments, Swift's "Errors:" body, ``heartbeat=on``) and ``DELETE
?multipart-manifest=delete`` (segments, nested manifests' too, then the manifest; a
bulk-delete style body). Reading large objects is in ``lampi/swift/large_objects.py``.

Reference: swift/common/middleware/slo.py (``handle_multipart_put``,
``handle_multipart_delete``).
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from aiohttp import web

from lampi.core import errors, jsonbody, versions
from lampi.core import manifest as M
from lampi.core.models import CKey, ManifestInfo, ObjectRecord
from lampi.core.numbers import uint
from lampi.http import authz
from lampi.http.context import SETTINGS, STORAGE
from lampi.http.dates import http_date
from lampi.http.expect import send_continue
from lampi.swift import quotas, symlink, versioning
from lampi.swift.bulk import declaration, delete_as_caller, out_format, response_body, status_line
from lampi.swift.errors import REASONS, swift_error
from lampi.swift.http_util import (
    check_if_none_match,
    request_content_type,
    request_delete_at,
    request_sysmeta,
    request_user_meta,
    x_timestamp,
)
from lampi.swift.large_objects import (
    MAX_MANIFEST_SEGMENTS,
    MAX_MANIFEST_SIZE,
    MIN_SEGMENT_SIZE,
    YIELD_FREQUENCY,
    is_mpu,
    is_slo,
    raw_manifest,
)

TRUE = ("true", "1", "yes", "on", "t", "y")


# -- SLO PUT ----------------------------------------------------------------------------


def _parse_range(spec: str) -> tuple[int | None, int | None] | None:
    """One swob byte range "M-N", "M-" or "-N"; None if invalid."""
    first_s, sep, last_s = spec.strip().partition("-")
    if not sep or "," in spec:
        return None
    if not first_s and not last_s:
        return None
    first = uint(first_s) if first_s else None
    last = uint(last_s) if last_s else None
    if (first_s and first is None) or (last_s and last is None):
        return None
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


_B64_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz/+")


def strict_b64decode(value: object) -> bytes:
    """swift.common.utils.strict_b64decode: ValueError for anything but a string of
    base64 characters (``=`` only as padding) with correct padding."""
    if not isinstance(value, str):
        raise ValueError("not a string")
    if any(c not in _B64_CHARS for c in value.strip("=")):
        raise ValueError("invalid character")
    return base64.b64decode(value)  # binascii.Error (a ValueError) on bad padding


def _validate_input(raw: bytes, container: str, name: str) -> list[dict[str, Any]]:
    """slo.parse_and_validate_input: raises _BadManifest with Swift's messages. A
    segment is object-backed (``path`` [, ``etag``, ``size_bytes``, ``range``]) or
    inline (``data``: base64, at least 1 byte, stored re-encoded with normal padding);
    at least one must be object-backed."""
    try:
        parsed = jsonbody.loads(raw)  # ValueError also for deep nesting and lone surrogates
    except ValueError:
        raise _BadManifest("Manifest must be valid JSON.\n") from None
    if not isinstance(parsed, list):
        raise _BadManifest("Manifest must be a list.\n")
    problems: list[str] = []
    for i, seg in enumerate(parsed):
        if not isinstance(seg, dict):
            problems.append(f"Index {i}: not a JSON object")
            continue
        if "data" in seg:
            # Swift checks the keys in SLO_KEYS order: "data" first
            extra = sorted(k for k in seg if k != "data")
            if extra:
                problems.append(f"Index {i}: extraneous keys " + ", ".join(json.dumps(k) for k in extra))
                continue
            try:
                data = strict_b64decode(seg["data"])
            except ValueError:
                problems.append(f"Index {i}: data must be valid base64")
                continue
            if not data:
                problems.append(f"Index {i}: too small; each segment must be at least 1 byte.")
                continue
            seg["data"] = base64.b64encode(data).decode("ascii")  # normalize the padding
            continue
        if "path" not in seg:
            # (Swift 2.38.3 means to say this, but its bytes/str join fails on Python 3: a 500)
            problems.append(f"Index {i}: expected keys to include one of 'data' or 'path'")
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
    if parsed and all(isinstance(seg, dict) and "data" in seg for seg in parsed):
        problems.append("Inline data segments require at least one object-backed segment.")
    if problems:
        raise _BadManifest("".join(p + "\n" for p in problems))
    return parsed


class _BadManifest(Exception):
    pass


async def _read_capped(request: web.Request, cap: int) -> bytes | None:
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


async def _build(
    request: web.Request, project_id: str, parsed: list[dict[str, Any]], beat: Callable[[], Awaitable[None]] | None,
) -> tuple[list[list[str]], M.BuiltManifest | None]:
    """The manifest to store for a validated input: each object-backed segment looked
    up (once per path) as the caller would HEAD it, checked and described as Swift
    stores it; inline segments kept as ``{"data": ...}``. (problems, None) when a
    segment fails (Swift's "Errors:" list), else ([], the manifest)."""
    storage = request.app[STORAGE]
    problems: list[list[str]] = []
    stored: list[dict[str, Any]] = []
    total = 0
    heads: dict[str, tuple[str, ObjectRecord] | int] = {}
    for i, seg in enumerate(parsed):
        if "data" in seg:
            stored.append({"data": seg["data"]})
            total += len(base64.b64decode(seg["data"]))
            continue
        path = seg["path"]
        qname = quote(path)
        if path not in heads:
            heads[path] = await _readable_segment(request, storage, project_id, path)
            if beat is not None:
                await beat()
        found = heads[path]
        if isinstance(found, int):
            problems.append([qname, status_line(found)])
            continue
        stored_path, head = found
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
            "name": stored_path,
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
    if problems:
        return problems, None
    return [], M.BuiltManifest(json.dumps(stored).encode("utf-8"), total, M.slo_etag(stored), len(stored))


def _problems_response(fmt: str, problems: list[list[str]]) -> web.Response:
    """The 400 of a manifest whose segments failed, without heartbeat."""
    r = web.Response(status=400, body=response_body(fmt, {}, problems, "upload"))
    r.content_type = fmt
    return r


async def put_manifest(request: web.Request, project_id: str, container: str, name: str) -> web.StreamResponse:
    """``PUT ?multipart-manifest=put``: validate every segment, then store the manifest."""
    storage = request.app[STORAGE]
    settings = request.app[SETTINGS]
    if request.headers.get("X-Copy-From"):
        return swift_error(405, "Multipart Manifest PUTs cannot be COPY requests", method="PUT")
    ckey = (await storage.container(project_id, container)).key
    length = request.content_length
    if length is None and "chunked" not in request.headers.get("Transfer-Encoding", "").lower():
        return swift_error(411, method="PUT")
    if length is not None and length > MAX_MANIFEST_SIZE:
        return swift_error(413, f"Manifest File > {MAX_MANIFEST_SIZE} bytes", method="PUT")
    # header checks first, so a refused manifest stores nothing
    meta, sysmeta, delete_at = request_user_meta(request), request_sysmeta(request), request_delete_at(request)
    sysmeta.pop("x-object-manifest", None)
    # container_quotas / account_quotas sit before slo in Swift's pipeline: they count
    # the manifest PUT's own Content-Length (the manifest JSON, which is also what
    # bytes-used counts), not the segments, and one more object
    await quotas.check_upload(request, project_id, ckey, length)
    raw = await _read_capped(request, MAX_MANIFEST_SIZE)
    if raw is None:
        return swift_error(413, f"Manifest File > {MAX_MANIFEST_SIZE} bytes", method="PUT")
    if length is None:  # chunked: checked once its size is known
        await quotas.check_upload(request, project_id, ckey, len(raw))
    try:
        parsed = _validate_input(raw, container, name)
    except _BadManifest as exc:
        return swift_error(400, str(exc), method="PUT")
    if sum(1 for seg in parsed if "path" in seg) > MAX_MANIFEST_SEGMENTS:  # inline data segments do not count
        return swift_error(413, f"Number of object-backed segments must be <= {MAX_MANIFEST_SEGMENTS}", method="PUT")
    fmt = out_format(request) or "text/plain"
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

    problems, built = await _build(request, project_id, parsed, beat)

    async def finish(status: int, data: dict[str, Any], errs: list[list[str]], headers: dict[str, str] | None = None,
                     body: bytes | None = None) -> web.StreamResponse:
        if resp is not None:
            data = {"Response Status": status_line(status), **data}
            if status >= 300:
                data.setdefault("Response Body", "\n".join(REASONS.get(status, ("",))))
            await resp.write(b"\r\n\r\n" + response_body(fmt, data, errs, "upload"))
            await resp.write_eof()
            return resp
        if status >= 300:
            return _problems_response(fmt, errs) if status == 400 else swift_error(status, method="PUT")
        r = web.Response(status=status, body=b"", headers=headers or {})
        r.content_type = "text/html"
        r.charset = "UTF-8"
        return r

    if built is None:
        return await finish(400, {}, problems)
    client_etag = request.headers.get("ETag")
    if client_etag and client_etag.strip().strip('"') != built.etag:
        return await finish(422, {}, [])
    # the manifest's own PUT is conditional as any PUT (proxy / object server, after slo)
    if (refused := await check_if_none_match(request, ckey, name)) is not None:
        if resp is None:
            return refused
        return await finish(refused.status, {}, [])
    ctype = request_content_type(request, name)
    await versioning.before_write(storage, project_id, ckey, name)  # archive the current version
    rec = await store(storage, ckey, name, built, content_type=ctype, meta=meta, sysmeta=sysmeta,
                      delete_at=delete_at, max_size=settings.max_object_size)
    headers = {"ETag": f'"{rec.etag}"', "Last-Modified": http_date(rec.last_modified),
               "X-Timestamp": x_timestamp(rec.last_modified)}
    if resp is not None:
        return await finish(201, {"Etag": headers["ETag"], "Last Modified": headers["Last-Modified"],
                                  "Response Body": ""}, [])
    return await finish(201, {}, [], headers=headers)


async def store(storage: Any, container: CKey, name: str, built: M.BuiltManifest, *, content_type: str,
                meta: dict[str, str], sysmeta: dict[str, str], delete_at: int | None,
                max_size: int | None = None) -> ObjectRecord:
    """Write a validated manifest (its size and ETag those of the large object)."""

    async def one() -> AsyncIterator[bytes]:
        yield built.body

    rec: ObjectRecord = await storage.put_object(
        container, name, one(), content_type=content_type, meta=meta, sysmeta=sysmeta, delete_at=delete_at,
        max_size=max_size, manifest=ManifestInfo(M.SLO, parts=built.parts), total_size=built.total,
        total_etag=built.etag,
    )
    return rec


async def manifest_for_copy(request: web.Request, src: ObjectRecord, project_id: str, container: str,
                            name: str) -> M.BuiltManifest | web.StreamResponse:
    """COPY / X-Copy-From of an SLO with ``?multipart-manifest=get``: Swift's copy GETs
    the source manifest ``&format=raw`` and PUTs it ``?multipart-manifest=put`` at the
    destination, so its segments are validated again there, in the destination account
    and with the caller's authority (a copy into another account finds the segments of
    that account, or reports each one as 403/404). The manifest to store, or the 400."""
    raw = raw_manifest(await M.load_body(request.app[STORAGE], src))
    try:
        parsed = _validate_input(raw, container, name)
    except _BadManifest as exc:
        return swift_error(400, str(exc), method="PUT")
    problems, built = await _build(request, project_id, parsed, None)
    if built is None:
        return _problems_response(out_format(request) or "text/plain", problems)
    return built


async def _readable_segment(request: web.Request, storage: Any, project_id: str,
                            path: str) -> tuple[str, ObjectRecord] | int:
    """A segment of a manifest being stored: the path to record and its record, or the
    status a GET of it by the caller would get. Swift's slo HEADs each segment with the
    caller's authority, so a segment the caller may not read is refused (401/403), not
    stored for a later read to fail on. A symlink is followed as that GET would follow
    it, and its target recorded: segments are read straight from the account's objects,
    so a link (whose own bytes are none) would read as 0 bytes, and a link into another
    account is refused (403), as segments of another account are."""
    cont, _, obj = path.lstrip("/").partition("/")
    try:  # the caller's authority first, as the proxy decides before looking (403, not 404)
        await authz.check_subrequest(request, project_id, cont, obj)
    except errors.Unauthorized:
        return 401
    except errors.Forbidden:
        return 403
    found = await _head_segment(storage, project_id, path)
    if isinstance(found, int):
        return found
    ckey, head = found
    if not symlink.is_link(head.sysmeta):
        return "/" + path.lstrip("/"), head
    target = await symlink.follow(request, project_id, ckey, obj)
    if isinstance(target, web.StreamResponse):
        return target.status
    if target is None:  # replaced since: no longer a link
        return 409
    tproject, tc, tobj, _ = target
    if tproject != project_id:
        return 403
    rec = await storage.meta.get_object(tc.key, tobj, time.time())
    return 404 if rec is None else ("/" + tc.name + "/" + tobj, rec)


async def _head_segment(storage: Any, project_id: str, path: str) -> tuple[CKey, ObjectRecord] | int:
    """The segment's container key and record, or the status its HEAD would get (404
    outside the account)."""
    cont, _, obj = path.lstrip("/").partition("/")
    c = await storage.lookup(project_id, cont)
    if c is None or c.project_id != project_id or not obj:
        return 404
    rec = await storage.meta.get_object(c.key, obj, time.time())
    return 404 if rec is None else (c.key, rec)


# -- DELETE ?multipart-manifest=delete ---------------------------------------------------


class _LoadError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def _manifest_segments(request: web.Request, project_id: str, path: str,
                             version_id: str | None) -> list[dict[str, Any]]:
    """slo.get_slo_segments: the segments of the manifest at ``path`` (``version_id``:
    that version of it), read as the caller's ``GET ?multipart-manifest=get`` would
    read it; _LoadError with the code and message Swift reports otherwise."""
    storage = request.app[STORAGE]
    cont, _, obj = path.lstrip("/").partition("/")
    try:
        await authz.check_subrequest(request, project_id, cont, obj)
    except errors.Unauthorized:
        raise _LoadError(401, "401 Unauthorized") from None
    except errors.Forbidden:
        raise _LoadError(500, "Unable to load SLO manifest or segment.") from None
    c = await storage.lookup(project_id, cont)
    if c is None or c.project_id != project_id or not obj:
        raise _LoadError(404, "SLO manifest not found")
    if version_id is not None:
        vid = versions.normalize(version_id)
        if vid is None or (vid != "null" and not versions.versioned(c.meta)):
            raise _LoadError(500, "Unable to load SLO manifest or segment.")  # the GET's 400
        head = await storage.meta.get_object(c.key, obj, time.time())
        if vid != "null":
            head = await storage.get_version(c.key, obj, vid)
        elif head is not None and head.version_id is not None:
            head = None
        if head is None or head.content_type == versions.DELETE_MARKER:
            raise _LoadError(404, "SLO manifest not found")
    else:
        found = await _head_segment(storage, project_id, path)
        if isinstance(found, int):
            raise _LoadError(404, "SLO manifest not found")
        head = found[1]
    if is_mpu(head):
        return []  # an S3 multipart object: deleted as one object, its parts with it
    if not is_slo(head):
        raise _LoadError(400, "Not an SLO manifest")
    try:
        items = json.loads(await M.load_body(storage, head))
        if not isinstance(items, list) or not all(isinstance(it, dict) for it in items):
            raise ValueError
        return items
    except (ValueError, errors.SegmentError):
        raise _LoadError(500, "Unable to load SLO manifest") from None


async def delete_manifest(request: web.Request, project_id: str, container: str, name: str) -> web.StreamResponse:
    """Delete every segment (nested manifests' too), then the manifest; 200 with a
    bulk-delete style body (the real status is in "Response Status"). As in Swift,
    every manifest is read and every object deleted with the caller's own authority
    (a segment the caller may not delete is reported in "Errors" and stays);
    ``?version-id=`` deletes that version of the manifest."""
    fmt = out_format(request)
    data: dict[str, Any] = {"Response Status": "200 OK", "Response Body": "", "Number Deleted": 0,
                            "Number Not Found": 0}
    failed: list[list[str]] = []
    if fmt is None:  # bulk: no acceptable format → "406 Not Acceptable" in a plain body
        data["Response Status"] = status_line(406)
        return web.Response(status=200, body=response_body("text/plain", data, failed, "delete"),
                            content_type="text/plain")
    # (path, error) in Swift's order: segments first, each manifest after its segments
    top: dict[str, Any] = {"name": f"/{container}/{name}", "sub_slo": True}
    if request.query.get("version-id"):
        top["version_id"] = request.query["version-id"]
    queue: list[dict[str, Any]] = [top]
    todo: list[dict[str, Any]] = []
    while queue:
        if len(queue) > MAX_MANIFEST_SEGMENTS * 10:
            data["Response Status"] = status_line(400)
            data["Response Body"] = "Too many buffered slo segments to delete."
            queue = []
            todo = []
            break
        seg = queue.pop(0)
        if "data" in seg:
            continue  # an inline segment: nothing stored to delete
        if seg.get("sub_slo"):
            try:
                queue.extend(await _manifest_segments(request, project_id, str(seg["name"]), seg.get("version_id")))
            except _LoadError as exc:
                seg["error"] = {"code": exc.code, "message": exc.message}
            seg["sub_slo"] = False
            queue.append(seg)
        elif isinstance(seg.get("name"), str):
            todo.append(seg)
    fail_type = 400
    for seg in todo:
        nm = seg["name"]
        if not nm.lstrip("/"):
            continue
        if seg.get("error"):
            if seg["error"]["code"] == 404:
                data["Number Not Found"] += 1
            else:
                failed.append([quote(nm), seg["error"]["message"]])
            continue
        cont, _, obj = nm.lstrip("/").partition("/")
        code = await delete_as_caller(request, project_id, cont, obj, seg.get("version_id"))
        if code // 100 == 2:
            data["Number Deleted"] += 1
        elif code == 404:
            data["Number Not Found"] += 1
        else:
            if code // 100 == 5:
                fail_type = 502
            failed.append([quote(nm), status_line(code)])
    if failed:
        data["Response Status"] = status_line(fail_type)
    elif not (data["Number Deleted"] or data["Number Not Found"]) and data["Response Status"] == "200 OK":
        data["Response Status"] = status_line(400)
        data["Response Body"] = "Invalid bulk delete."
    # bulk's delete iterator answers: an XML body opens with its declaration
    return web.Response(status=200, body=declaration(fmt) + response_body(fmt, data, failed, "delete"),
                        content_type=fmt)
