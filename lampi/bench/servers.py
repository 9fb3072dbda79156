"""Servers started by ``lampi bench --compare``: lampi, a single-node Swift, a single-node
Ceph with radosgw (RGW).

Each server process is started in a session of its own, so stopping it is one
``killpg`` of that session (its forked workers included), TERM first, KILL after a
grace period. :func:`leftovers` finds any process still in one of those sessions.

Swift is installed from PyPI (package ``swift``) into a cache venv
(``~/.cache/lampi-bench/swift-venv``). PyECLib's wheel bundles liberasurecode, so no
system library is needed for that; tempauth keeps its tokens in memcache, so the
``memcached`` binary must be installed (Debian: ``apt-get install memcached``).
Swift reads ``/etc/swift/swift.conf`` by a fixed path; rather than write to /etc, each
Swift server is started through a tiny wrapper that points
``swift.common.utils.SWIFT_CONF_FILE`` at the run's own copy before Swift loads it.
Its proxy has s3api (S3 with tempauth's users: access key ``admin:admin``, secret
``admin``) for the S3 scenarios.

RGW comes from Debian's packages (``radosgw``, with ``ceph-mon``/``ceph-osd``): one
monitor, one OSD with BlueStore on a sparse file in the run's directory (the real commit
path, as lampi and Swift fsync theirs), and radosgw, started by
:class:`lampi.testing.ceph.CephCluster`.
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

from lampi.bench import rss as rssmod
from lampi.bench.auth import Credentials, ec2_keys, parse_openrc, v1_auth, v3_auth
from lampi.bench.util import BenchError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> float:
    """Poll ``url`` until 200; return seconds since ``proc`` started."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise BenchError(f"{proc.args[0]} exited with {proc.returncode}; log {log}:\n"
                             + log.read_text(errors="replace")[-2000:])
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return time.monotonic() - t0
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.01)
    raise BenchError(f"{url} not ready after {timeout:.0f}s; log {log}")


class Node:
    """A set of server processes, each the leader of its own session."""

    name = "?"

    def __init__(self, work_dir: Path, workers: int) -> None:
        self.work_dir, self.workers = work_dir, workers
        self.procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []
        self.startup_s: float | None = None
        self.idle_rss: int | None = None
        self.idle_pss: int | None = None

    def _spawn(self, args: list[str], log_name: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.work_dir / log_name, "ab")
        self._logs.append(log)
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env=env, start_new_session=True, cwd=self.work_dir)
        self.procs.append(p)
        return p

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.poll() is None]

    def sessions(self) -> set[int]:
        return {p.pid for p in self.procs}

    def stop(self, grace: float = 15.0) -> None:
        for p in self.procs:
            _killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for p in self.procs:  # the leader may be gone while forked workers linger
            _killpg(p.pid, signal.SIGKILL)
            if p.poll() is None:
                p.wait(5)
        for log in self._logs:
            log.close()
        self._logs.clear()


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def leftovers(sessions: set[int]) -> list[str]:
    """Processes still alive in any of ``sessions`` (``pid cmdline``)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if os.getsid(int(d.name)) in sessions:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                state = next((ln.split()[1] for ln in (d / "status").read_text().splitlines()
                              if ln.startswith("State:")), "?")
                if state != "Z":
                    out.append(f"{d.name} {cmd}")
        except (OSError, ValueError):
            continue
    return out


class LampiNode(Node):
    name = "lampi"

    def start(self) -> None:
        self.data_dir = self.work_dir / "lampi-data"
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAMPI_")}
        p = self._spawn([sys.executable, "-m", "lampi", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                         "--data-dir", str(self.data_dir), "--workers", str(self.workers),
                         "--log-format", "json", "--console-port", "0"], "lampi.log", env)
        self.startup_s = wait_http(f"http://127.0.0.1:{self.port}/healthcheck", p, 60, self.work_dir / "lampi.log")
        time.sleep(0.5)  # let the workers finish starting before measuring idle memory
        self.idle_rss, self.idle_pss = rssmod.rss(self.pids), rssmod.pss(self.pids)

    def credentials(self) -> Credentials:
        return v3_auth(parse_openrc((self.data_dir / "openrc.sh").read_text()))

    def s3_credentials(self) -> Credentials:
        """The S3 endpoint (same port, path style) with a fresh EC2 key pair of the openrc user."""
        access, secret = ec2_keys(parse_openrc((self.data_dir / "openrc.sh").read_text()))
        return Credentials(f"http://127.0.0.1:{self.port}", "", "s3", access, secret)


WRAPPER = textwrap.dedent("""\
    # Started by lampi bench: run one Swift server with the run's own swift.conf.
    import importlib, os, sys
    import swift.common.utils as utils
    utils.SWIFT_CONF_FILE = os.environ["LAMPI_BENCH_SWIFT_CONF"]
    module = sys.argv.pop(1)
    sys.exit(importlib.import_module(module).main())
