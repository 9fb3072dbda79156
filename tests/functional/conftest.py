"""Functional test fixtures: a real ``lampi serve`` subprocess on a free loopback port.

Tests talk to it only with real clients (python-swiftclient, keystoneauth1, the
``swift`` and ``openstack`` CLIs, requests for raw HTTP).

Robust on a busy machine, and nothing left running:

- readiness is polled until a generous deadline (``LAMPI_TEST_START_TIMEOUT``, default
  120 s), retrying every error — connection refused, reset, a read timeout — with a
  per-try timeout that grows from 1 s to 10 s;
- every server is started by :func:`spawn_server` in a session (and process group) of
  its own, so stopping it also stops its forked workers, and a Ctrl-C at the terminal
  does not reach it half-way through a test;
- every server started is remembered: fixture finalizers stop theirs, and at the end
  of the run (``pytest_sessionfinish``, and ``atexit`` should that not run) whatever
  is still alive is killed and reported. SIGTERM to pytest (a CI time-out) is turned
  into KeyboardInterrupt, so the same clean-up runs.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from lampi.testing import wait_healthy  # noqa: F401  (the readiness poll, shared with the pytest plugin)

START_TIMEOUT = float(os.environ.get("LAMPI_TEST_START_TIMEOUT", "120"))
STOP_TIMEOUT = 60.0

# every server process this pytest run started (see spawn_server)
_started: list[subprocess.Popen[bytes]] = []
_started_lock = threading.Lock()


def spawn_server(args: list[str], **popen: Any) -> subprocess.Popen[bytes]:
    """Start a server process in a session of its own and remember it for the reaper."""
    popen.setdefault("stdin", subprocess.DEVNULL)
    with _started_lock:
        proc = subprocess.Popen(args, start_new_session=True, **popen)
        _started.append(proc)
    return proc


def _exited(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait up to ``timeout`` for ``proc`` to exit WITHOUT reaping it: while it is a
    zombie its pid still names its process group, so killing that group can hit no
    one else."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.returncode is not None:
            return True
        try:
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def _orphans(proc: subprocess.Popen[bytes]) -> list[int]:
    """Live lampi processes left in the session of ``proc``, a server already reaped
    (workers whose supervisor was killed). None when a process with the leader's pid
    exists again: then the pid was reused, and that session is someone else's."""
    if proc.returncode is None or os.path.exists(f"/proc/{proc.pid}"):
        return []
    return _session_members(proc.pid)


def _session_members(sid: int) -> list[int]:
    """Live (not zombie) lampi processes in session ``sid``."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if os.getsid(int(d.name)) != sid:
                continue
            stat = (d / "stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                continue
            if b"lampi" in (d / "cmdline").read_bytes():
                out.append(int(d.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def stop_server(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
    """Send ``sig`` to the server, wait for it, then kill whatever is left of its
    process group (forked workers); SIGKILL after ``timeout``. Returns its exit status."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        if not _exited(proc, timeout):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            _exited(proc, 30)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # the leader is at most a zombie: the group is still ours
        proc.wait()
    for pid in _orphans(proc):  # workers of a leader that was killed and reaped earlier
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return proc.returncode


def reap_all() -> list[str]:
    """Kill every server this run started that is still alive; return what was found."""
    with _started_lock:
        procs = list(_started)
    found = []
    for proc in procs:
        alive = [proc.pid] if proc.returncode is None and not _exited(proc, 0) else _orphans(proc)
        if alive:
            found.append(f"{' '.join(map(str, alive))}: {' '.join(map(str, proc.args))}")
        stop_server(proc, signal.SIGKILL, timeout=10)
    return found


atexit.register(reap_all)


