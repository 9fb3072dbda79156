"""Start-up: what ``lampi serve`` does before any worker serves, in a module that loads
no aiohttp, so the server's own modules (``lampi.gateway.server``: aiohttp, the
front-ends) load in a thread meanwhile (``preload``).

The steps (``prepare``): bind the listening sockets, lock the data dir, bootstrap it
(domain, admin project and user, RC file), check the bucket namespace, clear the
leftovers of interrupted uploads. A first start spends most of its bootstrap in
argon2 (the admin's password hash) and fsyncs, which release the GIL: the import
runs beside them, and ``lampi serve`` answers sooner (docs/benchmarks.md, session 17).

A stop signal from here until the workers' event loops take the signals over only
sets ``Signals.stop``, checked between the steps: the start-up stops at its next step
and exits 0 (no traceback, no half-written bootstrap).
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import logging
import multiprocessing
import shlex
import signal
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

from lampi.config import Settings
from lampi.core.identity import Bootstrap, IdentityService
from lampi.core.storage import namespace_problem as store_namespace_problem
from lampi.store.blob.base import BlobStoreUnavailable
from lampi.store.blob.policies import PolicyBlobStore, open_policy_stores
from lampi.store.dirlock import DataDirLock
from lampi.store.fsmodes import make_private
from lampi.store.keyring import MasterKeyError
from lampi.store.meta.base import SchemaError
from lampi.store.meta.factory import master_key_source, open_meta
from lampi.store.space import MinFree

log = logging.getLogger("lampi.server")
_dir_lock: DataDirLock | None = None  # the data dir's lock (lampi.store.dirlock), held while serving
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Signals:
    """Signals that came before an event loop took them over: ``stop`` (SIGTERM/SIGINT,
    during start-up or in a worker before its loop runs) and ``hup`` (SIGHUP: reload the
    certificate once serving)."""

    stop = False
    hup = False

    @classmethod
    def note_stop(cls, signum: int, _frame: Any) -> None:
        cls.stop = True

    @classmethod
    def note_hup(cls, signum: int, _frame: Any) -> None:
        cls.hup = True


class Preload:
    """Import a module in a thread while the caller goes on; ``module()`` waits for it.
    An import that failed is tried again by ``module()`` in the caller's thread, so its
    error is raised there, as a plain import's would be."""

    _running: list[Preload] = []

    def __init__(self, name: str) -> None:
        self.name = name
        self._thread = threading.Thread(target=self._load, name=f"lampi-import-{name}", daemon=True)
        self._thread.start()
        Preload._running.append(self)

    @classmethod
    def finish_all(cls) -> None:
        """Wait for every preload: before a fork, whose child must not inherit an import
        half done by a thread it does not have."""
        for preload in cls._running:
            preload._thread.join()

    def _load(self) -> None:
        try:
            importlib.import_module(self.name)
        except BaseException:  # noqa: BLE001 - raised again by module(), in the caller's thread
            pass

    def module(self) -> ModuleType:
        self._thread.join()
        return importlib.import_module(self.name)


@dataclasses.dataclass
class Started:
    """What ``prepare`` hands the server: the settings, the listening sockets (``sock``
    for the API; the S3-only, metrics and console ones when set) and the bootstrap."""

    settings: Settings
    boot: Bootstrap
    sock: socket.socket
    s3_sock: socket.socket | None = None
    metrics_sock: socket.socket | None = None
    console_sock: socket.socket | None = None

    def close_sockets(self) -> None:
        _close((self.sock, self.s3_sock, self.metrics_sock, self.console_sock))


def _close(socks: Iterable[socket.socket | None]) -> None:
    for x in socks:
        if x is not None:
            x.close()


def open_stores(settings: Settings) -> tuple[Any, PolicyBlobStore]:
    root = settings.data_path
    root.mkdir(parents=True, exist_ok=True)
    meta = open_meta(settings.meta_url, root, create=True, durable=not settings.ephemeral,  # SQLite, or PostgreSQL
                     master_key=master_key_source(settings))
    # one blob store per storage policy (lampi.store.blob.policies); uploads leave
    # min_free_space free, and room for the metadata reserve (lampi.store.space)
    return meta, open_policy_stores(settings, MinFree(*settings.min_free()), meta.reserve)


