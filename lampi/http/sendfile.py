"""Zero-copy file responses on any event loop, uvloop included.

asyncio's default loop has ``loop.sendfile``; uvloop (which lampi's workers use when it
is installed, for its cheaper small requests) does not, and the fallback was reading the
blob in 256 KiB chunks in threads and copying each through the transport: a 1 GiB GET
ran at about 46% of loopback TCP throughput.

:func:`sendfile` keeps uvloop and still sends without copying: once the transport's
write buffer is empty (the headers are out), a worker thread calls ``os.sendfile``
on a *duplicate* of the connection's socket descriptor, waiting for writability with
``poll`` when the socket buffer is full. The duplicate keeps the socket alive even if
the loop closes the connection meanwhile (a client going away), so the thread can never
write into a descriptor number that was reused for something else; it then fails with
EPIPE/ECONNRESET and the request ends as a reset connection, as a chunked send would.
One thread hop per response instead of one per chunk.
"""

from __future__ import annotations

import asyncio
import errno
import os
import select
import threading
from typing import IO

STALL_TIMEOUT = 300.0  # seconds without any progress (a client that stopped reading)
_MAX_COUNT = 1 << 30  # bytes per sendfile call (Linux caps a call at 0x7ffff000 anyway)


def _send_loop(sock_fd: int, file_fd: int, offset: int, length: int, stop: threading.Event) -> None:
    """Runs in a thread; owns (and closes) both descriptors, which are duplicates."""
    try:
        poller = select.poll()
        poller.register(sock_fd, select.POLLOUT)
        end = offset + length
        stalled = 0.0
        while offset < end and not stop.is_set():
            try:
                n = os.sendfile(sock_fd, file_fd, offset, min(end - offset, _MAX_COUNT))
            except BlockingIOError:
                n = -1
            except InterruptedError:
                continue
            if n == 0:  # the file is shorter than the record says
                raise ConnectionResetError(errno.EIO, "blob shorter than expected")
            if n > 0:
                offset += n
                stalled = 0.0
                continue
            if not poller.poll(1000):  # 1 s slices, so a cancelled request stops soon
                stalled += 1.0
                if stalled >= STALL_TIMEOUT:
                    raise ConnectionResetError(errno.ETIMEDOUT, "client stopped reading")
    finally:
        os.close(sock_fd)
        os.close(file_fd)


async def sendfile(transport: asyncio.BaseTransport, fh: IO[bytes], offset: int, length: int) -> None:
    """Send ``length`` bytes of ``fh`` from ``offset`` on ``transport``'s socket.

    Uses the loop's own ``sendfile`` where it has one (asyncio's default loop); otherwise
    ``os.sendfile`` from a thread as above. Raises ``NotImplementedError`` when the
    transport has no socket (e.g. TLS), so the caller can stream instead.
    """
    loop = asyncio.get_running_loop()
    if type(loop).sendfile is not asyncio.AbstractEventLoop.sendfile:
        await loop.sendfile(transport, fh, offset, length)  # type: ignore[arg-type]
        return
    sock = transport.get_extra_info("socket")
    if sock is None or transport.get_extra_info("sslcontext") is not None or not hasattr(os, "sendfile"):
        raise NotImplementedError
    # bytes written before ours (the headers) must be on the wire first
    while transport.get_write_buffer_size():  # type: ignore[attr-defined]
        if transport.is_closing():
            raise ConnectionResetError("connection closed")
        await asyncio.sleep(0.001)
    # duplicates, closed by the thread: neither number can be reused under it, even if
    # this coroutine is cancelled and the caller closes the file and the connection
    sock_fd = os.dup(sock.fileno())
    try:
        file_fd = os.dup(fh.fileno())
    except OSError:
        os.close(sock_fd)
        raise
    stop = threading.Event()
    try:
        await asyncio.to_thread(_send_loop, sock_fd, file_fd, offset, length, stop)
    finally:
        stop.set()  # on cancellation the thread stops after its current call
