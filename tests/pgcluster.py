"""A throw-away PostgreSQL cluster for tests: ``initdb`` + ``pg_ctl`` in a temp dir,
listening on 127.0.0.1 and a free port, as the ``postgres`` user when run as root
(PostgreSQL refuses to run as root). Stopped and removed by ``stop()``.

Where PostgreSQL is missing the tests that need it skip, except when
``LAMPI_REQUIRE_POSTGRES=1`` (CI sets it: .ci/run installs PostgreSQL), where they fail.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


def _bindir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    for cand in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True):
        return Path(cand).parent
    return None


def require_postgres() -> Path:
    """PostgreSQL's bin directory; skip (or, with LAMPI_REQUIRE_POSTGRES=1, fail) without it."""
    bindir = _bindir()
    if bindir is not None:
        return bindir
    msg = "PostgreSQL (initdb) is not installed: apt-get install postgresql"
    if os.environ.get("LAMPI_REQUIRE_POSTGRES") == "1":
        pytest.fail(msg + " (LAMPI_REQUIRE_POSTGRES=1: required here)", pytrace=False)
    pytest.skip(msg)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PGCluster:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="lampi-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:
            self._as = ["runuser", "-u", "postgres", "--"]
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.started = False

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._run(str(self.bindir / "initdb"), "--no-sync", "-A", "trust", "-U", "postgres", "-E", "UTF8",
                  "--locale=C", "-D", str(self.data))
        self._opts = opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.dir / "log"),
                  "-w", "-t", "120", "start")
        self.started = True

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def create_db(self, template: str | None = None) -> str:
        """A new empty database (or a copy of ``template``); its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
        return self.url(name)

    def stop_server(self) -> None:
        """Stop PostgreSQL, keeping its data (``start_server`` brings it back)."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def start_server(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", self._opts, "-l", str(self.dir / "log"),
                  "-w", "-t", "120", "start")

    def stop(self) -> None:
        try:
            if self.started:
                subprocess.run([*self._as, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                                "-w", "stop"], capture_output=True, timeout=120, check=False)
                self.started = False
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def running() -> Iterator[PGCluster]:
    """A throw-away cluster for the ``with`` block (a module fixture's body)."""
    c = PGCluster(require_postgres())
    try:
        c.start()
        yield c
    finally:
        c.stop()