""")


def ensure_swift(cache_dir: Path, log: IO[str] | None = None) -> Path:
    """The cache venv with Swift installed (created on first use); returns its python."""
    venv = cache_dir / "swift-venv"
    py = venv / "bin" / "python"
    probe = [str(py), "-c", "import swift, pyeclib.ec_iface"]
    if py.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return py
    cache_dir.mkdir(parents=True, exist_ok=True)
    out = log or sys.stderr
    print(f"installing OpenStack Swift from PyPI into {venv} (once) ...", file=out, flush=True)
    for cmd in ([sys.executable, "-m", "venv", str(venv)], [str(py), "-m", "pip", "install", "-q", "swift"]):
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            raise BenchError(f"{' '.join(cmd)} failed:\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    r = subprocess.run(probe, capture_output=True, text=True)
    if r.returncode:
        raise BenchError(f"Swift installed but does not import (PyECLib/liberasurecode?):\n{r.stderr[-2000:]}")
    return py


class SwiftNode(Node):
    """proxy (tempauth) + account + container + object servers, one replica, memcached."""

    name = "swift"
    SERVERS = {"account": "swift.account.server", "container": "swift.container.server",
               "object": "swift.obj.server", "proxy": "swift.proxy.server"}

    def __init__(self, work_dir: Path, workers: int, cache_dir: Path) -> None:
        super().__init__(work_dir, workers)
        self.cache_dir = cache_dir
        self.version = ""

    def _configure(self) -> None:
        root = self.work_dir / "swift"
        self.etc, self.srv = root / "etc", root / "srv"
        (self.srv / "d1").mkdir(parents=True, exist_ok=True)
        self.etc.mkdir(parents=True, exist_ok=True)
        user = pwd.getpwuid(os.getuid()).pw_name  # workers "drop privileges" to this user
        self.ports = {k: free_port() for k in ("account", "container", "object", "proxy", "memcached")}
        (self.etc / "swift.conf").write_text(textwrap.dedent("""\
            [swift-hash]
            swift_hash_path_suffix = lampi-bench
            swift_hash_path_prefix = lampi-bench

            [storage-policy:0]
            name = Policy-0
            default = yes
        """))
        for kind, egg in (("account", "account"), ("container", "container"), ("object", "object")):
            (self.etc / f"{kind}-server.conf").write_text(textwrap.dedent(f"""\
                [DEFAULT]
                devices = {self.srv}
                mount_check = false
                disable_fallocate = true
                bind_ip = 127.0.0.1
                bind_port = {self.ports[kind]}
                workers = {self.workers}
                swift_dir = {self.etc}
                user = {user}
                log_name = {kind}-server

                [pipeline:main]
                pipeline = healthcheck {kind}-server

                [app:{kind}-server]
                use = egg:swift#{egg}

                [filter:healthcheck]
                use = egg:swift#healthcheck
            """))
        (self.etc / "proxy-server.conf").write_text(textwrap.dedent(f"""\
            [DEFAULT]
            bind_ip = 127.0.0.1
            bind_port = {self.ports['proxy']}
            workers = {self.workers}
            swift_dir = {self.etc}
            user = {user}
            log_name = proxy-server

            [pipeline:main]
            pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server

            [app:proxy-server]
            use = egg:swift#proxy
            account_autocreate = true
            allow_account_management = true

            [filter:s3api]
            use = egg:swift#s3api

            [filter:tempauth]
            use = egg:swift#tempauth
            user_admin_admin = admin .admin .reseller_admin

            [filter:cache]
            use = egg:swift#memcache
            memcache_servers = 127.0.0.1:{self.ports['memcached']}
            # Swift's defaults (2 connections per worker, 1 s to get one, 2 s per
            # round-trip) turn a busy machine's slow token look-ups into 401s at 64
            # connections (seen: 1,545 of 2,000 HEADs): waits, not failures.
            memcache_max_connections = 16
            pool_timeout = 10
            io_timeout = 10

            [filter:catch_errors]
            use = egg:swift#catch_errors

            [filter:gatekeeper]
            use = egg:swift#gatekeeper

            [filter:healthcheck]
            use = egg:swift#healthcheck

            [filter:proxy-logging]
            use = egg:swift#proxy_logging

            [filter:listing_formats]
            use = egg:swift#listing_formats

            [filter:copy]
            use = egg:swift#copy

            [filter:slo]
            use = egg:swift#slo

            [filter:dlo]
            use = egg:swift#dlo
        """))
        builder = str(self.py.parent / "swift-ring-builder")
        for kind in ("account", "container", "object"):
            b = str(self.etc / f"{kind}.builder")
            for args in (["create", "6", "1", "1"], ["add", f"r1z1-127.0.0.1:{self.ports[kind]}/d1", "100"],
                         ["rebalance"]):
                r = subprocess.run([builder, b, *args], capture_output=True, text=True, cwd=self.etc)
                if r.returncode not in (0, 1):  # 1 = warnings
                    raise BenchError(f"swift-ring-builder {' '.join(args)} failed:\n{r.stdout}{r.stderr}")

    def start(self) -> None:
        memcached = shutil.which("memcached")
        if not memcached:
            raise BenchError("--compare swift needs memcached (Swift's tempauth keeps tokens there): "
                             "apt-get install memcached")
        self.py = ensure_swift(self.cache_dir)
        self.version = subprocess.run([str(self.py), "-c", "import swift; print(swift.__version__)"],
                                      capture_output=True, text=True).stdout.strip()
        self._configure()
        wrapper = self.work_dir / "swift" / "run_server.py"
        wrapper.write_text(WRAPPER)
        mc = [memcached, "-l", "127.0.0.1", "-p", str(self.ports["memcached"]), "-U", "0", "-m", "64"]
        if os.geteuid() == 0:
            mc += ["-u", "root"]  # memcached refuses to run as root without it
        self._spawn(mc, "memcached.log")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ST_"))}
        env["LAMPI_BENCH_SWIFT_CONF"] = str(self.etc / "swift.conf")
        t0 = time.monotonic()
        started = []
        for kind, module in self.SERVERS.items():
            log = f"swift-{kind}.log"
            p = self._spawn([str(self.py), str(wrapper), module, str(self.etc / f"{kind}-server.conf")], log, env)
            started.append((kind, p, log))
        for kind, p, log in started:
            wait_http(f"http://127.0.0.1:{self.ports[kind]}/healthcheck", p, 60, self.work_dir / log)
        self.startup_s = time.monotonic() - t0
        time.sleep(0.5)
        self.idle_rss, self.idle_pss = rssmod.rss(self.pids), rssmod.pss(self.pids)

    def credentials(self) -> Credentials:
        return v1_auth(f"http://127.0.0.1:{self.ports['proxy']}/auth/v1.0", "admin:admin", "admin")

    def s3_credentials(self) -> Credentials:
        """s3api on the proxy, tempauth's user as the key pair."""
        return Credentials(f"http://127.0.0.1:{self.ports['proxy']}", "", "s3", "admin:admin", "admin")


