"""``lampi migrate`` throughput: a store of ``--objects`` small objects (4 KiB, through a
real `lampi serve` and python-swiftclient) and ``--large`` 64 MiB ones, the server
stopped, then ``lampi migrate --json`` into SQLite + files on the same disk and into
PostgreSQL + a one-node Ceph (BlueStore on a sparse file) started here (tests/pgcluster.py,
tests/ceph_cluster.py). Prints one line per target: objects/s, MB/s, seconds.

    python benchmarks/migrate.py [--objects 2000] [--large 2] [--jobs 8] [--store bluestore|memstore]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.functional.conftest import LampiServer, free_port, lampi_cmd  # noqa: E402

MiB = 1024 * 1024


def build(data: Path, objects: int, large: int) -> None:
    import swiftclient

    srv = LampiServer(data_dir=data, port=free_port(), workers=2)
    srv.start()
    try:
        rc = srv.openrc()

        def conn() -> swiftclient.Connection:
            return swiftclient.Connection(
                authurl=f"{srv.url}/v3", user=rc["OS_USERNAME"], key=rc["OS_PASSWORD"], auth_version="3",
                os_options={"user_domain_name": "Default", "project_domain_name": "Default",
                            "project_name": rc["OS_PROJECT_NAME"]})

        conn().put_container("bench")
        body = os.urandom(4096)

        def put(rng: range) -> None:
            c = conn()
            for i in rng:
                c.put_object("bench", f"small/{i:06d}", body)

        with ThreadPoolExecutor(16) as ex:
            list(ex.map(put, [range(i, objects, 16) for i in range(16)]))
        for i in range(large):
            conn().put_object("bench", f"large/{i}", os.urandom(64 * MiB))
    finally:
        srv.stop()


def run(*args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMPI_")}
    t = time.monotonic()
    res = subprocess.run([*lampi_cmd(), "migrate", *args, "--json"], capture_output=True, text=True, env=env)
    if res.returncode:
        raise SystemExit(f"lampi migrate failed: {res.stderr}")
    rep = json.loads(res.stdout)
    rep["wall"] = time.monotonic() - t
    return rep


def line(what: str, rep: dict) -> None:
    print(f"{what:<28} {rep['objects']:>6} objects {rep['blobs']:>6} blobs {rep['bytes_copied'] / 1e6:>8.1f} MB  "
          f"{rep['seconds']:6.2f} s (blobs {rep['blob_seconds']:.2f} s, process {rep['wall']:.2f} s)  "
          f"{rep['objects'] / rep['seconds']:7.0f} objects/s  {rep['bytes_copied'] / 1e6 / rep['seconds']:6.1f} MB/s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=2000)
    ap.add_argument("--large", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--store", default="bluestore")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lampi-migrate-bench-"))
    src = tmp / "src"
    build(src, a.objects, a.large)
    line("SQLite + files -> files", run("--data-dir", str(src), "--to-data-dir", str(tmp / "files"),
                                          "--jobs", str(a.jobs)))
    from tests import ceph_cluster
    from tests.pgcluster import PGCluster, _bindir

    if _bindir() is None or not ceph_cluster.available():
        print("PostgreSQL or Ceph not installed: the PostgreSQL + RADOS line skipped")
        return
    pg = PGCluster(_bindir())
    ceph = ceph_cluster.CephCluster(a.store)
    try:
        pg.start()
        ceph.start()
        ceph.create_pool("bench")
        blob_url = f"{ceph.url('bench')}&namespace={uuid.uuid4().hex}"
        line("-> PostgreSQL + RADOS", run("--data-dir", str(src), "--to-data-dir", str(tmp / "gw"),
                                          "--to-meta-url", pg.create_db(), "--to-blob-url", blob_url,
                                          "--jobs", str(a.jobs)))
    finally:
        ceph.stop()
        pg.stop()
        subprocess.run(["rm", "-rf", str(tmp)], check=False)


if __name__ == "__main__":
    main()
