"""Two `lampi serve` gateways over one PostgreSQL database (meta_url, issue 13).

A throw-away PostgreSQL cluster (tests/pgcluster.py: initdb + pg_ctl in a temp dir);
two gateways with ``--meta-url`` on it and, until the RADOS BlobStore lands, one data
dir for the blobs. What one writes the other reads, lists and deletes, through
python-swiftclient and boto3. Without PostgreSQL these skip, or fail in CI
(LAMPI_REQUIRE_POSTGRES=1).
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.functional.conftest import LampiServer, free_port, lampi_cmd, swift_at
from tests.pgcluster import PGCluster, running


@pytest.fixture(scope="module")
def cluster() -> Iterator[PGCluster]:
    with running() as c:
        yield c


@pytest.fixture(scope="module")
def gateways(cluster: PGCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LampiServer, ...]]:
    url = cluster.create_db()
    data = tmp_path_factory.mktemp("pg-gw") / "data"
    servers = [LampiServer(data_dir=data, port=free_port(), extra_args=["--meta-url", url]) for _ in range(2)]
    try:
        for s in servers:
            s.start()
        yield tuple(servers)
    finally:
        for s in servers:
            if s.proc is not None:
                s.stop()


def meta_url(server: LampiServer) -> str:
    return server.extra_args[server.extra_args.index("--meta-url") + 1]


def test_swift_written_on_one_gateway_read_listed_deleted_on_the_other(gateways: tuple[LampiServer, ...]) -> None:
    import swiftclient

    a, b = (swift_at(s) for s in gateways)
    c = "pg" + uuid.uuid4().hex[:10]
    a.put_container(c)
    names = [f"dir/{i:03d}" for i in range(30)] + ["top"]
    for n in names:
        a.put_object(c, n, contents=f"body of {n}".encode())
    _, body = b.get_object(c, "dir/007")
    assert body == b"body of dir/007"
    head, listing = b.get_container(c, full_listing=True)
    assert [o["name"] for o in listing] == sorted(names)
    assert head["x-container-object-count"] == str(len(names))
    _, folded = b.get_container(c, delimiter="/")
    assert [o.get("subdir") or o.get("name") for o in folded] == ["dir/", "top"]
    b.delete_object(c, "top")
    with pytest.raises(swiftclient.ClientException) as exc:
        a.get_object(c, "top")
    assert exc.value.http_status == 404
    assert int(a.head_account()["x-account-object-count"]) >= len(names) - 1


def test_s3_written_on_one_gateway_read_listed_deleted_on_the_other(gateways: tuple[LampiServer, ...]) -> None:
    import boto3
    import botocore.exceptions

    a, b = gateways
    # a key made by an admin command on the same database, used on both gateways
    out = a.cli("credential", "create", "admin", "admin", "--json", "--meta-url", meta_url(a))
    import json

    keys = json.loads(out.stdout)
    access, secret = keys.get("access"), keys.get("secret")
    s3a, s3b = (boto3.client("s3", endpoint_url=s.url, aws_access_key_id=access, aws_secret_access_key=secret,
                             region_name="us-east-1") for s in gateways)
    bucket = "pg" + uuid.uuid4().hex[:10]
    s3a.create_bucket(Bucket=bucket)
    for i in range(12):
        s3a.put_object(Bucket=bucket, Key=f"k/{i:02d}", Body=b"x" * i)
    assert s3b.get_object(Bucket=bucket, Key="k/05")["Body"].read() == b"x" * 5
    listed = s3b.list_objects_v2(Bucket=bucket, Prefix="k/", MaxKeys=5)
    assert [o["Key"] for o in listed["Contents"]] == [f"k/{i:02d}" for i in range(5)]
    assert listed["IsTruncated"]
    s3b.delete_object(Bucket=bucket, Key="k/05")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3a.head_object(Bucket=bucket, Key="k/05")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    # a key deleted by an admin command is refused by both gateways on their next request
    # (their key caches follow the database's identity generation)
    a.cli("credential", "delete", access, "--meta-url", meta_url(a))
    for client in (s3a, s3b):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            client.list_objects_v2(Bucket=bucket)
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    # the gateways keep nothing of the metadata in the data dir
    assert not (a.data_dir / "meta.db").exists()


def _serve(url: str, data: Path) -> subprocess.CompletedProcess[str]:
    """`lampi serve` expected to refuse to start (it would otherwise run until killed)."""
    return subprocess.run([*lampi_cmd(), "serve", "--host", "127.0.0.1", "--port", str(free_port()),
                           "--data-dir", str(data), "--meta-url", url, "--console-port", "0"], capture_output=True, text=True,
                          timeout=120, env={k: v for k, v in os.environ.items() if k != "LAMPI_CONFIG"})


def test_older_schema_refused_until_db_upgrade(cluster: PGCluster, tmp_path: Path) -> None:
    import psycopg

    url = cluster.create_db()
    with psycopg.connect(url, autocommit=True) as conn:  # a schema older than any lampi's: version 0
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (0)")
    res = _serve(url, tmp_path / "data")
    assert res.returncode == 2, res.stderr
    assert "older than this lampi's" in res.stderr and "lampi db upgrade" in res.stderr
    # admin commands refuse too
    res = subprocess.run([*lampi_cmd(), "project", "list", "--data-dir", str(tmp_path / "data"), "--meta-url", url],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "lampi db upgrade" in res.stderr, res.stderr
    up = subprocess.run([*lampi_cmd(), "db", "upgrade", "--meta-url", url], capture_output=True, text=True,
                        timeout=60, check=True)
    from lampi.store.meta.postgres.schema import SCHEMA_VERSION

    assert f"schema version 0 -> {SCHEMA_VERSION}" in up.stdout
    again = subprocess.run([*lampi_cmd(), "db", "upgrade"], capture_output=True, text=True, timeout=60, check=True,
                           env={**os.environ, "LAMPI_META_URL": url})
    assert "up to date" in again.stdout
    srv = LampiServer(data_dir=tmp_path / "data", port=free_port(), extra_args=["--meta-url", url])
    try:
        srv.start()
        assert swift_at(srv).head_account()["x-account-container-count"] == "0"
    finally:
        if srv.proc is not None:
            srv.stop()


def test_newer_schema_and_unreachable_database_refused(cluster: PGCluster, tmp_path: Path) -> None:
    import psycopg

    url = cluster.create_db()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (999)")
    res = _serve(url, tmp_path / "data")
    assert res.returncode == 2 and "newer than this lampi's" in res.stderr, res.stderr
    dead = f"postgresql://postgres:hunter2-secret@127.0.0.1:{free_port()}/nothing"
    res = _serve(dead, tmp_path / "data2")
    assert res.returncode == 2 and "cannot connect" in res.stderr, res.stderr
    assert "hunter2" not in res.stderr + res.stdout  # the message never shows the password


def test_postgresql_restart_gives_503s_then_full_service(cluster: PGCluster, tmp_path: Path) -> None:
    """While the database is down requests are answered 503 (not 500, no worker lost);
    once it is back the same gateway serves everything again, within seconds however long
    it was down: 20 s down, psycopg_pool's reconnect backoff (1, 2, 4, 8, 16 s) had its
    next attempt up to 11 s after the database was back, and every request until then was a
    503 (the next test's logins met it in CI)."""
    import requests

    url = cluster.create_db()
    srv = LampiServer(data_dir=tmp_path / "data", port=free_port(), workers=2, extra_args=["--meta-url", url])
    try:
        srv.start()
        conn = swift_at(srv)
        storage_url, token = conn.get_auth()
        conn.put_container("c")
        conn.put_object("c", "before", contents=b"1")
        assert requests.get(f"{srv.url}/_lampi/ready", timeout=60).status_code == 200
        cluster.stop_server()
        down = time.monotonic()
        try:
            statuses = {requests.get(f"{storage_url}/c/before", headers={"X-Auth-Token": token}, timeout=60).status_code
                        for _ in range(3)}
            assert statuses <= {503}, statuses
            for _ in range(3):  # readiness (issue 14), whichever worker answers
                ready = requests.get(f"{srv.url}/_lampi/ready", timeout=60)
                assert ready.status_code == 503 and "metadata store" in ready.text, ready.text
            time.sleep(max(0.0, 16 - (time.monotonic() - down)))
        finally:
            cluster.start_server()
        back = time.monotonic()
        while True:  # the pools reconnect: every worker serves again
            codes = [requests.put(f"{storage_url}/c/after-{i}", data=b"2", headers={"X-Auth-Token": token},
                                  timeout=60).status_code for i in range(8)]
            if all(c == 201 for c in codes):
                break
            assert set(codes) <= {201, 503}, codes
            # the pools' next connection attempt is at most ~2 s away (RECONNECT_GIVE_UP);
            # the rest is room for a busy machine
            assert time.monotonic() - back < 10, (codes, time.monotonic() - back)
            time.sleep(0.5)
        _, listing = conn.get_container("c")
        assert {o["name"] for o in listing} >= {"before", "after-0", "after-7"}
        assert requests.get(f"{srv.url}/_lampi/ready", timeout=60).status_code == 200
        assert srv.proc is not None and srv.proc.poll() is None
    finally:
        if srv.proc is not None:
            srv.stop()


def _serialization_failures(cluster: PGCluster) -> int:
    """PostgreSQL's log lines for transactions it aborted as not serializable."""
    try:
        return (cluster.dir / "log").read_text(errors="replace").count("could not serialize access")
    except OSError:
        return 0


def test_concurrent_writers_in_one_container_counted_exactly_without_aborts(
        cluster: PGCluster, gateways: tuple[LampiServer, ...]) -> None:
    """16 writers on both gateways PUT into one container at once, then 16 delete half:
    the container's counts are exact on both gateways, and PostgreSQL aborted none of
    these transactions (writes of one container wait in line for each other: before,
    each one updated the container's counter row, and 16 at once drew ~3 serialization
    failures per write, each retried after a back-off)."""
    from concurrent.futures import ThreadPoolExecutor

    c = "pgq" + uuid.uuid4().hex[:10]
    conns = [swift_at(gateways[i % 2]) for i in range(16)]
    conns[0].put_container(c)
    before = _serialization_failures(cluster)

    def put(i: int) -> None:
        for k in range(10):
            conns[i].put_object(c, f"w{i:02d}/{k}", contents=b"x" * (i + k + 1))

    def delete(i: int) -> None:
        for k in range(0, 10, 2):
            conns[i].delete_object(c, f"w{i:02d}/{k}")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(16)))
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(delete, range(16)))
    left = [(i, k) for i in range(16) for k in range(1, 10, 2)]
    for conn in conns[:2]:  # one on each gateway
        head = conn.head_container(c)
        assert head["x-container-object-count"] == str(len(left))
        assert head["x-container-bytes-used"] == str(sum(i + k + 1 for i, k in left))
    assert _serialization_failures(cluster) == before