class PGNode(Node):
    """A throw-away PostgreSQL with its defaults' durability (fsync, synchronous commit),
    as ``lampi.testing.postgres`` starts it: the metadata of ``--cluster`` gateways."""

    name = "postgresql"

    def __init__(self, work_dir: Path) -> None:
        super().__init__(work_dir, 0)
        self.pg: Any = None
        self.version = ""

    def start(self) -> None:
        from lampi.testing import postgres

        found = postgres.bindir()
        if found is None:
            raise BenchError("--cluster needs PostgreSQL's initdb and pg_ctl: apt-get install postgresql "
                             "(Debian keeps them in /usr/lib/postgresql/<version>/bin)")
        # in the default temp dir, not the run's (private) work dir: run as root, the
        # server runs as the postgres user, which must reach its directory
        self.pg = postgres.PGCluster(found, durable=True)
        atexit.register(self.pg.stop)  # as CephCluster does: also when the caller's clean-up does not run
        try:
            self.pg.start()
        except (subprocess.SubprocessError, OSError) as exc:
            self.pg.stop()
            raise BenchError(f"starting PostgreSQL: {exc}") from None
        self.version = self.pg.version()

    @property
    def pids(self) -> list[int]:
        pid = self.pg.pid() if self.pg is not None else None
        return [pid] if pid else []

    def stop(self, grace: float = 15.0) -> None:
        if self.pg is not None:
            self.pg.stop()


