"""A throw-away one-node Ceph (one monitor, one OSD on 127.0.0.1) for tests and measurements,
and a radosgw (Ceph's S3/Swift gateway) on it for ``lampi bench --compare rgw``.

Everything lives in one temp directory: ``ceph.conf``, the monitor's and the OSD's data,
logs and sockets; no cephx (``auth ... = none``), pool size 1. The OSD keeps its data
with BlueStore on a sparse file (the real commit path) or in memory (``memstore``).
Both daemons run in the foreground as children of this process, in a session of their
own, and ``stop()`` kills them and removes the directory.

``start_rgw()`` adds a radosgw (Debian's ``radosgw`` package) listening on 127.0.0.1
(beast front end with ``tcp_nodelay=1``: without it small GETs stall near 300/s), and
``rgw_user()`` makes a user with an S3 key pair and a Swift subuser (v1.0 auth).

``available()`` says whether Debian's ``ceph-mon``/``ceph-osd``/``ceph`` are installed;
``LAMPI_REQUIRE_CEPH=1`` (set by ``.ci/run``) makes tests that need them fail instead
of skip when they are not.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

BINARIES = ("ceph-mon", "ceph-osd", "ceph", "monmaptool")
RGW_BINARIES = ("radosgw", "radosgw-admin")


def available(rgw: bool = False) -> bool:
    return all(shutil.which(b) for b in BINARIES + (RGW_BINARIES if rgw else ()))


def required() -> bool:
    return os.environ.get("LAMPI_REQUIRE_CEPH", "").strip().lower() in ("1", "true", "yes", "on")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CephCluster:
    def __init__(self, objectstore: str = "memstore", root: str | Path | None = None,
                 bluestore_size: int = 10 * 1024**3) -> None:
        self.objectstore = objectstore
        self.bluestore_size = bluestore_size  # a sparse file: costs what is written
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="lampi-ceph-"))
        self.conf = self.root / "ceph.conf"
        self.procs: list[subprocess.Popen[bytes]] = []

    # -- helpers ---------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        return {**os.environ, "CEPH_CONF": str(self.conf)}

    def ceph(self, *args: str, timeout: float = 120) -> str:
        out = subprocess.run(["ceph", "-c", str(self.conf), "--connect-timeout", "60", *args],
                             capture_output=True, text=True, timeout=timeout, env=self.env())
        if out.returncode != 0:
            raise RuntimeError(f"ceph {' '.join(args)}: {out.returncode} {out.stderr.strip()}")
        return out.stdout

    def url(self, pool: str, client: str = "admin") -> str:
        return f"rados://{pool}?conf={self.conf}&id={client}"

    def _spawn(self, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.root / "log" / f"{Path(args[0]).name}.out", "ab")
        proc = subprocess.Popen(list(args), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=self.env())
        log.close()
        self.procs.append(proc)
        return proc

    # -- start / stop ------------------------------------------------------------------

    def start(self, timeout: float = 180) -> CephCluster:
        atexit.register(self.stop)  # also when the caller's own clean-up does not run
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, timeout: float) -> None:
        r = self.root
        for d in ("run", "log", "mon", "osd/ceph-0"):
            (r / d).mkdir(parents=True, exist_ok=True)
        fsid = str(uuid.uuid4())
        port = _free_port()
        self.conf.write_text(f"""[global]
fsid = {fsid}
mon host = v2:127.0.0.1:{port}
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = false
ms bind msgr1 = false
ms bind ipv4 = true
public addr = 127.0.0.1
cluster addr = 127.0.0.1
run dir = {r}/run
admin socket = {r}/run/$name.asok
log file = {r}/log/$name.log
pid file = {r}/run/$name.pid
keyring = /dev/null
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
osd pool default pg num = 8
osd pool default pgp num = 8
mon max pg per osd = 1000
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
mon data avail crit = 1
mon data avail warn = 2

[mon]
mon data = {r}/mon/$cluster-$id