def ctrl_c_answered() -> None:
    """``preexec_fn`` for a child a test will send SIGINT to, as Ctrl-C at a terminal:
    SIGINT back to its default, so the child's Python installs its KeyboardInterrupt
    handler. A suite started in the background (``cmd &`` from a script, ``nohup``)
    inherits SIGINT ignored, and Python then leaves it ignored: the child would never
    see the test's Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # SIGTERM (a CI time-out, `kill`) would end pytest without finalizers or atexit:
    # make it a KeyboardInterrupt, which pytest answers by tearing everything down.
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)


@pytest.hookimpl(trylast=True)  # after pytest's own sessionfinish has torn down session fixtures
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leaked = reap_all()
    if leaked:
        msg = "lampi servers still running at the end of the run (killed now):\n  " + "\n  ".join(leaked)
        sys.stderr.write("\n" + msg + "\n")
        if session.exitstatus == 0:
            session.exitstatus = 1  # a fixture that leaks servers is a failure


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_openrc(text: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("export "):
            k, v = line[len("export "):].split("=", 1)
            if v.startswith("'") and v.endswith("'"):
                v = v[1:-1].replace("'\"'\"'", "'")
            env[k] = v
    return env


def lampi_cmd() -> list[str]:
    exe = shutil.which("lampi")
    return [exe] if exe else [sys.executable, "-m", "lampi"]


@dataclass
class LampiServer:
    data_dir: Path
    port: int
    workers: int = 1
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # more environment for the server (LAMPI_* settings)
    console_port: int = 0  # the web console's port: 0 (off) unless a test gives it a free_port()
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth_url(self) -> str:
        return f"{self.url}/v3"

    def start(self, timeout: float | None = None) -> None:
        """Start ``lampi serve`` and wait until it answers (see :func:`wait_healthy`)."""
        self.log_path = self.data_dir.parent / f"server-{self.port}-{int(time.time() * 1000)}.log"
        env = dict(os.environ)
        env.pop("LAMPI_CONFIG", None)
        env.update(self.env)
        with open(self.log_path, "wb") as log:
            self.proc = spawn_server(
                [*lampi_cmd(), "serve", "--host", "127.0.0.1", "--port", str(self.port),
                 "--data-dir", str(self.data_dir), "--workers", str(self.workers), "--log-format", "json",
                 "--console-port", str(self.console_port), *self.extra_args],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )
        try:
            wait_healthy(self.url, self.proc, timeout)
        except BaseException as exc:  # not ready, or interrupted: leave nothing running
            stop_server(self.proc, signal.SIGKILL)
            if isinstance(exc, RuntimeError):
                raise RuntimeError(f"lampi on port {self.port}: {exc}:\n{self.log()}") from None
            raise

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        assert self.proc is not None
        return stop_server(self.proc, sig, timeout)

    def openrc(self) -> dict[str, str]:
        return parse_openrc((self.data_dir / "openrc.sh").read_text())

    def cli(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run an admin ``lampi`` command on this server's data dir."""
        meta = self.extra_args[self.extra_args.index("--meta-url"):][:2] if "--meta-url" in self.extra_args else []
        env = {**os.environ, **self.env}  # the server's own settings (LAMPI_MASTER_KEY...)
        if "--blob-url" in self.extra_args:  # for the commands that touch the bytes (fsck)
            env["LAMPI_BLOB_URL"] = self.extra_args[self.extra_args.index("--blob-url") + 1]
        res = subprocess.run(
            [*lampi_cmd(), *args, "--data-dir", str(self.data_dir), *meta],
            capture_output=True, text=True, input=input, check=False, timeout=60, env=env,
        )
        if check and res.returncode != 0:
            raise AssertionError(f"lampi {' '.join(args)} exited {res.returncode}:\n{res.stdout}\n{res.stderr}")
        return res


class GatewayPair(LampiServer):
    """Two ``lampi serve`` gateways over one PostgreSQL and one Ceph pool, behind a
    router (tests/gateway_router.py) that sends writes to the first and reads, listings
    and deletes to the second. ``url``/``port`` are the router's; ``data_dir``,
    ``openrc()`` and ``cli()`` the first gateway's (both serve the same store)."""

    gateways: tuple[LampiServer, LampiServer] | None = None
    router: Any = None

    def log(self) -> str:
        return "".join(g.log() for g in self.gateways or ())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        status = 0
        if self.router is not None and sig == signal.SIGTERM and (
                self.router.routed["reader"] == 0 or self.router.routed["writer"] == 0):
            # a pair whose second gateway saw nothing tested one gateway only
            sys.stderr.write(f"\nGatewayPair: requests routed {self.router.routed}: one gateway got none\n")
        try:
            for g in self.gateways or ():
                if g.proc is not None:
                    status = g.stop(sig, timeout) or status
        finally:
            if self.router is not None:
                self.router.stop()
        return status