class CephNode(Node):
    """A one-node Ceph (monitor + BlueStore OSD) without radosgw, for ``--cluster`` when
    ``--compare rgw`` does not start one to share; RGWNode adds radosgw to it."""

    name = "ceph"

    def __init__(self, work_dir: Path, bluestore_size: int, workers: int = 0) -> None:
        super().__init__(work_dir, workers)
        self.bluestore_size = bluestore_size
        self.cluster: Any = None
        self._sessions: set[int] = set()

    def _new_cluster(self) -> Any:
        from lampi.testing import ceph

        self.cluster = ceph.CephCluster("bluestore", root=self.work_dir / "ceph", bluestore_size=self.bluestore_size)
        self.procs = self.cluster.procs  # the same list: pids, sessions and stop see every daemon
        return self.cluster

    def start(self) -> None:
        from lampi.testing import ceph

        if not ceph.available():
            raise BenchError("--cluster needs Ceph's ceph-mon, ceph-osd and ceph (ceph-common), and python3-rados: "
                             "apt-get install --no-install-recommends ceph-mon ceph-osd ceph-common python3-rados")
        try:
            self._new_cluster().start()
        except RuntimeError as exc:
            raise BenchError(f"starting Ceph: {exc}") from None

    def sessions(self) -> set[int]:
        return self._sessions | super().sessions()

    def stop(self, grace: float = 15.0) -> None:
        self._sessions |= super().sessions()  # the cluster's stop empties its list of daemons
        if self.cluster is not None:
            self.cluster.stop()  # SIGKILL: a throw-away cluster, its directory removed
        super().stop(grace)


