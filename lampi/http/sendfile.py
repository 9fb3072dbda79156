"""File responses on any event loop, uvloop included, without per-chunk thread hops.

asyncio's default loop has ``loop.sendfile``; uvloop (which lampi's workers use when it
is installed, for its cheaper small requests) does not, and the fallback was reading the
blob in 256 KiB chunks, one thread hop each, copying every chunk through the
transport: a 1 GiB GET ran at about 46% of loopback TCP throughput.

On uvloop, :func:`sendfile` waits until the transport's write buffer is empty (the
headers are out), then a worker thread sends the file on a *duplicate* of the
connection's socket descriptor, waiting for writability with ``poll`` when the socket
buffer is full: one thread hop per response. The duplicates (socket and file) are the
thread's own, so even if the loop closes the connection meanwhile (a client going
away) the thread can never write into a descriptor number reused for something else;
it fails with EPIPE/ECONNRESET and the request ends as a reset connection, as a
chunked send would.

The thread sends with ``os.sendfile`` (the file's pages go to the socket without a copy
through user space). Session 2 measured the opposite on this VM and the thread copied
(``preadv`` into a reused 1 MiB buffer, then ``write``); measured again in session 13
(docs/benchmarks.md), with the receiver in a process of its own as a client is: a 1 GiB
page-cache file over loopback, ``os.sendfile`` 4.4–5.2 GB/s against 2.3–2.9 GB/s for the
copy, 3 rounds each.
"""

from __future__ import annotations

import asyncio
import errno
import os
import select
import threading
from typing import IO

STALL_TIMEOUT = 300.0  # seconds without any progress (a client that stopped reading)
SEND_CHUNK = 8 << 20  # at most this much per sendfile call (a non-blocking socket takes less)


def _send_loop(sock_fd: int, file_fd: int, offset: int, length: int, stop: threading.Event) -> None:
    """Runs in a thread; owns (and closes) both descriptors, which are duplicates."""
    try:
        poller = select.poll()
        poller.register(sock_fd, select.POLLOUT)
        end = offset + length
        stalled = 0.0
        while offset < end and not stop.is_set():
            try:
                n = os.sendfile(sock_fd, file_fd, offset, min(end - offset, SEND_CHUNK))
                if n == 0:  # the file is shorter than the record says
                    raise ConnectionResetError(errno.EIO, "blob shorter than expected")
            except BlockingIOError:  # the socket's buffer is full (non-blocking socket)
                n = -1
            except InterruptedError:
                continue
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
    the thread loop above. Raises ``NotImplementedError`` when the
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
