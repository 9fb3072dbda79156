"""The load generator: N concurrent requests, one or more processes; small requests over
plain HTTP through lean keep-alive connections (:mod:`lampi.bench.http1`), the rest
through aiohttp's client.

A phase is one kind of request over a range of object names. In one process it runs
on the caller's event loop; with ``procs > 1`` the name range is split across client
processes (spawned, each with its own loop and connection pool) that first open
their sessions, then start together on a shared event, so process start-up is not
timed. Each process reports its own start and end on the system-wide monotonic clock;
the phase lasts from the earliest start to the latest end.

Swift requests carry ``X-Auth-Token``; S3 requests (``spec.api == "s3"``) are signed
with SigV4 per request (:mod:`lampi.bench.s3sign`), large bodies as
``UNSIGNED-PAYLOAD`` so they stream. An S3 full listing is ListObjectsV2 pages of at
most 1,000 keys (S3's cap) followed by continuation tokens, as boto3's paginator does.

Every request's latency is recorded (seconds, from sending to the last body byte);
any unexpected status, short body or exception is an error, with the first few kept
as samples. Large objects are streamed from one generated 1 MiB block and read in
chunks: nothing object-sized is held in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import json
import multiprocessing
import os
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp

from lampi.bench import http1
from lampi.bench.s3sign import EMPTY_SHA256, UNSIGNED, Signer
from lampi.bench.util import run_loop

BLOCK = 1 << 20
MAX_ERROR_SAMPLES = 5

EXPECT = {"put": (201,), "get": (200,), "head": (200,), "delete": (204,), "list": (200, 204),
          "put_large": (201,), "get_large": (200,)}
EXPECT_S3 = dict(EXPECT, put=(200,), list=(200,), put_large=(200,))
S3_MAX_KEYS = 1000
_S3_KEY = re.compile(rb"<Key>")
_S3_TOKEN = re.compile(rb"<NextContinuationToken>([^<]*)</NextContinuationToken>")


@dataclass
class PhaseSpec:
    """What one phase does; picklable, so it can be sent to client processes."""

    kind: str  # put | get | head | delete | list | put_large | get_large
    storage_url: str
    token: str
    container: str
    start: int = 0  # object index range [start, stop)
    stop: int = 0
    size: int = 0
    concurrency: int = 1
    prefix: str = "o"
    list_page: int = 10000
    list_expect: int = 0
    list_repeats: int = 1
    api: str = "swift"  # or "s3": storage_url is then the S3 endpoint, container the bucket
    access: str = ""
    secret: str = ""
    region: str = "us-east-1"
    mirrors: tuple[str, ...] = ()  # the same account through other gateways (see ``by_gateway``)

    def name(self, i: int) -> str:
        return f"{self.prefix}{i:07d}"

    def url(self, name: str | None = None) -> str:
        base = f"{self.storage_url}/{urllib.parse.quote(self.container)}"
        return f"{base}/{urllib.parse.quote(name)}" if name is not None else base

    @property
    def count(self) -> int:
        return self.list_repeats if self.kind == "list" else self.stop - self.start


@dataclass
class ChunkResult:
    ops: int = 0
    errors: int = 0
    bytes: int = 0
    t0: float = 0.0
    t1: float = 0.0
    latencies: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)

    def merge(self, other: ChunkResult) -> ChunkResult:
        t0 = min(x for x in (self.t0, other.t0) if x) if (self.t0 or other.t0) else 0.0
        return ChunkResult(
            self.ops + other.ops, self.errors + other.errors, self.bytes + other.bytes, t0,
            max(self.t1, other.t1), self.latencies + other.latencies,
            (self.error_samples + other.error_samples)[:MAX_ERROR_SAMPLES],
        )


class Counter:
    """Progress counter (ops, or bytes for large objects); a shared Value in client processes."""

    def __init__(self) -> None:
        self.value = 0


def session(concurrency: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=max(1, concurrency), limit_per_host=0, ttl_dns_cache=None),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=600),
        auto_decompress=False,
    )


class _CountingProtocol(asyncio.BufferedProtocol):
    """Receives an HTTP/1.1 response into one reused 1 MiB buffer (``recv_into``): the
    body is counted, never copied or kept. Only the head (status line, headers) is kept."""

    def __init__(self, counter: Any) -> None:
        self.buf = bytearray(BLOCK)
        self.head = b""
        self.header_done = False
        self.length: int | None = None
        self.status = 0
        self.body = 0
        self.counter = counter
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.buf

    def buffer_updated(self, nbytes: int) -> None:
        if not self.header_done:
            self.head += bytes(self.buf[:nbytes])
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = self.head[:end].decode("latin-1").split("\r\n")
            self.status = int(lines[0].split()[1])
            for line in lines[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-length":
                    self.length = int(v.strip())
            self.header_done = True
            nbytes = len(self.head) - end - 4
            self.head = self.head[: end + 4 + min(nbytes, 300)]  # a little of an error body
        self.body += nbytes
        self.counter.value += nbytes
        if self.length is not None and self.body >= self.length and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def raw_get(url: str, headers: dict[str, str], counter: Any) -> tuple[int, int, bytes]:
    """GET over plain HTTP with a receive loop as lean as the ``--limits`` loopback test's
    (``recv_into`` a reused 1 MiB buffer), so a large GET measures the server, not the
    client's per-chunk allocations (aiohttp's reader: ~1.9 GB/s here, whatever the server).
    Returns (status, body bytes received, response head)."""
    u = urllib.parse.urlsplit(url)
    loop = asyncio.get_running_loop()
    proto = _CountingProtocol(counter)
    transport, _ = await loop.create_connection(lambda: proto, u.hostname, u.port or 80)
    try:
        target = u.path + (f"?{u.query}" if u.query else "")
        h = {"Host": u.netloc, "Connection": "close", "Accept-Encoding": "identity", **headers}
        transport.write((f"GET {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items())
                         + "\r\n").encode("latin-1"))
        await proto.done
    finally:
        transport.close()
    return proto.status, proto.body, proto.head


async def run_chunk(spec: PhaseSpec, counter: Any, barrier: Callable[[], Awaitable[None]] | None = None,
                    sess: aiohttp.ClientSession | None = None) -> ChunkResult:
    """Run ``spec`` with ``spec.concurrency`` requests in flight on this event loop."""
    res = ChunkResult()
    own = sess is None
    sess = sess or session(spec.concurrency)
    block = os.urandom(BLOCK)
    small_body = (block * (spec.size // BLOCK + 1))[: spec.size] if spec.kind == "put" else b""
    signer = Signer(spec.access, spec.secret, spec.region) if spec.api == "s3" else None
    expect = (EXPECT_S3 if signer else EXPECT)[spec.kind]
    small_sha = hashlib.sha256(small_body).hexdigest() if signer else ""

    def auth(method: str, url: str, query: dict[str, str] | None = None,
             payload: str = EMPTY_SHA256) -> dict[str, str]:
        if signer is None:
            return {"X-Auth-Token": spec.token}
        return signer.headers(method, url, query, payload)

    def error(what: str) -> None:
        res.errors += 1
        if len(res.error_samples) < MAX_ERROR_SAMPLES:
            res.error_samples.append(what)

    async def check(resp: aiohttp.ClientResponse, label: str) -> bool:
        if resp.status in expect:
            return True
        body = (await resp.content.read(300)).decode("utf-8", "replace").strip()
        error(f"{label}: {resp.status} {body[:200]}")
        return False

    async def full_listing_s3() -> int:
        """One full ListObjectsV2 listing, following continuation tokens."""
        token, total = "", 0
        while True:
            q = {"list-type": "2", "max-keys": str(min(spec.list_page, S3_MAX_KEYS))}
            if token:
                q["continuation-token"] = token
            async with sess.get(spec.url(), params=q, headers=auth("GET", spec.url(), q)) as resp:
                if not await check(resp, f"ListObjectsV2 {spec.container}"):
                    return -1
                body = await resp.read()
            total += len(_S3_KEY.findall(body))
            m = _S3_TOKEN.search(body)
            if b"<IsTruncated>true</IsTruncated>" not in body or not m:
                return total
            token = html.unescape(m.group(1).decode())

    async def full_listing() -> int:
        """One full listing, paginated as python-swiftclient does: until an empty page."""
        if signer is not None:
            return await full_listing_s3()
        hdrs = auth("GET", spec.url())
        marker, total = "", 0
        while True:
            q = {"format": "json", "limit": str(spec.list_page)}
            if marker:
                q["marker"] = marker
            async with sess.get(spec.url(), params=q, headers=hdrs) as resp:
                if not await check(resp, f"GET {spec.container}?marker={marker}"):
                    return -1
                page = json.loads(await resp.read() or b"[]") if resp.status == 200 else []
            if not page:
                return total
            total += len(page)
            marker = page[-1]["name"]

    async def put_large(name: str) -> None:
        async def gen():  # noqa: ANN202
            left = spec.size
            view = memoryview(block)
            while left > 0:
                n = min(left, BLOCK)
                yield view[:n]
                left -= n
                counter.value += n

        h = dict(auth("PUT", spec.url(name), payload=UNSIGNED),
                 **{"Content-Length": str(spec.size), "Content-Type": "application/octet-stream"})
        async with sess.put(spec.url(name), data=gen(), headers=h) as resp:
            if await check(resp, f"PUT {name}"):
                res.bytes += spec.size

    async def get_large(name: str) -> None:
        if urllib.parse.urlsplit(spec.url(name)).scheme == "http":
            status, n, head = await raw_get(spec.url(name), auth("GET", spec.url(name)), counter)
            if status not in expect:
                error(f"GET {name}: {status} {head[:200]!r}")
                return
        else:
            async with sess.get(spec.url(name), headers=auth("GET", spec.url(name))) as resp:
                if not await check(resp, f"GET {name}"):
                    return
                n = 0
                while chunk := await resp.content.readany():
                    n += len(chunk)
                    counter.value += len(chunk)
        res.bytes += n
        if n != spec.size:
            error(f"GET {name}: got {n} bytes, expected {spec.size}")

    def small_answered(name: str, body_len: int, content_length: str | None) -> None:
        """A small request answered with an expected status (either client): its bytes
        counted, a GET's body and a HEAD's Content-Length checked against the size."""
        if spec.kind == "put":
            res.bytes += spec.size
        elif spec.kind == "get":
            res.bytes += body_len
            if body_len != spec.size:
                error(f"GET {name}: got {body_len} bytes, expected {spec.size}")
        elif spec.kind == "head":
            if content_length is None or not content_length.isdigit() or int(content_length) != spec.size:
                error(f"HEAD {name}: Content-Length {content_length}, expected {spec.size}")

    async def one(i: int) -> None:
        name = spec.name(i)
        k = spec.kind
        if k == "put":
            h = auth("PUT", spec.url(name), payload=small_sha)
            async with sess.put(spec.url(name), data=small_body,
                                headers=dict(h, **{"Content-Type": "application/octet-stream"})) as resp:
                if await check(resp, f"PUT {name}"):
                    small_answered(name, 0, None)
        elif k == "get":
            async with sess.get(spec.url(name), headers=auth("GET", spec.url(name))) as resp:
                if await check(resp, f"GET {name}"):
                    small_answered(name, len(await resp.read()), None)
        elif k == "head":
            async with sess.head(spec.url(name), headers=auth("HEAD", spec.url(name))) as resp:
                if await check(resp, f"HEAD {name}"):
                    small_answered(name, 0, resp.headers.get("Content-Length"))
        elif k == "delete":
            async with sess.delete(spec.url(name), headers=auth("DELETE", spec.url(name))) as resp:
                await check(resp, f"DELETE {name}")
        elif k == "list":
            n = await full_listing()
            if n >= 0 and n != spec.list_expect:
                error(f"listing {spec.container}: {n} objects, expected {spec.list_expect}")
        elif k == "put_large":
            await put_large(name)
        elif k == "get_large":
            await get_large(name)
        else:  # pragma: no cover
            raise ValueError(k)

    # small requests over plain HTTP: through lean keep-alive connections (lampi.bench.http1),
    # one per worker, so the client's own CPU per request stays small beside the server's
    base = urllib.parse.urlsplit(spec.storage_url)
    lean = spec.kind in SMALL_KINDS and base.scheme == "http" and base.hostname is not None
    method = {"put": "PUT", "get": "GET", "head": "HEAD", "delete": "DELETE"}.get(spec.kind, "")
    payload = small_sha if spec.kind == "put" else EMPTY_SHA256
    ctype = {"Content-Type": "application/octet-stream"} if spec.kind == "put" else {}
    prefix = f"{base.path}/{urllib.parse.quote(spec.container)}/"

    async def lean_one(i: int, conn: http1.Connection) -> None:
        name = spec.name(i)
        quoted = urllib.parse.quote(name)
        if signer is None:
            h = {"Host": base.netloc, "X-Auth-Token": spec.token, **ctype}
        else:
            h = {**signer.headers(method, spec.url(name), None, payload), **ctype}
        r = await conn.request(method, prefix + quoted, h, small_body)
        if r.status not in expect:
            error(f"{method} {name}: {r.status} {r.body[:300].decode('utf-8', 'replace').strip()[:200]}")
            return
        small_answered(name, len(r.body), r.header("Content-Length") if spec.kind == "head" else None)

    work = iter(range(spec.list_repeats) if spec.kind == "list" else range(spec.start, spec.stop))
    large = spec.kind in ("put_large", "get_large")

    async def worker() -> None:
        conn = http1.Connection(base.hostname, base.port or 80) if lean and base.hostname else None
        try:
            for i in work:  # a shared iterator: each index is taken once
                t = time.perf_counter()
                try:
                    if conn is not None:
                        await lean_one(i, conn)
                    else:
                        await one(i)
                except (aiohttp.ClientError, http1.ProtocolError, asyncio.TimeoutError, OSError, ValueError) as exc:
                    error(f"{spec.kind} {i}: {type(exc).__name__}: {exc}")
                res.latencies.append(time.perf_counter() - t)
                res.ops += 1
                if not large:
                    counter.value += 1
        finally:
            if conn is not None:
                conn.close()

    try:
        if barrier is not None:
            await barrier()
        res.t0 = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(max(1, min(spec.concurrency, spec.count)))))
        res.t1 = time.monotonic()
    finally:
        if own:
            await sess.close()
    return res


def _proc_main(spec: PhaseSpec, counter: Any, ready: Any, go: Any, results: Any) -> None:
    async def main() -> ChunkResult:
        async def barrier() -> None:
            ready.release()
            await asyncio.get_running_loop().run_in_executor(None, go.wait)

        return await run_chunk(spec, counter, barrier)

    try:
        results.put(run_loop(main()))
    except BaseException as exc:  # report, so the parent does not wait forever
        ready.release()  # in case it failed before the barrier (an extra release is harmless)
        results.put(ChunkResult(errors=1, error_samples=[f"client process: {type(exc).__name__}: {exc}"]))


def split(spec: PhaseSpec, procs: int) -> list[PhaseSpec]:
    n = spec.stop - spec.start
    procs = max(1, min(procs, n, spec.concurrency))
    out, pos = [], spec.start
    for p in range(procs):
        share = n // procs + (1 if p < n % procs else 0)
        conc = spec.concurrency // procs + (1 if p < spec.concurrency % procs else 0)
        out.append(replace(spec, start=pos, stop=pos + share, concurrency=conc))
        pos += share
    return out


SMALL_KINDS = ("put", "get", "head", "delete")


def by_gateway(spec: PhaseSpec) -> list[PhaseSpec]:
    """A small-object phase on several gateways (``spec.mirrors``): the objects and the
    connections shared out among them, each part on one gateway. Reads, HEADs and deletes
    of a part go to the gateway after the one its objects were written through, so every
    object is read through another gateway than the one that stored it. Listings and large
    objects go through the first gateway (a listing is one request at a time)."""
    if not spec.mirrors or spec.kind not in SMALL_KINDS:
        return [replace(spec, mirrors=())]
    urls = (spec.storage_url, *spec.mirrors)
    n = len(urls)
    parts = split(replace(spec, mirrors=()), n)
    shift = 0 if spec.kind == "put" else 1
    return [replace(p, storage_url=urls[(j + shift) % n]) for j, p in enumerate(parts)]


async def run_phase(spec: PhaseSpec, procs: int = 1,
                    on_progress: Callable[[int], None] | None = None) -> ChunkResult:
    """Run a phase in this process (``procs == 1``, or lists and large objects) or across
    client processes; on several gateways (``spec.mirrors``), one part per gateway at once."""
    if spec.mirrors:
        parts = by_gateway(spec)
        done = [0] * len(parts)

        def progress_of(j: int) -> Callable[[int], None]:
            def report(n: int) -> None:
                done[j] = n
                if on_progress:
                    on_progress(sum(done))
            return report

        out = ChunkResult()
        for r in await asyncio.gather(*(run_phase(p, max(1, procs // len(parts)), progress_of(j))
                                        for j, p in enumerate(parts))):
            out = out.merge(r)
        return out
    loop = asyncio.get_running_loop()
    parts = split(spec, procs) if spec.kind in ("put", "get", "head", "delete") and procs > 1 else [spec]

    async def poll(counters: list[Any]) -> None:
        while True:
            if on_progress:
                on_progress(sum(c.value for c in counters))
            await asyncio.sleep(0.1)

    if len(parts) == 1:
        counter = Counter()
        poller = asyncio.ensure_future(poll([counter]))
        try:
            res = await run_chunk(spec, counter)
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        if on_progress:
            on_progress(counter.value)
        return res

    ctx = multiprocessing.get_context("spawn")
    counters = [ctx.Value("q", 0, lock=False) for _ in parts]
    ready, go, results = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    workers = [ctx.Process(target=_proc_main, args=(p, c, ready, go, results), daemon=True)
               for p, c in zip(parts, counters)]
    for w in workers:
        w.start()
    poller = asyncio.ensure_future(poll(counters))
    try:
        for _ in workers:  # every process has its session open
            if not await loop.run_in_executor(None, ready.acquire, True, 120):
                raise RuntimeError("a client process did not start")
        go.set()
        merged = ChunkResult()
        for _ in workers:
            merged = merged.merge(await loop.run_in_executor(None, results.get))
    finally:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
        for w in workers:
            w.join(5)
            if w.is_alive():
                w.kill()
    if on_progress:
        on_progress(sum(c.value for c in counters))
    return merged
