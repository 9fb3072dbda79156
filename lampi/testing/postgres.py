"""A throw-away PostgreSQL cluster: ``initdb`` + ``pg_ctl`` in a temp dir, listening on
127.0.0.1 and a free port, as the ``postgres`` user when run as root (PostgreSQL refuses
to run as root). Stopped and removed by ``stop()``.

Used by the tests (``tests/pgcluster.py``, with fsync off: nothing there needs to
survive a power cut) and by ``lampi bench --cluster`` (``durable=True``: PostgreSQL's
defaults, every commit flushed, as an operator runs it).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path


def bindir() -> Path | None:
    """PostgreSQL's bin directory: on PATH, or Debian's /usr/lib/postgresql/<v>/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    for cand in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True):
        return Path(cand).parent
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PGCluster:
    def __init__(self, bindir: Path, *, root: str | Path | None = None, durable: bool = False) -> None:
        self.bindir = bindir
        if root is not None:
            Path(root).mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="lampi-pg-", dir=root))
        self.data = self.dir / "data"
        self.port = _free_port()
        self.durable = durable
        self._as: list[str] = []
        if os.geteuid() == 0:
            self._as = ["runuser", "-u", "postgres", "--"]
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.started = False

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._run(str(self.bindir / "initdb"), *([] if self.durable else ["--no-sync"]), "-A", "trust",
                  "-U", "postgres", "-E", "UTF8", "--locale=C", "-D", str(self.data))
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=300"
        if not self.durable:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._opts = opts
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

    def pid(self) -> int | None:
        """The postmaster's pid (its backends are its children), while it runs."""
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def version(self) -> str:
        out = subprocess.run([str(self.bindir / "postgres"), "--version"], capture_output=True, text=True)
        return out.stdout.strip().rsplit(" ", 1)[-1] if out.returncode == 0 else "?"

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
