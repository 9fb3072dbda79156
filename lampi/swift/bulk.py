"""Swift's ``bulk`` middleware: ``?bulk-delete`` and ``?extract-archive``.

Both answer ``200 OK`` with a body in the format the ``Accept`` header picks
(text/plain, application/json, application/xml or text/xml) that carries the real
outcome: ``Response Status``, ``Response Body``, the counters and ``Errors`` — a list
of ``[quoted name, status]``. While a long request runs, a space is sent every
``YIELD_FREQUENCY`` seconds to keep the connection alive, as Swift does.

Extract-archive reads the request body through ``tarfile`` in stream mode
(``r|*``, which also un-gzips and un-bzip2s) on a worker thread; the bytes of each
member go straight into the object store through a small bounded queue, so the
archive is never spooled whole.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import zlib
from http import HTTPStatus
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote
from xml.sax.saxutils import escape

from aiohttp import web

from lampi.core import errors, versions
from lampi.core.models import CKey
from lampi.http import authz
from lampi.http.context import SETTINGS, STORAGE
from lampi.http.expect import send_continue
from lampi.swift import constraints as C
from lampi.swift import quotas, versioning
from lampi.swift.errors import REASONS, swift_error, to_response
from lampi.swift.http_util import request_delete_at
from lampi.swift.listing import _best_match  # the same swob grammar as listings

if TYPE_CHECKING:
    import tarfile

MAX_DELETES_PER_REQUEST = 10000
MAX_FAILED_DELETES = 1000
MAX_CONTAINERS_PER_EXTRACTION = 10000
MAX_FAILED_EXTRACTIONS = 1000
YIELD_FREQUENCY = 10.0
# a delete line longer than this is refused (Swift: max_path_length * 2)
MAX_PATH_LENGTH = C.MAX_CONTAINER_NAME_LENGTH + C.MAX_OBJECT_NAME_LENGTH + 2
XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
ARCHIVE_TYPES = {"tar": "", "tar.gz": "gz", "tar.bz2": "bz2"}
_CHUNK = 256 * 1024


def applies(request: web.Request) -> bool:
    q = request.query
    if "bulk-delete" in q and request.method in ("POST", "DELETE"):
        return True
    return "extract-archive" in q and request.method == "PUT"


def status_line(code: int) -> str:
    """swob's status text, e.g. "413 Request Entity Too Large"."""
    if code in REASONS:
        return f"{code} {REASONS[code][0]}"
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} Error"


def _default_body(code: int) -> str:
    title, text = REASONS.get(code, ("Error", ""))
    return f"<html><h1>{title}</h1><p>{text}</p></html>"


class BulkError(Exception):
    """Ends a bulk operation early: ``Response Status`` / ``Response Body``."""

    def __init__(self, code: int, body: str | None = None) -> None:
        super().__init__(body)
        self.code = code
        self.body = _default_body(code) if body is None else body


def out_format(request: web.Request) -> str | None:
    """swob's Accept.best_match over the bulk formats (text/plain when absent); None when
    nothing is acceptable or the header is invalid (bulk and SLO then answer 406)."""
    try:
        return _best_match(request.headers.get("Accept", ""))
    except ValueError:
        return None


def response_body(fmt: str | None, data: dict[str, Any], errs: list[list[str]], root: str) -> bytes:
    """bulk.get_response_body: text/plain "Key: value" lines then "Errors:", or json/xml
    (bulk delete and SLO PUT/DELETE answer with it too)."""
    if fmt == "application/json":
        return json.dumps({**data, "Errors": errs}).encode("ascii")
    if fmt and fmt.endswith("/xml"):
        out = [f"<{root}>\n"]
        for key in sorted(data):
            k = key.replace(" ", "_").lower()
            out.append(f"<{k}>{escape(str(data[key]))}</{k}>\n")
        out.append("<errors>\n")
        for name, status in errs:
            out.append(f"<object><name>{escape(name)}</name><status>{escape(status)}</status></object>\n")
        out.append(f"</errors>\n</{root}>\n")
        return "".join(out).encode("utf-8")
    lines = [f"{key}: {data[key]}\n" for key in sorted(data)]
    lines.append("Errors:\n")
    lines.extend(f"{name}, {status}\n" for name, status in errs)
    return "".join(lines).encode("utf-8")


def _result(fmt: str | None, data: dict[str, Any], errs: list[list[str]], root: str) -> bytes:
    """The final body of a bulk delete or extract (``_respond`` adds the XML declaration)."""
    return response_body(fmt, data, errs, root)


def declaration(fmt: str | None) -> bytes:
    """What bulk's ``handle_delete_iter`` / ``handle_extract_iter`` send first, before
    any keep-alive space: the XML declaration for an XML answer (SLO's
    ``?multipart-manifest=delete`` answers through the same iterator)."""
    return XML_DECLARATION if fmt and fmt.endswith("/xml") else b""


