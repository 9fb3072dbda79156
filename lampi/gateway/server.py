"""Process model: one listening socket, N worker processes serving it.

The parent binds the socket, bootstraps the data dir (domain, admin project and
user, RC file) and clears leftovers of interrupted uploads (no upload can be in flight
before the workers start) — ``lampi.gateway.startup``, while this module loads —, then
serves in-process (1 worker) or forks workers that share the socket. SIGTERM/SIGINT: stop accepting, let in-flight requests finish
within ``shutdown_timeout``, exit 0 — also when the signal comes during start-up
(binding, bootstrap, workers coming up): the start-up stops at its next step and
exits 0, the workers already started stop as usual.

Each worker guards its connections (timeouts, a connection cap derived from the
open-file limit, which ``serve`` first raises to its hard limit): ``lampi.gateway.guard``.

Metrics (lampi.metrics): the parent makes a private directory for prometheus-client's
multiprocess files before forking, marks a dead worker's live gauges gone, and removes
the directory at exit; ``metrics_port`` is a listener of its own serving
``lampi.gateway.ops``. TLS (``tls_cert``/``tls_key``): every listener serves HTTPS;
SIGHUP makes every worker load the files again (a bad new pair is logged and the old
one kept).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import multiprocessing
import os
import signal
import socket
from collections.abc import Callable
from typing import Any

from aiohttp import web

from lampi import metrics
from lampi.config import Settings
from lampi.core.identity import Bootstrap
from lampi.gateway import balance, guard
from lampi.gateway.app import build_app, build_console
from lampi.gateway.ops import add_ops_routes, ops_app
from lampi.gateway.startup import Signals, Started, TLSError, open_stores, tls_context
from lampi.http.context import STORAGE
from lampi.log import setup_logging

log = logging.getLogger("lampi.server")
# blocked across a fork: a worker must not run the supervisor's handlers (_worker_entry unblocks them)
_FORK_BLOCKED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
READ_BUFSIZE = 1024 * 1024


class ReloadableTLS:
    """The worker's TLS context: the listeners keep ``base``, whose SNI callback hands each
    new connection the context loaded last (``reload``, on SIGHUP); connections already
    open keep theirs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.current = tls_context(settings)
        self.base = tls_context(settings)
        self.base.sni_callback = self._pick

    def _pick(self, sslobj: ssl.SSLObject, _name: str | None, _ctx: ssl.SSLContext) -> None:
        sslobj.context = self.current
        return None

    def reload(self) -> bool:
        try:
            self.current = tls_context(self.settings)
        except TLSError as exc:
            log.error("SIGHUP: keeping the certificate in use: %s", exc)
            return False
        log.info("SIGHUP: certificate reloaded from %s", self.settings.tls_cert)
        return True