def bootstrap(settings: Settings) -> Bootstrap:
    async def run() -> Bootstrap:
        meta, _ = open_stores(settings)
        try:
            meta.keys.check()  # the master key (keys in the database): refused here, in one line
            if getattr(meta.keys, "imported", None):
                log.warning("copied the key files of %s into the metadata store (%s), sealed with the master key: "
                            "they are no longer read from there; keep them with your backups",
                            settings.data_path / "keys", ", ".join(meta.keys.imported))
            ident = IdentityService(meta, settings)
            boot = await ident.bootstrap()
            refresh_openrc(ident)
            return boot
        finally:
            await meta.close()

    return asyncio.run(run())


def namespace_problem(settings: Settings) -> str | None:
    """Why the store cannot be served with ``settings.bucket_namespace`` (None: it can).
    The setting is read at every start: a store made in the global namespace can be
    served per project at any time; back in the global one only while no container name
    is used by two projects."""
    async def run() -> str | None:
        meta, _ = open_stores(settings)
        try:
            return await store_namespace_problem(meta, settings.bucket_namespace)
        finally:
            await meta.close()

    return asyncio.run(run())


def refresh_openrc(ident: IdentityService) -> None:
    """Point an existing RC file at this server's endpoint and region.

    The file is written once, when the data dir is made (by `lampi init`, perhaps
    with other settings, or a first `lampi serve`), and the server may be started on
    another host, port or public URL later; the credentials in it stay as they are.
    """
    path = ident.rc_path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        return
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export "):].partition("=")
            try:
                words = shlex.split(value)
            except ValueError:
                return  # hand-edited beyond recognition: leave it alone
            env[key] = words[0] if words else ""
    user, password, project = env.get("OS_USERNAME"), env.get("OS_PASSWORD"), env.get("OS_PROJECT_NAME")
    if not (user and password and project):
        return
    if ident.openrc_text(user, password, project) != text:
        try:
            ident.write_openrc(user, password, project)
        except OSError as exc:  # a full disk must not keep the server from starting
            log.warning("could not update %s: %s", path, exc)


def clear_partials(settings: Settings) -> int:
    """Remove the temp files of interrupted uploads. One an upload still holds (another
    server on this data dir, still finishing its requests) is left alone: its lock says
    so (lampi.store.blob.fs)."""
    blobs = open_policy_stores(settings)  # every policy's tmp/
    try:
        return sum(blobs.remove_partial(ident) for ident, _mtime in list(blobs.iter_partials()))
    finally:
        if "lampi.store.blob.rados" in sys.modules:  # no librados threads across the fork
            sys.modules["lampi.store.blob.rados"].disconnect()


def _uses_rados(settings: Settings) -> bool:
    return bool(settings.blob_url) or any(spec.url for spec in settings.policies())


def _clear_partials_apart(settings: Settings) -> int:
    """``clear_partials`` in a child process of its own when the workers will be forked
    from this one and a blob store is RADOS: a worker forked from a process that had
    used librados (even after shutting its connection down) read large objects ~10x
    slower than one forked from a process that never had (a 256 MiB GET: 0.85-5 s
    against 0.38-0.59 s on the same cluster; docs/benchmarks.md, session 6), so the
    supervisor never touches RADOS itself."""
    if settings.workers <= 1 or not _uses_rados(settings):
        return clear_partials(settings)
    Preload.finish_all()
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)

    def child() -> None:
        try:
            send.send(("ok", clear_partials(settings)))
        except BlobStoreUnavailable as exc:
            send.send(("unavailable", str(exc)))
        except BaseException as exc:  # noqa: BLE001 - told to the parent, which raises it
            send.send(("error", f"{type(exc).__name__}: {exc}"))

    proc = ctx.Process(target=child, name="lampi-clear-partials", daemon=True)
    proc.start()
    send.close()
    try:
        kind, value = receive.recv()
    except EOFError:
        kind, value = "error", f"exited with {proc.exitcode}"
    finally:
        proc.join()
        receive.close()
    if kind == "ok":
        return int(value)
    if kind == "unavailable":
        raise BlobStoreUnavailable(value)
    raise RuntimeError(f"clearing interrupted uploads failed: {value}")


def bind(settings: Settings, port: int | None = None) -> socket.socket:
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port if port is None else port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