async def _respond(request: web.Request, fmt: str | None, work: Any) -> web.StreamResponse:
    """Send 200, keep-alive spaces while ``work`` runs, then its body — in Swift's
    order: the XML declaration first (the spaces after it keep the document valid),
    and ``\r\n\r\n`` before the result once a space was sent."""
    resp = web.StreamResponse(status=200)
    resp.content_type = fmt or "text/plain"
    resp.charset = "utf-8"
    task = asyncio.ensure_future(work)
    prepared = False
    try:
        while True:
            done, _ = await asyncio.wait([task], timeout=YIELD_FREQUENCY)
            if done:
                break
            if not prepared:
                await resp.prepare(request)
                await resp.write(declaration(fmt))
                prepared = True
            await resp.write(b" ")
    except BaseException:
        task.cancel()
        raise
    body = task.result()
    if prepared:
        body = b"\r\n\r\n" + body
    else:
        body = declaration(fmt) + body
        resp.content_length = len(body)
        await resp.prepare(request)
    await resp.write(body)
    await resp.write_eof()
    return resp


async def handle(request: web.Request, project_id: str, container: str | None, obj: str | None) -> web.StreamResponse:
    fmt = out_format(request)
    if "bulk-delete" in request.query:
        return await _respond(request, fmt, bulk_delete(request, project_id, fmt))
    kind = request.query.get("extract-archive", "").lower().strip(".")
    if kind not in ARCHIVE_TYPES:
        return swift_error(400, "Unsupported archive format")
    base = "/".join(p for p in (container, obj) if p).rstrip("/")
    return await _respond(request, fmt, extract_archive(request, project_id, base, fmt))


# -- bulk delete ---------------------------------------------------------------------------


async def _names_to_delete(request: web.Request) -> list[str]:
    """bulk.get_objs_to_delete: newline-separated, URL-encoded paths, read in bounded
    pieces; more than MAX_DELETES_PER_REQUEST → 413, an over-long line → 400."""
    if request.content_length is None and "chunked" not in request.headers.get("Transfer-Encoding", "").lower():
        raise BulkError(411)
    names: list[str] = []
    buf = b""
    await send_continue(request)

    def take(line: bytes) -> None:
        line = line.strip()
        if line:
            names.append(unquote(line.decode("utf-8", "surrogateescape"), errors="surrogateescape"))
        if len(names) > MAX_DELETES_PER_REQUEST:
            raise BulkError(413, f"Maximum Bulk Deletes: {MAX_DELETES_PER_REQUEST} per request")

    while True:
        data = await request.content.read(MAX_PATH_LENGTH)
        if not data:
            take(buf)
            break
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            take(line)
        if len(buf) > MAX_PATH_LENGTH * 2:
            raise BulkError(400, "Invalid File Name")
    return names


async def delete_as_caller(request: web.Request, project_id: str, container: str, name: str,
                           version_id: str | None = None) -> int:
    """One DELETE sub-request as Swift's bulk (and slo) middleware make it: with the
    caller's own authority (owner, account ACL, the container's write ACL, a temp
    URL's scope; a container only by its owners), with the versioning the container
    has (object_versioning's delete marker, versioned_writes' archive); ``version_id``
    deletes that version. The status the sub-request would answer (2xx, 401, 403,
    404, 409, ...); nothing is deleted unless it is 2xx."""
    storage = request.app[STORAGE]
    try:
        await authz.check_subrequest(request, project_id, container, name or None, read=False)
        c = await storage.container(project_id, container)  # 404 outside the account
        if not name:
            await storage.delete_container(project_id, container)
            return 204
        if version_id is not None:
            vid = versions.normalize(version_id)
            if vid is None or (vid != "null" and not versions.versioned(c.meta)):
                return 400
            if vid == "null":
                rec = await storage.meta.get_object(c.key, name, time.time())
                if rec is None or rec.version_id is not None:
                    return 404
                await storage.delete_object(c.key, name)
                return 204
            found, _ = await storage.delete_version(c.key, name, vid)
            return 204 if found else 404
        if versions.enabled(c.meta):
            existed, _ = await storage.delete_current(c.key, name)
            return 204 if existed else 404
        await versioning.delete_object(storage, project_id, c.key, name)
        return 204
    except errors.NotFound:
        return 404
    except (errors.ContainerNotEmpty, errors.Conflict):
        return 409
    except errors.DomainError as exc:
        return to_response(exc, "DELETE").status


