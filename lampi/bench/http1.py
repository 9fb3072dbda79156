"""A lean HTTP/1.1 keep-alive client connection for the small-object phases of
``lampi bench``.

Why not aiohttp's client here: on this 2-core machine the load generator shares the
CPU with the server it measures. aiohttp's client spent ~0.25 ms of CPU per small
request (its request and response objects, header multidicts, the connector's pool,
timers), about half of what lampi's server spends on a HEAD: the bench measured the
client as much as the servers, and compressed every ratio between a fast server and a
slow one towards 1. This connection writes a request as one buffer and reads the
answer with a small parser (status line, ``Content-Length``, ``Transfer-Encoding:
chunked``, ``Connection: close``): ~0.06 ms per request, as the raw receive loop of
large GETs (``load.raw_get``) already did for large bodies. Every server is measured
through it in the same way; plain ``http://`` only (``https://`` phases stay on
aiohttp).

Not a general client: no redirects, no proxies, no compression, no ``Expect:
100-continue``; a response that does not parse is an error (``ProtocolError``) and the
connection is dropped.
"""

from __future__ import annotations

import asyncio
from typing import Any

MAX_HEAD = 64 * 1024


class ProtocolError(Exception):
    """An answer this client cannot read as HTTP/1.1."""


class Response:
    __slots__ = ("body", "head", "status")

    def __init__(self, status: int, head: bytes, body: bytes) -> None:
        self.status, self.head, self.body = status, head, body

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        want = name.lower().encode("latin-1") + b":"
        for line in self.head.split(b"\r\n")[1:]:
            if line[: len(want)].lower() == want:
                return line[len(want):].strip().decode("latin-1")
        return None


class _Proto(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[Response] | None = None
        self.no_body = False  # the request was a HEAD
        self.lost = False
        self._head: bytes | None = None
        self._status = 0
        self._length: int | None = None  # None with _chunked False: read to the close
        self._chunked = False
        self._chunks = bytearray()  # a chunked body's chunks read so far (emptied as it ends;
        # an answer that fails closes the connection, this protocol with it)
        self.keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is not None:
            self._advance()

    def eof_received(self) -> bool | None:
        return None  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.keep_alive = False
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            if self._head is not None and self._length is None and not self._chunked:
                self._finish(bytes(self.buf))  # a body delimited by the connection's close
            else:
                waiter.set_exception(ConnectionResetError(f"connection closed by the server: {exc or 'EOF'}"))

    def _finish(self, body: bytes) -> None:
        waiter, self.waiter = self.waiter, None
        head, self._head = self._head or b"", None
        if waiter is not None and not waiter.done():
            waiter.set_result(Response(self._status, head, body))

    def _fail(self, why: str) -> None:
        waiter, self.waiter = self.waiter, None
        self.keep_alive = False
        if waiter is not None and not waiter.done():
            waiter.set_exception(ProtocolError(why))

    def _advance(self) -> None:
        buf = self.buf
        while self._head is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    self._fail("response head too long")
                return
            head = bytes(buf[:end])
            del buf[: end + 4]
            if not head.startswith(b"HTTP/1.") or len(head) < 12:
                self._fail(f"not an HTTP/1.x status line: {head[:40]!r}")
                return
            try:
                status = int(head[9:12])
            except ValueError:
                self._fail(f"bad status line: {head[:40]!r}")
                return
            if 100 <= status < 200:
                continue  # an interim answer: the real one follows
            self._status, self._head = status, head
            self._length, self._chunked = None, False
            lower = head.lower()
            if b"\r\nconnection: close" in lower or head.startswith(b"HTTP/1.0"):
                self.keep_alive = False
            if self.no_body or status in (204, 304):
                self._length = 0
            elif b"\r\ntransfer-encoding:" in lower and b"chunked" in lower.split(b"\r\ntransfer-encoding:", 1)[1]:
                self._chunked = True
            else:
                i = lower.find(b"\r\ncontent-length:")
                if i >= 0:
                    j = lower.find(b"\r\n", i + 2)
                    try:
                        self._length = int(lower[i + 17: j if j >= 0 else None])
                    except ValueError:
                        self._fail("bad Content-Length")
                        return
                else:
                    self.keep_alive = False  # the body ends at the close
        if self._chunked:
            self._advance_chunked()
        elif self._length is not None and len(buf) >= self._length:
            body = bytes(buf[: self._length])
            del buf[: self._length]
            self._finish(body)

    def _advance_chunked(self) -> None:
        """Consume the complete chunks in ``buf`` (each read once, however the body is
        split into segments), and finish at the last one's trailers."""
        buf = self.buf
        while True:
            eol = buf.find(b"\r\n")
            if eol < 0:
                if len(buf) > MAX_HEAD:
                    self._fail("chunk size line too long")
                return
            try:
                size = int(bytes(buf[:eol]).split(b";", 1)[0], 16)
                if size < 0:
                    raise ValueError(size)
            except ValueError:
                self._fail("bad chunk size")
                return
            if size == 0:
                end = buf.find(b"\r\n\r\n", eol)  # the trailers' end (none: the CRLF at eol)
                if end < 0:
                    if len(buf) > MAX_HEAD + eol:
                        self._fail("trailers too long")
                    return
                del buf[: end + 4]
                body, self._chunks = bytes(self._chunks), bytearray()
                self._finish(body)
                return
            if len(buf) < eol + 2 + size + 2:
                return
            self._chunks += buf[eol + 2: eol + 2 + size]
            del buf[: eol + 2 + size + 2]


class Connection:
    """One keep-alive connection to ``host:port``, one request at a time; made again
    after the server closed it or an answer did not parse."""

    def __init__(self, host: str, port: int, connect_timeout: float = 30, read_timeout: float = 600) -> None:
        self.host, self.port = host, port
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self._proto: _Proto | None = None

    async def _connect(self) -> _Proto:
        loop = asyncio.get_running_loop()
        _, proto = await asyncio.wait_for(loop.create_connection(_Proto, self.host, self.port),
                                          self.connect_timeout)
        return proto

    async def request(self, method: str, target: str, headers: dict[str, str], body: bytes = b"") -> Response:
        proto = self._proto
        if proto is None or proto.lost or not proto.keep_alive:
            self.close()
            proto = self._proto = await self._connect()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Response] = loop.create_future()
        proto.waiter, proto.no_body = waiter, method == "HEAD"
        lines = [f"{method} {target} HTTP/1.1\r\n"]
        lines += [f"{k}: {v}\r\n" for k, v in headers.items()]
        if body or method in ("PUT", "POST"):
            lines.append(f"Content-Length: {len(body)}\r\n")
        lines.append("\r\n")
        data = "".join(lines).encode("latin-1")
        assert proto.transport is not None
        proto.transport.write(data + body if body else data)
        if proto.buf:  # bytes already here (unlikely: one request at a time)
            proto._advance()
        timer = loop.call_later(self.read_timeout, _expire, waiter)
        try:
            return await waiter
        except BaseException:
            self.close()
            raise
        finally:
            timer.cancel()

    def close(self) -> None:
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None:
            proto.transport.close()


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(asyncio.TimeoutError("no answer in time"))