class TLSError(Exception):
    """The certificate or key cannot be used (the message names the file and why)."""


def tls_context(settings: Settings) -> ssl.SSLContext:
    """A server context for ``tls_cert``/``tls_key`` (TLS 1.2 or later); TLSError naming
    the file when one is missing, unreadable, not PEM, or the two do not match."""
    for what, path in (("tls_cert", settings.tls_cert), ("tls_key", settings.tls_key)):
        try:
            with open(path, "rb") as fh:
                fh.read(1)
        except OSError as exc:
            raise TLSError(f"{what} {path}: {exc.strerror or exc}") from None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(settings.tls_cert, settings.tls_key)
    except ssl.SSLError as exc:
        raise TLSError(f"tls_cert {settings.tls_cert} / tls_key {settings.tls_key}: not a PEM certificate "
                       f"and its private key ({exc.reason or exc})") from None
    except OSError as exc:
        raise TLSError(f"tls_cert {settings.tls_cert} / tls_key {settings.tls_key}: {exc.strerror or exc}") from None
    return ctx


def prepare(settings: Settings, stopped: Callable[[], bool] | None = None) -> Started | int:
    """The start-up steps; a ``Started`` to serve, or the exit code: 0 after a stop
    signal (also one before this was called: ``stopped``, the caller's own note), 1 if a
    port cannot be bound, 2 if the store cannot be served (its schema, its key, a
    ``lampi migrate`` copying it, a bad certificate, a blob store out of reach)."""
    global _dir_lock
    Signals.stop = False
    for sig in STOP_SIGNALS:
        signal.signal(sig, Signals.note_stop)
    if stopped is not None and stopped():
        Signals.stop = True
    if settings.tls_cert:
        try:
            tls_context(settings)  # a bad certificate or key: said now, not in every worker
        except TLSError as exc:
            print(f"lampi: cannot serve HTTPS: {exc}", file=sys.stderr)
            return 2
        signal.signal(signal.SIGHUP, Signals.note_hup)  # until a loop (or the supervisor) takes it over
    try:
        sock = bind(settings)
    except OSError as exc:
        print(f"lampi: cannot listen on {settings.host}:{settings.port}: {exc.strerror}", file=sys.stderr)
        return 1
    extra: dict[str, socket.socket | None] = {"s3": None, "metrics": None, "console": None}

    def close_sockets() -> None:
        _close((sock, *extra.values()))

    for what, port in (("s3", settings.s3_port), ("metrics", settings.metrics_port),
                       ("console", settings.console_port)):
        if port:
            try:
                extra[what] = bind(settings, port)
            except OSError as exc:
                print(f"lampi: cannot listen on {settings.host}:{port}"
                      f"{' (the console; --console-port 0 turns it off)' if what == 'console' else ''}: "
                      f"{exc.strerror}", file=sys.stderr)
                close_sockets()
                return 1
    if Signals.stop:
        close_sockets()
        return 0
    make_private(settings.data_path)  # umask 077; a data dir an older version left open is fixed
    # held (shared) until the last worker stops: `lampi migrate` does not copy a served store
    settings.data_path.mkdir(parents=True, exist_ok=True)
    _dir_lock = DataDirLock(settings.data_path)
    if not _dir_lock.acquire(exclusive=False):
        print(f"lampi: `lampi migrate` is copying the store in {settings.data_path.resolve()}; start the "
              "server once it has finished", file=sys.stderr)
        close_sockets()
        return 2
    try:
        boot = bootstrap(settings)
    except (SchemaError, MasterKeyError) as exc:  # a database this lampi cannot serve (older schema, no key)
        print(f"lampi: {exc}", file=sys.stderr)
        close_sockets()
        return 2
    problem = namespace_problem(settings)
    if problem:
        print(f"lampi: {problem}", file=sys.stderr)
        close_sockets()
        return 2
    if Signals.stop:
        close_sockets()
        return 0
    try:
        removed = _clear_partials_apart(settings)
    except BlobStoreUnavailable as exc:
        print(f"lampi: {exc}", file=sys.stderr)
        close_sockets()
        return 2
    if removed:
        log.info("removed %d leftovers of interrupted uploads", removed)
    if Signals.stop:
        close_sockets()
        return 0
    return Started(settings, boot, sock, extra["s3"], extra["metrics"], extra["console"])