async def bulk_delete(request: web.Request, project_id: str, fmt: str | None) -> bytes:
    data: dict[str, Any] = {"Response Status": status_line(200), "Response Body": "",
                            "Number Deleted": 0, "Number Not Found": 0}
    failed: list[list[str]] = []
    try:
        if fmt is None:
            raise BulkError(406)
        ctype = request.headers.get("Content-Type")
        if ctype and not ctype.startswith("text/plain"):
            raise BulkError(406)  # only newline-separated names are accepted
        names = await _names_to_delete(request)
        fail_type = 400
        for raw in names:
            if len(failed) >= MAX_FAILED_DELETES:
                raise BulkError(400, "Max delete failures exceeded")
            path = raw.lstrip("/")
            if not path:
                continue
            shown = quote(raw.encode("utf-8", "surrogateescape"))
            try:
                path.encode("utf-8")
                if "\x00" in path:
                    raise UnicodeError
            except UnicodeError:
                failed.append([shown, status_line(412)])
                continue
            container, _, name = path.partition("/")
            # each a DELETE sub-request with the caller's authority, as Swift's bulk makes it
            code = await delete_as_caller(request, project_id, container, name)
            if code // 100 == 2:
                data["Number Deleted"] += 1
            elif code == 404:
                data["Number Not Found"] += 1
            else:
                failed.append([shown, status_line(code)])
                if code == 409 and fail_type == 400:
                    fail_type = 409
                elif code // 100 == 5:
                    fail_type = 502
        if failed:
            data["Response Status"] = status_line(fail_type)
        elif not (data["Number Deleted"] or data["Number Not Found"]):
            data["Response Status"] = status_line(400)
            data["Response Body"] += "Invalid bulk delete."
    except BulkError as exc:
        data["Response Status"] = status_line(exc.code)
        data["Response Body"] = exc.body
    return _result(fmt, data, failed, "delete")


# -- extract archive --------------------------------------------------------------------------