class _InFlight:
    """Requests whose handler runs (an upload's body is read inside the handler)."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()
        self.idle = asyncio.Event()
        self.idle.set()
        self.stopping = False

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.idle.clear()
        try:
            resp = await handler(request)
            if self.stopping:
                resp.force_close()  # no keep-alive once shutting down
            return resp
        finally:
            self.tasks.discard(task)
            if not self.tasks:
                self.idle.set()


async def _serve(
    settings: Settings, sock: socket.socket, signals: tuple[int, ...], s3_sock: socket.socket | None = None,
    metrics_sock: socket.socket | None = None, console_sock: socket.socket | None = None,
    loads: balance.Loads | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT, then shut down gracefully.

    Not ``web.run_app``: its shutdown first marks every connection closing, and from
    then on aiohttp drops the bytes still arriving on it (``data_received``), so an
    upload in flight could never finish — it would stall until the grace period
    ran out. Here the listening socket is closed first, in-flight handlers get up to
    ``shutdown_timeout`` seconds to finish, the ones still running (a stalled client)
    are cancelled — their partial blob is removed, the previous version stays — and
    only then does aiohttp close the connections (letting responses already being
    sent, e.g. a download, finish within ``shutdown_timeout``).
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    hurry = asyncio.Event()

    def on_signal() -> None:
        if stop.is_set():
            hurry.set()  # a second Ctrl-C: do not wait for in-flight requests
        stop.set()

    # the loop takes the signals over first thing; one that came before (start-up) counts
    for sig in signals:
        loop.add_signal_handler(sig, on_signal)
    if Signals.stop:
        stop.set()
    tls = ReloadableTLS(settings) if settings.tls_cert else None
    if tls is not None:
        loop.add_signal_handler(signal.SIGHUP, tls.reload)
        if Signals.hup:
            tls.reload()
    ssl_ctx = tls.base if tls is not None else None
    meta, blobs = open_stores(settings)
    app = build_app(settings, meta, blobs)
    inflight = _InFlight()
    app.middlewares.insert(0, inflight.middleware)
    # read_bufsize: how much request body aiohttp buffers before pausing the socket
    # (default 64 KiB). A large upload paused and resumed reading (two epoll_ctl calls)
    # every 128 KiB; 1 MiB, the blob write unit, keeps the loop receiving.
    runner = guard.GuardedRunner(app, limits=guard.Limits.of(settings), access_log=None, handle_signals=False,
                                 shutdown_timeout=settings.shutdown_timeout, read_bufsize=READ_BUFSIZE)
    # listeners with applications of their own (the metrics listener's, the console's),
    # cleaned up before the main app's, which closes the stores they share
    runners: list[web.AppRunner] = []
    sites: list[web.SockSite] = []
    try:
        await runner.setup()

        def api_site(listening: socket.socket) -> web.SockSite:
            # several workers: each takes its share of the connections (lampi.gateway.balance)
            if loads is not None:
                return balance.BalancedSite(runner, listening, loads=loads, ssl_context=ssl_ctx)
            return web.SockSite(runner, listening, ssl_context=ssl_ctx)

        sites.append(api_site(sock))
        # the S3-only port (setting s3_port): same app; dispatch tells the port apart
        if s3_sock is not None:
            sites.append(api_site(s3_sock))
        if metrics_sock is not None:  # the metrics listener (setting metrics_port): /metrics, /healthcheck, /readyz only
            ops_runner = web.AppRunner(ops_app(settings, app[STORAGE]), access_log=None, handle_signals=False)
            runners.append(ops_runner)
            await ops_runner.setup()
            sites.append(web.SockSite(ops_runner, metrics_sock, ssl_context=ssl_ctx))
        if console_sock is not None:  # the web console (setting console_port): an app of its own
            console = build_console(settings, app)
            add_ops_routes(console, settings, app[STORAGE])  # /metrics, /healthcheck, /readyz there too
            console.middlewares.insert(0, inflight.middleware)
            crunner = guard.GuardedRunner(console, limits=guard.Limits.of(settings), access_log=None,
                                          handle_signals=False, shutdown_timeout=settings.shutdown_timeout,
                                          read_bufsize=READ_BUFSIZE)
            runners.append(crunner)
            await crunner.setup()
            sites.append(web.SockSite(crunner, console_sock, ssl_context=ssl_ctx))
        if stop.is_set():  # stopped while starting: never serve
            return
        for site in sites:
            await site.start()
        await stop.wait()
        inflight.stopping = True
        for site in sites:
            await site.stop()  # closes the listening socket: no new connections
        if inflight.tasks:
            log.info("shutting down: waiting for %d request(s) in flight", len(inflight.tasks))
            waiters = [asyncio.ensure_future(inflight.idle.wait()), asyncio.ensure_future(hurry.wait())]
            await asyncio.wait(waiters, timeout=settings.shutdown_timeout, return_when=asyncio.FIRST_COMPLETED)
            for w in waiters:
                w.cancel()
        if inflight.tasks:
            log.warning("shutting down: aborting %d request(s) still in flight", len(inflight.tasks))
            for task in list(inflight.tasks):
                task.cancel()
            await asyncio.wait([asyncio.ensure_future(inflight.idle.wait())], timeout=5)
    finally:
        for r in runners:
            await r.cleanup()
        await runner.cleanup()
        if tls is not None:
            loop.remove_signal_handler(signal.SIGHUP)
            signal.signal(signal.SIGHUP, Signals.note_hup)  # not the default (exit) while stopping
        for sig in signals:
            loop.remove_signal_handler(sig)
            signal.signal(sig, Signals.note_stop)  # a late signal (executor shutdown) is not a traceback


def serve_worker(
    settings: Settings, sock: socket.socket, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT),
    s3_sock: socket.socket | None = None, metrics_sock: socket.socket | None = None,
    console_sock: socket.socket | None = None, loads: balance.Loads | None = None,
) -> None:
    loop = guard.new_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(_serve(settings, sock, signals, s3_sock, metrics_sock, console_sock, loads))
        # blob writes run in threads: let them finish before the process exits
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def _die_with_parent(parent_pid: int) -> None:
    """Ask the kernel for SIGTERM when the parent dies (Linux ``PR_SET_PDEATHSIG``), so
    workers never outlive a supervisor killed with SIGKILL (OOM killer, ``kill -9``) and
    keep serving the port unsupervised; SIGTERM is the usual graceful stop. A parent
    already gone before the request was made is caught by the ``getppid`` check."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        pass
    if os.getppid() != parent_pid:
        os._exit(0)


def _worker_entry(settings: Settings, sock: socket.socket, s3_sock: socket.socket | None = None,
                  parent_pid: int | None = None, metrics_sock: socket.socket | None = None,
                  console_sock: socket.socket | None = None, loads: balance.Loads | None = None,
                  index: int = 0) -> None:
    # The parent forks with SIGTERM/SIGINT (and SIGHUP) blocked (its own handlers must never
    # run in a worker): note a SIGTERM (a SIGHUP) from now on, then let the pending ones in.
    Signals.stop = False
    Signals.hup = False
    signal.signal(signal.SIGTERM, Signals.note_stop)
    signal.signal(signal.SIGHUP, Signals.note_hup)
    # Ctrl-C reaches the whole process group; the parent relays it as SIGTERM, so a
    # worker must not count it as a second ("hurry up") signal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORK_BLOCKED)
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    setup_logging(settings.log_level, settings.log_format)
    if loads is not None:
        loads.join(index)
    serve_worker(settings, sock, signals=(signal.SIGTERM,), s3_sock=s3_sock, metrics_sock=metrics_sock,
                 console_sock=console_sock, loads=loads)