[osd]
osd data = {r}/osd/$cluster-$id
osd objectstore = {self.objectstore}
osd max object name len = 256
osd max object namespace len = 64
bluestore block create = true
bluestore block size = {self.bluestore_size}
bluestore fsck on mount = false
memstore device bytes = 4294967296
osd memory target = 1073741824
""")
        monmap = r / "monmap"
        subprocess.run(["monmaptool", "--create", "--clobber", "--fsid", fsid, "--addv", "a",
                        f"[v2:127.0.0.1:{port}]", str(monmap)], check=True, capture_output=True, env=self.env())
        subprocess.run(["ceph-mon", "-c", str(self.conf), "--mkfs", "-i", "a", "--monmap", str(monmap)],
                       check=True, capture_output=True, env=self.env())
        self._spawn("ceph-mon", "-f", "-c", str(self.conf), "-i", "a")
        osd_uuid = str(uuid.uuid4())
        osd_id = self.ceph("osd", "new", osd_uuid).strip()
        subprocess.run(["ceph-osd", "-c", str(self.conf), "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid],
                       check=True, capture_output=True, env=self.env(), timeout=300)
        self._spawn("ceph-osd", "-f", "-c", str(self.conf), "-i", osd_id)
        deadline = time.monotonic() + timeout
        while '"num_up_osds":1' not in self.ceph("osd", "stat", "-f", "json").replace(" ", ""):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the OSD did not come up; logs in {r / 'log'}")
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{p.args[0]} exited {p.returncode}; logs in {r / 'log'}")
            time.sleep(0.5)

    def create_pool(self, name: str, pgs: int = 8, timeout: float = 120) -> None:
        """A pool of size 1, ready for writes when this returns (its placement groups
        are active: the first write of a new pool otherwise waits for them)."""
        self.ceph("osd", "pool", "create", name, str(pgs), str(pgs))
        self.ceph("osd", "pool", "set", name, "size", "1", "--yes-i-really-mean-it")
        self.ceph("osd", "pool", "application", "enable", name, "lampi")
        deadline = time.monotonic() + timeout
        while True:
            probe = subprocess.run(["rados", "-c", str(self.conf), "-p", name, "stat", "lampi-pool-probe"],
                                   capture_output=True, text=True, timeout=timeout, env=self.env())
            if probe.returncode != 0 and "No such file" in probe.stderr:
                return  # the PG answered
            if time.monotonic() > deadline:
                raise RuntimeError(f"pool {name} not ready: {probe.stderr.strip()}")
            time.sleep(0.5)

    def start_rgw(self, port: int, timeout: float = 180) -> subprocess.Popen[bytes]:
        """A radosgw on 127.0.0.1:``port`` (it makes its pools on first start); returns
        when it answers HTTP."""
        import urllib.error
        import urllib.request

        with open(self.conf, "a") as f:
            # radosgw's own defaults ask for cephx and a secure monitor connection: this
            # cluster has no cephx. Swift tokens last a day (default 15 min: a long run
            # would see 401s).
            f.write(f"""
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:{port} tcp_nodelay=1
auth client required = none
ms mon client mode = crc
rgw swift token expiration = 86400
rgw data = {self.root}/rgw
""")
        (self.root / "rgw").mkdir(exist_ok=True)
        proc = self._spawn("radosgw", "-f", "-c", str(self.conf), "-n", "client.rgw.a")
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
                    return proc
            except (urllib.error.URLError, OSError):
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"radosgw exited {proc.returncode}; logs in {self.root / 'log'}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"radosgw did not answer on port {port}; logs in {self.root / 'log'}")
            time.sleep(0.2)

    def radosgw_admin(self, *args: str, timeout: float = 120) -> str:
        out = subprocess.run(["radosgw-admin", "-c", str(self.conf), "-n", "client.admin", *args],
                             capture_output=True, text=True, timeout=timeout, env=self.env())
        if out.returncode != 0:
            raise RuntimeError(f"radosgw-admin {' '.join(args[:2])}: {out.returncode} {out.stderr.strip()[-500:]}")
        return out.stdout

    def rgw_user(self, uid: str, access: str, secret: str, swift_key: str) -> None:
        """An RGW user with the S3 key pair ``access``/``secret`` and a Swift subuser
        ``uid:swift`` (v1.0 auth key ``swift_key``, full access)."""
        self.radosgw_admin("user", "create", f"--uid={uid}", f"--display-name={uid}",
                           f"--access-key={access}", f"--secret-key={secret}")
        self.radosgw_admin("subuser", "create", f"--uid={uid}", f"--subuser={uid}:swift", "--access=full",
                           "--key-type=swift", f"--secret-key={swift_key}")

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(30)
        self.procs.clear()
        shutil.rmtree(self.root, ignore_errors=True)