class _Reader:
    """A blocking file object over the request body, for tarfile on a worker thread."""

    def __init__(self, request: web.Request, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self.loop = loop

    def read(self, n: int = -1) -> bytes:
        size = n if n and n > 0 else _CHUNK
        return asyncio.run_coroutine_threadsafe(self.request.content.read(size), self.loop).result()


_END = object()


async def _tar_events(request: web.Request, compression: str) -> AsyncIterator[Any]:
    """Run tarfile on a thread; yield ("member", TarInfo), (b"data"...), _END per member,
    and finally raise what tarfile raised. At most a few chunks are in flight."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=4)
    stop = threading.Event()

    def put(item: Any) -> None:
        if stop.is_set():
            raise asyncio.CancelledError()
        asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()

    def run() -> None:
        import tarfile  # here: only an extract-archive request needs it

        try:
            with tarfile.open(mode="r|" + (compression or "*"), fileobj=_Reader(request, loop)) as tar:
                for info in tar:
                    if not info.isfile():
                        continue
                    put(("member", info))
                    fh = tar.extractfile(info)
                    assert fh is not None
                    while True:
                        chunk = fh.read(_CHUNK)
                        if not chunk:
                            break
                        put(chunk)
                    put(_END)
            put(("done", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the event loop
            if not stop.is_set():
                try:
                    put(("error", exc))
                except BaseException:
                    pass

    await send_continue(request)
    thread = loop.run_in_executor(None, run)
    try:
        while True:
            item = await queue.get()
            if isinstance(item, tuple) and item[0] == "done":
                break
            if isinstance(item, tuple) and item[0] == "error":
                raise item[1]
            yield item
    finally:
        stop.set()
        while not thread.done():  # unblock a thread waiting on a full queue
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                await asyncio.sleep(0.01)
        await asyncio.gather(thread, return_exceptions=True)


async def extract_archive(request: web.Request, project_id: str, base: str, fmt: str | None) -> bytes:
    import tarfile  # imported on the first archive, not by every worker at start (its exceptions are caught here)

    max_size = request.app[SETTINGS].max_object_size
    data: dict[str, Any] = {"Response Status": status_line(201), "Response Body": "",
                            "Number Files Created": 0}
    failed: list[list[str]] = []
    compression = ARCHIVE_TYPES[request.query["extract-archive"].lower().strip(".")]
    try:
        if request.content_length is None and "chunked" not in request.headers.get("Transfer-Encoding", "").lower():
            raise BulkError(411)
        delete_at = request_delete_at(request)
        events = _tar_events(request, compression)
        try:
            await _extract(request, project_id, base, events, delete_at, max_size, data, failed)
        finally:
            await events.aclose()  # type: ignore[attr-defined]
        if failed:
            data["Response Status"] = status_line(400)
        elif not data["Number Files Created"]:
            data["Response Status"] = status_line(400)
            data["Response Body"] = "Invalid Tar File: No Valid Files"
    except BulkError as exc:
        data["Response Status"] = status_line(exc.code)
        data["Response Body"] = exc.body
    except errors.DomainError as exc:
        data["Response Status"] = status_line(400)
        data["Response Body"] = exc.message
    except (tarfile.TarError, zlib.error, EOFError, OSError) as exc:
        data["Response Status"] = status_line(400)
        data["Response Body"] = f"Invalid Tar File: {exc}"
    return _result(fmt, data, failed, "extract")


async def _extract(
    request: web.Request, project_id: str, base: str, events: AsyncIterator[Any], delete_at: int | None,
    max_size: int, data: dict[str, Any], failed: list[list[str]],
) -> None:
    storage = request.app[STORAGE]
    created: dict[str, CKey] = {}  # container name → key, once checked or made
    pending: Any = None
    async for ev in events:
        if ev is _END:
            continue
        if isinstance(ev, (bytes, bytearray)):
            continue  # data of a skipped member
        info: tarfile.TarInfo = ev[1]
        if len(failed) >= MAX_FAILED_EXTRACTIONS:
            raise BulkError(400, "More than 1000 failures")
        path = info.name
        if path.startswith("./"):
            path = path[2:]
        path = path.lstrip("/")
        if base:
            path = base + "/" + path
        if "/" not in path:
            continue  # a file at the top level: no container to put it in
        shown = quote(path.encode("utf-8", "surrogateescape")[:4096])
        container, _, name = path.partition("/")
        try:
            path.encode("utf-8")
            ok_utf8 = "\x00" not in path
        except UnicodeEncodeError:
            ok_utf8 = False
        if not ok_utf8 or not name or len(name.encode("utf-8", "surrogateescape")) > C.MAX_OBJECT_NAME_LENGTH \
                or len(container.encode("utf-8", "surrogateescape")) > C.MAX_CONTAINER_NAME_LENGTH:
            failed.append([shown, status_line(412)])
            continue
        if info.size > max_size:
            failed.append([shown, status_line(413)])
            continue
        if C.new_container_problem(container) is not None:  # "..": a container no client could reach
            failed.append([shown, status_line(400)])
            continue
        try:
            if container not in created:
                c = await storage.lookup(project_id, container)
                if c is None:
                    if len(created) >= MAX_CONTAINERS_PER_EXTRACTION:
                        raise BulkError(400, f"More than {MAX_CONTAINERS_PER_EXTRACTION} containers to "
                                             "create from tar.")
                    await quotas.check_container_create(request, project_id, container)
                    try:
                        await storage.create_container(project_id, container, {})
                    except errors.ContainerNameTaken:
                        raise errors.Forbidden() from None
                    c = await storage.container(project_id, container)
                elif c.project_id != project_id:
                    raise errors.Forbidden()
                created[container] = c.key
            ckey = created[container]
            await quotas.check_upload(request, project_id, ckey, info.size)
            await versioning.before_write(storage, project_id, ckey, name)
            pending = _member_body(events)
            await storage.put_object(
                ckey, name, pending, content_type=_guess(name), meta=_pax_meta(info), sysmeta={},
                delete_at=delete_at, expected_size=info.size, max_size=max_size,
            )
            data["Number Files Created"] += 1
        except BulkError:
            raise
        except errors.DomainError as exc:
            failed.append([shown, status_line(to_response(exc, "PUT").status)])
        finally:
            if pending is not None:
                await _drain(pending)  # the rest of a refused member's bytes
                pending = None


class _MemberBody:
    """The data events of one member, as the async body ``put_object`` reads."""

    def __init__(self, events: AsyncIterator[Any]) -> None:
        self.events = events
        self.finished = False

    def __aiter__(self) -> _MemberBody:
        return self

    async def __anext__(self) -> bytes:
        if self.finished:
            raise StopAsyncIteration
        ev = await self.events.__anext__()
        if ev is _END:
            self.finished = True
            raise StopAsyncIteration
        return bytes(ev)


def _member_body(events: AsyncIterator[Any]) -> _MemberBody:
    return _MemberBody(events)


async def _drain(body: _MemberBody) -> None:
    async for _ in body:
        pass


def _guess(name: str) -> str:
    import mimetypes

    return mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"


def _pax_meta(info: tarfile.TarInfo) -> dict[str, str]:
    """Swift keeps user metadata from PAX headers (SCHILY.xattr.user.meta.*,
    LIBARCHIVE.xattr.user.meta.*) as object metadata."""
    out: dict[str, str] = {}
    for key, value in (info.pax_headers or {}).items():
        for prefix in ("SCHILY.xattr.user.meta.", "LIBARCHIVE.xattr.user.meta."):
            if key.startswith(prefix) and key[len(prefix):]:
                out[key[len(prefix):].lower()] = value
    return out