class ClusterNode(Node):
    """lampi as ``gateways`` gateways over one PostgreSQL (``meta_url``, a database of its
    own) and one Ceph's RADOS (``blob_url``: a pool shared with other clusters of the run,
    a namespace of its own), sharing one master key, as docs/scale-out.md deploys it. On
    one machine the gateways share its cores: ``workers`` in all, split among them. The
    server CPU counted for it is the gateways', PostgreSQL's and Ceph's."""

    POOL = "lampi-bench"

    def __init__(self, work_dir: Path, workers: int, gateways: int, pg: PGNode, ceph: Any) -> None:
        super().__init__(work_dir, workers)
        self.gateways = gateways
        self.name = f"cluster{gateways}"
        self.per_gateway = max(1, workers // gateways)
        self.pg, self.ceph = pg, ceph  # ceph: a lampi.testing.ceph.CephCluster
        self.ports: list[int] = []
        self.requests: list[int] = []  # requests each gateway logged (after ``stop``)

    def start(self) -> None:
        base = self.work_dir / self.name
        base.mkdir()
        from cryptography.fernet import Fernet

        key_file = base / "master.key"  # what `lampi master-key generate` prints
        key_file.touch(mode=0o600)
        key_file.write_bytes(Fernet.generate_key() + b"\n")
        try:
            self.ceph.create_pool(self.POOL, pgs=32)
        except RuntimeError as exc:
            if "already exists" not in str(exc):
                raise BenchError(f"creating the RADOS pool: {exc}") from None
        meta = self.pg.pg.create_db()
        blob = f"{self.ceph.url(self.POOL)}&namespace={self.name}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAMPI_")}
        t0 = time.monotonic()
        for i in range(self.gateways):  # one after the other: the first makes the schema and the admin
            port = free_port()
            log = f"{self.name}-gw{i + 1}.log"
            p = self._spawn([sys.executable, "-m", "lampi", "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--data-dir", str(base / f"gw{i + 1}"), "--workers", str(self.per_gateway),
                             "--meta-url", meta, "--blob-url", blob, "--master-key-file", str(key_file),
                             "--log-format", "json", "--console-port", "0"], log, env)
            wait_http(f"http://127.0.0.1:{port}/healthcheck", p, 120, self.work_dir / log)
            self.ports.append(port)
        self.startup_s = time.monotonic() - t0
        self.rc = parse_openrc((base / "gw1" / "openrc.sh").read_text())
        time.sleep(0.5)
        self.idle_rss, self.idle_pss = rssmod.rss(super().pids), rssmod.pss(super().pids)

    @property
    def pids(self) -> list[int]:
        return super().pids + self.pg.pids + [p.pid for p in self.ceph.procs if p.poll() is None]

    def _mirrors(self, url: str) -> tuple[str, ...]:
        first = f"http://127.0.0.1:{self.ports[0]}"
        return tuple(url.replace(first, f"http://127.0.0.1:{port}", 1) for port in self.ports[1:])

    def stop(self, grace: float = 15.0) -> None:
        super().stop(grace)
        self.requests = []
        for i in range(len(self.ports)):  # the access log's JSON lines: proof each gateway served
            try:
                with open(self.work_dir / f"{self.name}-gw{i + 1}.log", "rb") as f:
                    self.requests.append(sum(1 for line in f if b'"method":' in line and b'"status":' in line))
            except OSError:
                self.requests.append(0)

    def credentials(self) -> Credentials:
        c = v3_auth(self.rc)
        c.mirrors = self._mirrors(c.storage_url)
        return c

    def s3_credentials(self) -> Credentials:
        access, secret = ec2_keys(self.rc)
        url = f"http://127.0.0.1:{self.ports[0]}"
        return Credentials(url, "", "s3", access, secret, mirrors=self._mirrors(url))


class RGWNode(CephNode):
    """One Ceph monitor, one OSD (BlueStore on a sparse file) and radosgw; a user with an
    S3 key pair and a Swift subuser (v1.0 auth)."""

    name = "rgw"
    USER, ACCESS, SECRET, SWIFT_KEY = "bench", "LAMPIBENCHRGW", "lampi-bench-rgw-secret", "lampi-bench-swift"

    def __init__(self, work_dir: Path, workers: int, bluestore_size: int = 20 * 1024**3) -> None:
        super().__init__(work_dir, bluestore_size, workers)
        self.version = ""

    def start(self) -> None:
        from lampi.testing import ceph

        if not ceph.available(rgw=True):
            raise BenchError("--compare rgw needs Ceph's ceph-mon, ceph-osd, ceph (ceph-common) and radosgw: "
                             "apt-get install --no-install-recommends ceph-mon ceph-osd ceph-common radosgw")
        self.version = subprocess.run(["radosgw", "--version"], capture_output=True,
                                      text=True).stdout.split(" (")[0].replace("ceph version ", "").strip()
        t0 = time.monotonic()
        cluster = self._new_cluster()
        try:
            cluster.start()
            self.port = free_port()
            cluster.start_rgw(self.port)
            cluster.rgw_user(self.USER, self.ACCESS, self.SECRET, self.SWIFT_KEY)
        except RuntimeError as exc:
            raise BenchError(f"starting Ceph + radosgw: {exc}") from None
        self.startup_s = time.monotonic() - t0
        time.sleep(0.5)
        self.idle_rss, self.idle_pss = rssmod.rss(self.pids), rssmod.pss(self.pids)

    def credentials(self) -> Credentials:
        return v1_auth(f"http://127.0.0.1:{self.port}/auth/1.0", f"{self.USER}:swift", self.SWIFT_KEY)

    def s3_credentials(self) -> Credentials:
        return Credentials(f"http://127.0.0.1:{self.port}", "", "s3", self.ACCESS, self.SECRET)