def _limits(settings: Settings) -> Settings:
    """Raise the open-file limit and fix the per-worker connection cap from it."""
    nofile = guard.raise_fd_limit()
    cap = guard.connection_cap(settings.max_connections, nofile)
    log.info("up to %d connections per worker (open-file limit %s)", cap, nofile or "none")
    return dataclasses.replace(settings, max_connections=cap)


def serve(started: Started, announce: Callable[[Settings, Bootstrap], None] | None = None) -> int:
    """Serve what ``lampi.gateway.startup.prepare`` made ready: in this process (1 worker)
    or in forked workers under this one; 0 after a stop signal. ``announce`` (the
    banner) is called right before the workers start."""
    settings = _limits(started.settings)
    if Signals.stop:
        started.close_sockets()
        return 0
    if announce:
        announce(settings, started.boot)
    metrics.setup()  # a private directory for the workers' metrics files, before they fork
    try:
        if settings.workers <= 1:
            serve_worker(settings, started.sock, s3_sock=started.s3_sock, metrics_sock=started.metrics_sock,
                         console_sock=started.console_sock)
            return 0
        return _supervise(settings, started.sock, started.s3_sock, started.metrics_sock, started.console_sock,
                          started.close_sockets)
    finally:
        metrics.teardown()


def freeze_for_workers() -> None:
    """Right before forking a worker: move every object the supervisor has (the modules
    it imported, its settings) to the collector's permanent generation
    (``gc.freeze``, as Python's ``gc`` documentation advises for a process that forks
    without exec).

    A worker shares those objects' pages with the supervisor until it writes to them,
    and a full collection in the worker writes to the header of every object it tracks:
    the pages become the worker's own copies. Frozen objects are never examined, so they
    stay shared. Measured (session 13, docs/benchmarks.md): a supervisor with the server
    imported and two children forked from it held 74.4 MiB PSS in all after one full
    collection in each child, 45.5 MiB with the freeze. The cost: cyclic garbage among
    the frozen objects is never collected; the supervisor makes little after start-up."""
    gc.freeze()


def _supervise(settings: Settings, sock: socket.socket, s3_sock: socket.socket | None,
               metrics_sock: socket.socket | None, console_sock: socket.socket | None,
               close_sockets: Callable[[], None]) -> int:
    """Fork the workers, restart one that dies, relay SIGTERM/SIGINT (and SIGHUP)."""
    ctx = multiprocessing.get_context("fork")
    procs: list[multiprocessing.process.BaseProcess] = []
    loads = balance.Loads(settings.workers)  # connections per worker, shared with them (lampi.gateway.balance)
    signalled: set[int] = set()
    stopping = False

    def spawn(index: int) -> multiprocessing.process.BaseProcess:
        # blocked across the fork: the child must not run this process's handler
        # before installing its own (it unblocks them in _worker_entry)
        old = signal.pthread_sigmask(signal.SIG_BLOCK, _FORK_BLOCKED)
        try:
            freeze_for_workers()
            p = ctx.Process(target=_worker_entry,
                            args=(settings, sock, s3_sock, os.getpid(), metrics_sock, console_sock, loads, index),
                            daemon=False)
            p.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        return p

    def terminate_all() -> None:
        for p in procs:
            if p.pid and p.pid not in signalled and p.is_alive():
                signalled.add(p.pid)
                os.kill(p.pid, signal.SIGTERM)

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        # The workers close their copies of the listening socket; close the parent's
        # too, or the kernel would keep queueing connections nobody will accept.
        close_sockets()
        terminate_all()

    def relay_hup(signum: int, _frame: Any) -> None:
        for p in procs:
            if p.pid and p.is_alive():
                os.kill(p.pid, signal.SIGHUP)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if settings.tls_cert:
        signal.signal(signal.SIGHUP, relay_hup)
    if Signals.stop:  # came before ``stop`` was installed
        stopping = True
    for index in range(settings.workers):
        if stopping:
            break
        procs.append(spawn(index))
    while True:
        if stopping:  # also reaches workers started while the signal came (idempotent)
            close_sockets()
            terminate_all()
            if not any(p.is_alive() for p in procs):
                break
        for i, p in enumerate(procs):
            p.join(timeout=0.2)
            if not p.is_alive() and not stopping:
                log.warning("worker %s exited with %s; restarting", p.pid, p.exitcode)
                if p.pid:
                    metrics.process_dead(p.pid)  # its open connections are gone
                loads.leave(i)  # until its replacement joins: the others do not wait for it
                procs[i] = spawn(i)
    close_sockets()
    return 0
