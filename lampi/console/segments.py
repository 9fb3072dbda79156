"""Uploads in segments, resumable: a file larger than ``console_segment_size`` goes as a
Swift Static Large Object, as ``swift upload --segment-size`` sends it.

Its segments are objects of the bucket's segments container ``<bucket>_segments``
(Allas's convention, made when missing), named as python-swiftclient names them:
``<object>/slo/<mtime>/<size>/<segment size>/<index, 8 digits>``. The name depends on
the file only (name, size, last-modified time), so an upload cut short — a dropped
connection, a closed tab, a server restart — resumes where it stopped: the script asks
which segments are there already (``/bucket/upload-plan``), sends the others one by one
(``/bucket/upload-segment``, each a Swift PUT with the user's token, streamed) and keeps
which are done; ``/bucket/upload-complete`` then puts the manifest (``PUT
?multipart-manifest=put`` with each segment's ETag and size from the listing), which
Swift checks. A segment cut short is not stored (durable before acknowledged), so it
is sent again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from lampi.console import sharing
from lampi.console import views as V
from lampi.console.upstream import UpstreamError

MAX_SEGMENTS = 1000  # Swift's max_manifest_segments (lampi.swift.large_objects)
MAX_FILE = MAX_SEGMENTS * 5 * 1024**3


@dataclass(frozen=True)
class Plan:
    name: str
    size: int
    mtime: str
    segment_size: int

    @property
    def count(self) -> int:
        return -(-self.size // self.segment_size)

    @property
    def prefix(self) -> str:
        return f"{self.name}/slo/{self.mtime}/{self.size}/{self.segment_size}/"

    def segment(self, index: int) -> str:
        return f"{self.prefix}{index:08d}"

    def length(self, index: int) -> int:
        return min(self.segment_size, self.size - index * self.segment_size)


def plan_of(threshold: int, name: str, size: int, mtime: str) -> Plan | None:
    """The segments of a file (None: it goes whole). Segments of ``threshold`` bytes,
    larger when that would make more than MAX_SEGMENTS."""
    if size <= threshold:
        return None
    return Plan(name, size, mtime, max(threshold, -(-size // MAX_SEGMENTS)))


class BadRequest(Exception):
    pass


def _plan(request: web.Request, sess: V.Sess) -> tuple[str, str, Plan | None]:
    bucket, owner = V.target(request, sess)
    q = request.query
    name, size, mtime = q.get("name", ""), q.get("size", ""), q.get("mtime", "")
    if not name:
        raise BadRequest("no object name")
    if not size.isdigit() or len(size) > 16 or int(size) > MAX_FILE:
        raise BadRequest("size: a whole number of bytes")
    if not mtime.isdigit() or len(mtime) > 16:
        raise BadRequest("mtime: the file's last-modified time, in milliseconds")
    return bucket, owner, plan_of(request.app[V.CONF].console_segment_size, name, int(size), mtime)


def _json_error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": status, "message": message, **extra}, status=status)


async def _done(request: web.Request, sess: V.Sess, owner: str, bucket: str, plan: Plan) -> dict[int, dict[str, Any]]:
    """The segments of ``plan`` stored whole already: {index: listing row}."""
    up = request.app[V.UPSTREAM]
    try:
        rows = await up.list_container(sess.token, owner, sharing.segments_of(bucket), prefix=plan.prefix,
                                       limit=MAX_SEGMENTS, delimiter=None)
    except UpstreamError as exc:
        if exc.status == 404:  # no segments container yet
            return {}
        raise
    done = {}
    for row in rows:
        tail = row.get("name", "")[len(plan.prefix):]
        if len(tail) == 8 and tail.isdigit() and int(tail) < plan.count and row.get("bytes") == plan.length(int(tail)):
            done[int(tail)] = row
    return done


@V.page()
async def upload_plan(request: web.Request, sess: V.Sess) -> web.StreamResponse:
    """How a file goes: whole, or in segments, with those already stored."""
    try:
        bucket, owner, plan = _plan(request, sess)
    except BadRequest as exc:
        return _json_error(400, str(exc))
    if plan is None:
        return web.json_response({"segmented": False})
    try:
        done = await _done(request, sess, owner, bucket, plan)
    except UpstreamError as exc:
        return _json_error(exc.status if 400 <= exc.status < 600 else 502, "listing the segments failed")
    return web.json_response({"segmented": True, "segment_size": plan.segment_size, "count": plan.count,
                              "done": sorted(done)})


@V.page()
async def upload_segment(request: web.Request, sess: V.Sess) -> web.StreamResponse:
    """One segment, the raw request body (streamed to a Swift PUT)."""
    V.check_csrf_header(request, sess)
    try:
        bucket, owner, plan = _plan(request, sess)
    except BadRequest as exc:
        return _json_error(400, str(exc))
    index = request.query.get("index", "")
    if plan is None:
        return _json_error(400, "the file is not uploaded in segments")
    if not index.isdigit() or int(index) >= plan.count:
        return _json_error(400, f"index: 0 to {plan.count - 1}")
    i = int(index)
    if request.content_length != plan.length(i):
        return _json_error(400, f"segment {i} is {plan.length(i)} bytes")
    up = request.app[V.UPSTREAM]
    container = sharing.segments_of(bucket)
    try:
        try:
            await up.head_container(sess.token, owner, container)
        except UpstreamError as exc:
            if exc.status != 404:
                raise
            # the first segment: made as swift upload makes it, readable by whoever may read
            # the bucket (public, shared), as a-access and a-publish keep it
            read = (await up.head_container(sess.token, owner, bucket)).get("X-Container-Read", "")
            await up.create_container(sess.token, owner, container)
            if read:
                await up.post_container(sess.token, owner, container, {"X-Container-Read": read})
        await up.put_object(sess.token, owner, container, plan.segment(i), V.request_body(request), plan.length(i),
                            "application/octet-stream")
    except UpstreamError as exc:
        return _json_error(exc.status if 400 <= exc.status < 600 else 502, "the segment was refused")
    return web.json_response({"ok": True, "index": i}, status=201)


@V.page()
async def upload_complete(request: web.Request, sess: V.Sess) -> web.StreamResponse:
    """The manifest, once every segment is stored (409 naming the missing ones)."""
    V.check_csrf_header(request, sess)
    try:
        bucket, owner, plan = _plan(request, sess)
    except BadRequest as exc:
        return _json_error(400, str(exc))
    if plan is None:
        return _json_error(400, "the file is not uploaded in segments")
    ctype = request.headers.get("X-Object-Content-Type") or "application/octet-stream"
    up = request.app[V.UPSTREAM]
    try:
        done = await _done(request, sess, owner, bucket, plan)
        missing = [i for i in range(plan.count) if i not in done]
        if missing:
            return _json_error(409, "segments are missing", missing=missing)
        container = sharing.segments_of(bucket)
        manifest = [{"path": f"/{container}/{plan.segment(i)}", "etag": done[i]["hash"],
                     "size_bytes": done[i]["bytes"]} for i in range(plan.count)]
        await up.call("PUT", up.account_path(owner, bucket, plan.name), sess.token,
                      params={"multipart-manifest": "put"}, data=json.dumps(manifest).encode(),
                      headers={"Content-Type": ctype})
    except UpstreamError as exc:
        return _json_error(exc.status if 400 <= exc.status < 600 else 502, "the manifest was refused")
    return web.json_response({"ok": True, "name": plan.name, "segments": plan.count}, status=201)


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/bucket/upload-plan", upload_plan)
    r.add_post("/bucket/upload-segment", upload_segment)
    r.add_post("/bucket/upload-complete", upload_complete)
