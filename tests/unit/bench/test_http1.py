"""The bench's lean HTTP/1.1 connection (lampi.bench.http1) against scripted servers:
each test's server answers with fixed bytes, cut into small pieces, so the parser meets
heads and bodies split anywhere."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from lampi.bench import http1


async def scripted(answers: list[bytes], close_after: bool = False, piece: int = 3
                   ) -> tuple[asyncio.AbstractServer, int, list[bytes]]:
    """A server that answers the n-th request on a connection with ``answers[n]``,
    written ``piece`` bytes at a time; it records every request's head."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for answer in answers:
                head = await reader.readuntil(b"\r\n\r\n")
                seen.append(head)
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                for i in range(0, len(answer), piece):
                    writer.write(answer[i:i + piece])
                    await writer.drain()
                    await asyncio.sleep(0)
            if close_after:
                writer.close()
                return
            await reader.read()  # until the client closes
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], seen


async def run(answers: list[bytes], requests: list[tuple[str, bytes]], close_after: bool = False
              ) -> tuple[list[http1.Response | Exception], list[bytes]]:
    server, port, seen = await scripted(answers, close_after)
    conn = http1.Connection("127.0.0.1", port, read_timeout=10)
    out: list[http1.Response | Exception] = []
    try:
        for method, body in requests:
            try:
                out.append(await conn.request(method, "/v1/AUTH_x/c/o", {"Host": f"127.0.0.1:{port}"}, body))
            except Exception as exc:  # noqa: BLE001 - the test looks at it
                out.append(exc)
    finally:
        conn.close()
        server.close()
        await server.wait_closed()
    return out, seen


async def test_keep_alive_answers_with_content_length_and_head() -> None:
    a = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Thing: y\r\n\r\nhello"
    h = b"HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n"  # a HEAD: no body follows
    d = b"HTTP/1.1 204 No Content\r\n\r\n"
    out, seen = await run([a, h, d], [("GET", b""), ("HEAD", b""), ("DELETE", b"")])
    assert [(r.status, r.body) for r in out] == [(200, b"hello"), (200, b""), (204, b"")]  # type: ignore[union-attr]
    assert out[0].header("x-thing") == "y" and out[1].header("Content-Length") == "4096"  # type: ignore[union-attr]
    assert len(seen) == 3  # one connection carried all three
    assert seen[1].startswith(b"HEAD /v1/AUTH_x/c/o HTTP/1.1\r\n")


async def test_put_sends_its_body_with_content_length() -> None:
    out, seen = await run([b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"], [("PUT", b"x" * 4096)])
    assert out[0].status == 201  # type: ignore[union-attr]
    assert b"\r\nContent-Length: 4096\r\n" in seen[0]


async def test_chunked_body_with_extensions_and_trailers() -> None:
    a = (b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
    b = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    out, _ = await run([a, b], [("GET", b""), ("GET", b"")])
    assert [(r.status, r.body) for r in out] == [(404, b"hello world"), (200, b"abc")]  # type: ignore[union-attr]


async def test_chunked_body_of_many_chunks_arriving_a_few_bytes_at_a_time() -> None:
    """Each chunk is taken out of the buffer once complete (the reader does not parse the
    body from its first chunk again at every segment): 600 chunks, 3 bytes a segment."""
    chunks = [f"{i:05d}".encode() * (1 + i % 3) for i in range(600)]
    a = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
         + b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n")
    b = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    out, _ = await run([a, b], [("GET", b""), ("GET", b"")])
    assert [(r.status, r.body) for r in out] == [(200, b"".join(chunks)), (200, b"ok")]  # type: ignore[union-attr]


async def test_interim_100_is_skipped() -> None:
    a = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
    out, _ = await run([a], [("PUT", b"abc")])
    assert (out[0].status, out[0].body) == (201, b"ok")  # type: ignore[union-attr]


async def test_connection_close_makes_a_new_connection() -> None:
    a = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    out, seen = await run([a], [("GET", b""), ("GET", b"")], close_after=True)
    assert [(r.status, r.body) for r in out] == [(200, b"ok"), (200, b"ok")]  # type: ignore[union-attr]
    assert len(seen) == 2


async def test_body_to_the_close() -> None:
    a = b"HTTP/1.0 200 OK\r\n\r\nuntil the end"
    out, _ = await run([a], [("GET", b"")], close_after=True)
    assert (out[0].status, out[0].body) == (200, b"until the end")  # type: ignore[union-attr]


@pytest.mark.parametrize("answer, kind", [
    (b"SSH-2.0-OpenSSH\r\n\r\n", http1.ProtocolError),
    (b"HTTP/1.1 abc OK\r\n\r\n", http1.ProtocolError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", http1.ProtocolError),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", http1.ProtocolError),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nabcde\r\n", http1.ProtocolError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", ConnectionResetError),
])
async def test_bad_answers_are_errors_not_hangs(answer: bytes, kind: Callable[..., Exception]) -> None:
    out, _ = await asyncio.wait_for(run([answer], [("GET", b"")], close_after=True), 20)
    assert isinstance(out[0], kind), out[0]


async def test_no_answer_times_out() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    conn = http1.Connection("127.0.0.1", server.sockets[0].getsockname()[1], read_timeout=0.2)
    try:
        with pytest.raises(asyncio.TimeoutError):
            await conn.request("GET", "/", {"Host": "x"})
    finally:
        conn.close()
        server.close()
        await server.wait_closed()