def start_gateway_pair(base: Path, meta_url: str, blob_url: str, env: dict[str, str] | None = None) -> GatewayPair:
    """Start the two gateways of a :class:`GatewayPair` (each with a data dir of its
    own: nothing on local disk is shared) and the router in front of them."""
    from tests.gateway_router import GatewayRouter

    ports = free_port(), free_port()
    router = GatewayRouter(("127.0.0.1", ports[0]), ("127.0.0.1", ports[1]))
    public = f"http://127.0.0.1:{router.port}"
    args = ["--meta-url", meta_url, "--blob-url", blob_url, "--public-url", public]
    a = LampiServer(data_dir=base / "data", port=ports[0], extra_args=args, env=dict(env or {}))
    b = LampiServer(data_dir=base / "data-b", port=ports[1], extra_args=args, env=dict(env or {}))
    pair = GatewayPair(data_dir=a.data_dir, port=router.port, extra_args=args, env=dict(env or {}))
    pair.gateways, pair.router = (a, b), router
    try:
        a.start()  # first: it creates the schema and the bootstrap admin (openrc.sh)
        b.start()
    except BaseException:
        pair.stop(signal.SIGKILL)
        raise
    pair.proc = a.proc
    return pair


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[LampiServer]:
    """One server for the whole session (tests use unique container names).

    With ``LAMPI_TEST_META=postgres`` it keeps its metadata in a throw-away PostgreSQL
    cluster (meta_url): the tests that use this fixture then run against the PostgreSQL
    MetaStore (.ci/run does so for the core Swift, Keystone and S3 files).

    With ``LAMPI_TEST_GATEWAYS=2`` it is two gateways over one PostgreSQL and one Ceph
    pool (:class:`GatewayPair`): every write goes through the first, every read, listing
    and delete through the second (.ci/run runs the same core files so)."""
    base = tmp_path_factory.mktemp("lampi")
    cluster = None
    extra: list[str] = []
    two = os.environ.get("LAMPI_TEST_GATEWAYS", "1") == "2"
    if os.environ.get("LAMPI_TEST_META") == "postgres" or two:
        from tests.pgcluster import PGCluster, require_postgres

        cluster = PGCluster(require_postgres())
        cluster.start()
        extra = ["--meta-url", cluster.create_db()]
    srv: LampiServer | None = None
    try:
        if two:
            from tests.conftest import CEPH_POOL

            ceph = request.getfixturevalue("ceph")
            blob_url = f"{ceph.url(CEPH_POOL)}&namespace={uuid.uuid4().hex}"
            srv = start_gateway_pair(base, extra[1], blob_url, env=gateway_pair_env(base))
        else:
            srv = LampiServer(data_dir=base / "data", port=free_port(), extra_args=extra)
            srv.start()
        yield srv
    finally:
        try:
            if srv is not None and srv.proc is not None:
                srv.stop()
        finally:
            if cluster is not None:
                cluster.stop()


def blobs_in_files(server: LampiServer) -> bool:
    """Whether ``server`` keeps object bytes as files in its data dir (no blob_url)."""
    return "--blob-url" not in server.extra_args


def gateway_pair_env(base: Path) -> dict[str, str]:
    """Settings both gateways of a pair share (beyond meta_url and blob_url): the master
    key sealing the keys they keep in the database (docs/scale-out.md)."""
    from cryptography.fernet import Fernet

    return {"LAMPI_MASTER_KEY": Fernet.generate_key().decode()}


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[LampiServer]:
    """A server of the test's own, for tests that stop, kill or reconfigure it."""
    srv = LampiServer(data_dir=tmp_path / "data", port=free_port())
    try:
        yield srv
    finally:
        if srv.proc is not None:
            srv.stop(signal.SIGKILL)


@pytest.fixture
def openrc_env(server: LampiServer) -> dict[str, str]:
    """os.environ plus the server's RC file, as `eval "$(lampi openrc)"` would set it."""
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("OS_"):
            del env[k]
    env.update(server.openrc())
    return env


def swift_at(server: LampiServer):  # noqa: ANN201
    """python-swiftclient logged in (Keystone v3) as the server's RC file's user, on the
    server itself (the RC file of gateways sharing a data dir names the first one)."""
    import swiftclient

    rc = server.openrc()
    return swiftclient.Connection(
        authurl=f"{server.url}/v3", user=rc["OS_USERNAME"], key=rc["OS_PASSWORD"],
        os_options={"user_domain_name": rc["OS_USER_DOMAIN_NAME"], "project_domain_name": rc["OS_PROJECT_DOMAIN_NAME"],
                    "project_name": rc["OS_PROJECT_NAME"]},
        auth_version="3", retries=0)


@pytest.fixture
def swift_conn(server: LampiServer):  # noqa: ANN201
    import swiftclient

    rc = server.openrc()
    return swiftclient.Connection(
        authurl=rc["OS_AUTH_URL"],
        user=rc["OS_USERNAME"],
        key=rc["OS_PASSWORD"],
        os_options={
            "user_domain_name": rc["OS_USER_DOMAIN_NAME"],
            "project_domain_name": rc["OS_PROJECT_DOMAIN_NAME"],
            "project_name": rc["OS_PROJECT_NAME"],
        },
        auth_version="3",
        retries=0,
    )


@pytest.fixture
def unique() -> str:
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def token_and_url(swift_conn) -> tuple[str, str]:  # noqa: ANN001
    url, token = swift_conn.get_auth()
    return token, url


# -- S3 ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ec2_keys(server: LampiServer) -> dict[str, str]:
    """An S3 key pair of the admin user, made with `openstack ec2 credentials create`."""
    import json

    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(server.openrc())
    out = subprocess.run(["openstack", "ec2", "credentials", "create", "-f", "json"], env=env,
                         capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout)


@pytest.fixture
def s3(server: LampiServer, ec2_keys: dict[str, str]):  # noqa: ANN201
    """A boto3 S3 client at its default settings (path style to lampi)."""
    import boto3

    return boto3.client("s3", endpoint_url=server.url, aws_access_key_id=ec2_keys["access"],
                        aws_secret_access_key=ec2_keys["secret"], region_name="us-east-1")
