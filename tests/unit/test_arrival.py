"""Fresh reads shared by the requests that arrived before them (lampi.store.meta.arrival),
through lampi's own protocol (lampi.gateway.guard) on a real socket: the heads that
arrive together are stamped alike and share one read; a request that arrives after a
read never uses it."""

from __future__ import annotations

import asyncio
import socket

from aiohttp import web

from lampi.gateway.guard import GuardedRunner, Limits
from lampi.store.meta import arrival


def _responses(sock: socket.socket, n: int) -> list[bytes]:
    """``n`` HTTP/1.1 responses (each with a Content-Length body) read off ``sock``."""
    buf, out = b"", []
    while len(out) < n:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = buf[:end].decode()
            length = int(next(line.split(":", 1)[1] for line in head.split("\r\n")
                              if line.lower().startswith("content-length:")))
            if len(buf) >= end + 4 + length:
                out.append(buf[end + 4:end + 4 + length])
                buf = buf[end + 4 + length:]
                continue
        chunk = sock.recv(65536)
        assert chunk, "connection closed"
        buf += chunk
    return out


def test_requests_that_arrive_together_share_a_read_later_ones_read_anew() -> None:
    latest = arrival.Latest()
    reads: list[int] = []

    async def handler(request: web.Request) -> web.Response:
        if not latest.fresh_for(arrival.stamp()):
            number = arrival.begin()
            reads.append(number)
            latest.record(number, f"read {len(reads)}")
        return web.Response(text=latest.value)

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", handler)
        runner = GuardedRunner(app, limits=Limits(60, 60, 60, 16), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        loop = asyncio.get_running_loop()
        try:
            with socket.create_connection(("127.0.0.1", port)) as sock:
                # eight pipelined heads in one write: parsed together, one read for all
                sock.sendall(b"".join(f"GET /{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for i in range(8)))
                first = await loop.run_in_executor(None, _responses, sock, 8)
                assert first == [b"read 1"] * 8
                assert len(reads) == 1
                # the next request on the same connection arrives after that read: its own
                sock.sendall(b"GET /again HTTP/1.1\r\nHost: x\r\n\r\n")
                assert await loop.run_in_executor(None, _responses, sock, 1) == [b"read 2"]
            with socket.create_connection(("127.0.0.1", port)) as sock:  # a new connection too
                sock.sendall(b"GET /new HTTP/1.1\r\nHost: x\r\n\r\n")
                assert await loop.run_in_executor(None, _responses, sock, 1) == [b"read 3"]
            assert len(reads) == 3
        finally:
            await runner.cleanup()

    asyncio.run(main())


def test_unstamped_requests_share_nothing() -> None:
    latest = arrival.Latest()
    latest.record(arrival.begin(), "v")
    assert not latest.fresh_for(None)  # no lampi protocol: no stamp, read anew
    stamp = arrival.now()
    assert not latest.fresh_for(stamp)  # the read began before the request arrived
    latest.record(arrival.begin(), "w")
    assert latest.fresh_for(stamp) and latest.value == "w"
    older = latest.number - 1
    latest.record(older, "x")  # an earlier-begun read finishing late does not replace a later one
    assert latest.value == "w"
