"""Connections spread evenly over a server's workers.

The workers share each listening socket (forked from the supervisor). Left to the
event loops, a burst of new connections — a client opening its 16 connections at
once, as ``lampi bench``, rclone or ``aws s3 sync`` do — goes to whichever worker is
woken first, and it takes them all in one go (libuv accepts until the queue is
empty). Measured on this project's two-core machine: a 2-worker server handed one
worker 70% of a benchmark's requests (its event loop 12.95 s of CPU against the
other's 5.39 s), so that worker was the bottleneck while the other idled.

Here each worker accepts through ``BalancedSite``, one connection per wake-up of the
listening socket, and only while it holds no more connections than the least loaded
of the other workers (``Loads``: a count per worker in memory the supervisor shares
with them). A worker holding more steps back for ``PAUSE`` and looks again; if no
other worker took the connection within ``DEFER`` (busy or stopped), it accepts after
all, so a connection never waits longer than that. Accept failures (descriptors used
up) are handled as the guard's loops handle them (``lampi.gateway.guard``): the idle
connections are shed and one throttled line is logged, the next try a second later.
"""

from __future__ import annotations

import asyncio
import logging
import mmap
import socket
import ssl
from typing import Any

from aiohttp import web

from lampi.gateway import guard

log = logging.getLogger("lampi.http")

PAUSE = 0.002  # seconds a worker holding more connections than another waits before it looks again
DEFER = 0.02  # at most this long a pending connection waits for a less loaded worker
RETRY_AFTER_FAILURE = 1.0  # seconds before the next accept after one failed (EMFILE, ...)
# a wake-up this long after the last one is about a new pending connection (the one
# stepped back from was taken by another worker): while one is stepped back from, the
# socket is found ready again every PAUSE, or a busy loop's iteration later
STALE = 0.25


class Loads:
    """The connections each worker holds, in an anonymous shared mapping made before
    the workers are forked (each writes its own slot, reads the others'). A slot of -1:
    no worker running there (not started yet, or dead until its replacement joins)."""

    def __init__(self, workers: int) -> None:
        self._mem = mmap.mmap(-1, 8 * max(1, workers))
        self._slots = memoryview(self._mem).cast("q")
        for i in range(len(self._slots)):
            self._slots[i] = -1
        self.me: int | None = None

    def join(self, index: int) -> None:
        """This process is worker ``index`` (in the worker, after the fork)."""
        self.me = index
        self._slots[index] = 0

    def leave(self, index: int) -> None:
        """Worker ``index`` is gone (the supervisor, when it died)."""
        self._slots[index] = -1

    def note(self, connections: int) -> None:
        if self.me is not None:
            self._slots[self.me] = connections

    def least_of_others(self) -> int | None:
        """The fewest connections another running worker holds (None: no other)."""
        me = self.me
        least = None
        for i, n in enumerate(self._slots):
            if i != me and n >= 0 and (least is None or n < least):
                least = n
        return least


class _Listening:
    """What ``BaseSite.stop`` closes (it calls ``close()`` on the site's server)."""

    def __init__(self, site: BalancedSite) -> None:
        self.site = site

    def close(self) -> None:
        self.site._close()


class BalancedSite(web.SockSite):
    """``web.SockSite`` whose connections are accepted by lampi rather than by the
    event loop's server: one per wake-up of the listening socket, only while this
    worker is not holding more than another (module doc), then handed to the same
    protocol factory with ``loop.connect_accepted_socket``."""

    __slots__ = ("_loads", "_since", "_last", "_paused", "_pending", "_closed", "_fd")

    def __init__(self, runner: web.BaseRunner, sock: socket.socket, *, loads: Loads,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(runner, sock, ssl_context=ssl_context)
        self._loads = loads
        self._since: float | None = None  # when this worker first stepped back from a pending connection
        self._last = 0.0  # when the listening socket was last seen ready
        self._paused: asyncio.TimerHandle | None = None
        self._pending: set[asyncio.Task[Any]] = set()  # connections being set up (a TLS handshake)
        self._closed = False
        self._fd = -1

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        self._sock.setblocking(False)
        self._fd = self._sock.fileno()
        self._server = _Listening(self)  # type: ignore[assignment]
        asyncio.get_running_loop().add_reader(self._fd, self._ready)

    def _close(self) -> None:
        """No new connections (the listening socket closed in this worker)."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        if self._paused is not None:
            self._paused.cancel()
            self._paused = None
        else:
            loop.remove_reader(self._fd)
        self._sock.close()

    def _pause(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._fd)
        self._paused = loop.call_later(delay, self._resume)

    def _resume(self) -> None:
        self._paused = None
        if not self._closed:
            asyncio.get_running_loop().add_reader(self._fd, self._ready)

    def _ready(self) -> None:
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        mine = len(server._connections) + len(self._pending)
        self._loads.note(mine)
        now = loop.time()
        if self._since is not None and now - self._last > STALE:
            # not ready since a while: the connection stepped back from was taken by
            # another worker, this is a new one (it gets its own DEFER)
            self._since = None
        self._last = now
        least = self._loads.least_of_others()
        if least is not None and mine > least:
            if self._since is None:
                self._since = now
            if now - self._since < DEFER:
                self._pause(PAUSE)  # level-triggered: watching on would wake this loop at once again
                return
        self._since = None
        try:
            conn, _addr = self._sock.accept()
        except (BlockingIOError, InterruptedError):
            return  # another worker took it
        except OSError as exc:
            if exc.errno in guard._ACCEPT_ERRNOS:
                shed = sum(s.shed() for s in list(guard._SERVERS))
                guard._note("accept", logging.WARNING, "cannot accept connections: %s; closed %d idle "
                            "connection(s), retrying in 1 s", exc.strerror or exc, shed)
                self._pause(RETRY_AFTER_FAILURE)
            else:  # e.g. ECONNABORTED: the client gave up while queued
                guard._note("accept", logging.INFO, "accept failed: %s", exc.strerror or exc)
            return
        conn.setblocking(False)
        self._loads.note(mine + 1)
        task = loop.create_task(self._connect(conn))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _connect(self, conn: socket.socket) -> None:
        server = self._runner.server
        try:
            await asyncio.get_running_loop().connect_accepted_socket(server, conn,  # type: ignore[arg-type]
                                                                     ssl=self._ssl_context)
        except Exception as exc:  # noqa: BLE001 - a TLS handshake that failed, a client gone: its connection only
            log.debug("connection not set up: %s", exc)
            conn.close()
