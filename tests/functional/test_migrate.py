"""``lampi migrate``: a store built through the real server with real clients
(python-swiftclient, boto3, the lampi CLI), the server stopped, the store copied into
SQLite + files (fast) and into PostgreSQL + Ceph RADOS (throw-away ones:
tests/pgcluster.py, tests/ceph_cluster.py; skipped without them, failed with
LAMPI_REQUIRE_POSTGRES / LAMPI_REQUIRE_CEPH), and `lampi serve` on the copy checked
with the same clients: every table row equal, listings and bytes equal, the S3 key,
token login of two users, temp URL, public ACL, quotas, versions, SLO/DLO, SSE, object
lock, bucket policy/lifecycle/CORS, and the multipart upload left in progress completed
on the copy. Then: a migrate killed with SIGKILL mid-way and run again (nothing twice),
and refusals (exit status 2, one line, no traceback).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.functional.conftest import LampiServer, free_port, lampi_cmd

MiB = 1024 * 1024
PASSWORD = "alice-s3cret"


def payload(n: int, seed: int) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest() * 2048
    return (block * (n // len(block) + 1))[:n]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def migrate(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMPI_")}
    return subprocess.run([*lampi_cmd(), "migrate", *args], capture_output=True, text=True, timeout=timeout,
                          env=env, check=False)


def swift_of(srv: LampiServer, user: str | None = None, password: str | None = None,
             project: str | None = None):  # noqa: ANN201
    import swiftclient

    rc = srv.openrc()
    return swiftclient.Connection(
        authurl=f"{srv.url}/v3", user=user or rc["OS_USERNAME"], key=password or rc["OS_PASSWORD"],
        os_options={"user_domain_name": "Default", "project_domain_name": "Default",
                    "project_name": project or rc["OS_PROJECT_NAME"]},
        auth_version="3", retries=0)


def s3_of(srv: LampiServer, keys: dict[str, str]):  # noqa: ANN201
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=srv.url, aws_access_key_id=keys["access"],
                        aws_secret_access_key=keys["secret"], region_name="us-east-1",
                        config=Config(retries={"max_attempts": 1}))


# -- the source store -----------------------------------------------------------------------


class Source:
    def __init__(self, data_dir: Path, keys: dict[str, str], pending: tuple[str, str, str], segs: list[bytes],
                 tempurl_key: str) -> None:
        self.data_dir = data_dir
        self.keys = keys
        self.pending = pending  # (bucket, key, upload id) of the multipart upload left in progress
        self.segs = segs
        self.tempurl_key = tempurl_key
        self.snapshot: dict[str, Any] = {}
        self.rows: dict[str, list[tuple[Any, ...]]] = {}


def build(srv: LampiServer) -> Source:
    """Fill the store through the server: every kind of thing lampi migrate must move."""
    from datetime import datetime, timedelta, timezone

    srv.cli("project", "create", "lab")
    srv.cli("user", "create", "alice", "--password", PASSWORD, "--project", "lab", "--role", "member")
    srv.cli("role", "create", "auditor")
    srv.cli("role", "grant", "alice", "admin", "reader")
    srv.cli("project", "set-quota", "lab", "--bytes", "5000000000", "--containers", "77")
    keys = json.loads(srv.cli("credential", "create", "admin", "admin", "--json").stdout)
    keys = {"access": keys["access"], "secret": keys["secret"]}

    c = swift_of(srv)
    tempurl_key = "temp-" + uuid.uuid4().hex
    c.post_account({"X-Account-Meta-Temp-URL-Key": tempurl_key, "X-Account-Meta-Color": "blue"})
    c.put_container("plain", headers={"X-Container-Meta-Owner": "lab"})
    for i, n in enumerate([0, 1, 1000, 256 * 1024 + 7, 3 * MiB + 5]):
        c.put_object("plain", f"obj-{i}", payload(n, i), content_type="application/x-test",
                     headers={"X-Object-Meta-Seq": str(i)})
    c.put_object("plain", "dir/ünïcødé ✓", b"unicode name", headers={"X-Delete-At": str(int(time.time()) + 86400)})
    c.put_container("public", headers={"X-Container-Read": ".r:*,.rlistings"})
    c.put_object("public", "hello.txt", b"hello world")
    c.put_container("quota", headers={"X-Container-Meta-Quota-Bytes": "100"})
    c.put_object("quota", "small", b"q" * 50)
    # SLO: two 1 MiB segments and a manifest; DLO: segments under a prefix and a manifest
    segs = [payload(MiB, 100), payload(MiB, 101)]
    c.put_container("segs")
    for i, s in enumerate(segs):
        c.put_object("segs", f"slo/{i}", s)
    manifest = [{"path": f"/segs/slo/{i}", "etag": md5(s), "size_bytes": len(s)} for i, s in enumerate(segs)]
    c.put_container("large")
    c.put_object("large", "slo", json.dumps(manifest), query_string="multipart-manifest=put")
    for i in range(3):
        c.put_object("segs", f"dlo/{i:03d}", payload(1000 + i, 200 + i))
    c.put_object("large", "dlo", b"", headers={"X-Object-Manifest": "segs/dlo/"})
    # Swift object versioning: three versions and a delete marker
    c.put_container("ver", headers={"X-Versions-Enabled": "true"})
    for i in range(3):
        c.put_object("ver", "doc", f"version {i}".encode())
    c.put_object("ver", "gone", b"soon deleted")
    c.delete_object("ver", "gone")

    s3 = s3_of(srv, keys)
    # multipart: one completed, one left in progress
    s3.create_bucket(Bucket="s3mpu")
    up = s3.create_multipart_upload(Bucket="s3mpu", Key="done", ContentType="application/x-mpu")
    parts = []
    for n, body in enumerate([payload(5 * MiB, 300), payload(1234, 301)], start=1):
        r = s3.upload_part(Bucket="s3mpu", Key="done", UploadId=up["UploadId"], PartNumber=n, Body=body)
        parts.append({"ETag": r["ETag"], "PartNumber": n})
    s3.complete_multipart_upload(Bucket="s3mpu", Key="done", UploadId=up["UploadId"],
                                 MultipartUpload={"Parts": parts})
    pending = s3.create_multipart_upload(Bucket="s3mpu", Key="pending")
    s3.upload_part(Bucket="s3mpu", Key="pending", UploadId=pending["UploadId"], PartNumber=1,
                   Body=payload(5 * MiB, 400))
    s3.put_bucket_policy(Bucket="s3mpu", Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Sid": "pub", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                       "Resource": "arn:aws:s3:::s3mpu/pub/*"}]}))
    s3.put_object(Bucket="s3mpu", Key="pub/open", Body=b"open to all")
    s3.put_bucket_lifecycle_configuration(Bucket="s3mpu", LifecycleConfiguration={"Rules": [
        {"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 30}}]})
    s3.put_bucket_cors(Bucket="s3mpu", CORSConfiguration={"CORSRules": [
        {"AllowedMethods": ["GET"], "AllowedOrigins": ["https://example.org"]}]})
    # S3 versioning, SSE-S3, object lock
    s3.create_bucket(Bucket="s3ver")
    s3.put_bucket_versioning(Bucket="s3ver", VersioningConfiguration={"Status": "Enabled"})
    for i in range(2):
        s3.put_object(Bucket="s3ver", Key="k", Body=f"s3 version {i}".encode())
    s3.delete_object(Bucket="s3ver", Key="k")
    s3.create_bucket(Bucket="s3sse")
    s3.put_object(Bucket="s3sse", Key="secret", Body=payload(70000, 500), ServerSideEncryption="AES256")
    s3.create_bucket(Bucket="s3lock", ObjectLockEnabledForBucket=True)
    until = (datetime.now(timezone.utc) + timedelta(days=2)).replace(microsecond=0)
    s3.put_object(Bucket="s3lock", Key="kept", Body=b"locked bytes", ObjectLockMode="GOVERNANCE",
                  ObjectLockRetainUntilDate=until)
    return Source(srv.data_dir, keys, ("s3mpu", "pending", pending["UploadId"]), segs, tempurl_key)


_HEADERS = ("x-container-object-count", "x-container-bytes-used", "x-container-read", "x-versions-enabled",
            "x-storage-policy", "etag", "content-length", "content-type", "x-static-large-object",
            "x-object-manifest", "last-modified", "x-delete-at", "x-account-object-count",
            "x-account-bytes-used", "x-account-container-count")


def _keep(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k in _HEADERS or k.startswith(("x-container-meta-",
                                                                               "x-object-meta-",
                                                                               "x-account-meta-"))}


def snapshot(srv: LampiServer, keys: dict[str, str]) -> dict[str, Any]:
    """What the clients see of the store (everything but what a new server changes)."""
    c = swift_of(srv)
    out: dict[str, Any] = {}
    head, containers = c.get_account(full_listing=True)
    out["account"] = (_keep(head), containers)
    for cont in containers:
        name = cont["name"]
        h, listing = c.get_container(name, full_listing=True)
        out[f"c:{name}"] = (_keep(h), listing)
        for o in listing:
            oh, body = c.get_object(name, o["name"])
            out[f"o:{name}/{o['name']}"] = (_keep(oh), md5(body), len(body))
    _, versions = c.get_container("ver", query_string="versions")
    out["swift-versions"] = versions
    s3 = s3_of(srv, keys)
    out["s3-versions"] = [(v["Key"], v["VersionId"], v["ETag"], v["Size"], v["IsLatest"])
                          for v in s3.list_object_versions(Bucket="s3ver").get("Versions", [])]
    out["s3-markers"] = [(m["Key"], m["VersionId"], m["IsLatest"])
                         for m in s3.list_object_versions(Bucket="s3ver").get("DeleteMarkers", [])]
    out["uploads"] = [(u["Key"], u["UploadId"]) for u in s3.list_multipart_uploads(Bucket="s3mpu")["Uploads"]]
    out["parts"] = [(p["PartNumber"], p["ETag"], p["Size"])
                    for p in s3.list_parts(Bucket="s3mpu", Key="pending", UploadId=out["uploads"][0][1])["Parts"]]
    out["policy"] = s3.get_bucket_policy(Bucket="s3mpu")["Policy"]
    out["lifecycle"] = s3.get_bucket_lifecycle_configuration(Bucket="s3mpu")["Rules"]
    out["cors"] = s3.get_bucket_cors(Bucket="s3mpu")["CORSRules"]
    sse = s3.get_object(Bucket="s3sse", Key="secret")
    out["sse"] = (sse["ServerSideEncryption"], md5(sse["Body"].read()))
    out["retention"] = s3.get_object_retention(Bucket="s3lock", Key="kept")["Retention"]
    return out


def all_rows(meta_url: str, data_dir: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every migrated table, read through the MetaStore."""
    from lampi.store.meta.base import MIGRATED_TABLES
    from lampi.store.meta.factory import open_meta

    async def go() -> dict[str, list[tuple[Any, ...]]]:
        meta = open_meta(meta_url, data_dir)
        try:
            out = {}
            for table, _pk in MIGRATED_TABLES:
                cols = await meta.table_columns(table)
                rows = await meta.export_rows(table, None, 1_000_000)
                out[table] = sorted(tuple(sorted(zip(cols, r, strict=True))) for r in rows)
            return out
        finally:
            await meta.close()

    return asyncio.run(go())


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Source]:
    base = tmp_path_factory.mktemp("migrate-src")
    # objects up to 100 bytes inline (the versions, the short ones), the rest in blob files:
    # both kinds move
    srv = LampiServer(data_dir=base / "data", port=free_port(), extra_args=["--inline-max", "100"])
    srv.start()
    try:
        src = build(srv)
        src.snapshot = snapshot(srv, src.keys)
    finally:
        srv.stop()
    src.rows = all_rows("", src.data_dir)
    assert len(src.rows["inline_blobs"]) >= 10
    yield src


# -- checks on the copy -----------------------------------------------------------------------


def check_served(src: Source, target: LampiServer) -> None:
    """The copy, served, is the source: as the clients see it, and it works."""
    import botocore.exceptions
    import swiftclient
    from swiftclient.utils import generate_temp_url

    assert snapshot(target, src.keys) == src.snapshot
    # token login of the admin and of alice (password hashes moved as they are)
    alice = swift_of(target, "alice", PASSWORD, "lab")
    alice.put_container("alice-new")
    assert [c["name"] for c in alice.get_account()[1]] == ["alice-new"]
    c = swift_of(target)
    # public read ACL, anonymous
    storage_url = c.get_auth()[0]
    assert requests.get(f"{storage_url}/public/hello.txt", timeout=30).content == b"hello world"
    # temp URL with the account's key
    path = generate_temp_url(f"/v1/{storage_url.rsplit('/v1/', 1)[1]}/plain/obj-2", 600, src.tempurl_key, "GET")
    r = requests.get(target.url + path, timeout=30)
    assert r.status_code == 200 and r.content == payload(1000, 2)
    # the container quota holds: 50 of 100 bytes used
    with pytest.raises(swiftclient.ClientException) as exc:
        c.put_object("quota", "too-much", b"x" * 60)
    assert exc.value.http_status == 413
    # SLO / DLO bytes
    assert c.get_object("large", "slo")[1] == b"".join(src.segs)
    assert c.get_object("large", "dlo")[1] == b"".join(payload(1000 + i, 200 + i) for i in range(3))
    # S3: the key works, the upload left in progress completes on the copy
    s3 = s3_of(target, src.keys)
    bucket, key, upload_id = src.pending
    r2 = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=2, Body=b"tail")
    parts = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)["Parts"]
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={
        "Parts": [{"ETag": p["ETag"], "PartNumber": p["PartNumber"]} for p in parts[:1]]
        + [{"ETag": r2["ETag"], "PartNumber": 2}]})
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == payload(5 * MiB, 400) + b"tail"
    assert requests.get(f"{target.url}/s3mpu/pub/open", timeout=30).content == b"open to all"  # the policy
    # object lock holds on the copy
    vid = s3.head_object(Bucket="s3lock", Key="kept")["VersionId"]
    with pytest.raises(botocore.exceptions.ClientError):
        s3.delete_object(Bucket="s3lock", Key="kept", VersionId=vid)


def summary(res: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    return json.loads(res.stdout)


# -- SQLite + files → SQLite + files ------------------------------------------------------------


def test_migrate_into_sqlite_and_files(source: Source, tmp_path: Path) -> None:
    dst = tmp_path / "copy"
    rep = summary(migrate("--data-dir", str(source.data_dir), "--to-data-dir", str(dst), "--json"))
    assert rep["missing_in_source"] == []
    assert rep["blobs_copied"] == rep["blobs"] > 10 and rep["blobs_already_copied"] == 0
    assert rep["rows"]["objects"] == len(source.rows["objects"])
    assert rep["keys_written"] >= 3  # token, credential and SSE keys at least
    assert all_rows("", dst) == source.rows
    nblobs = sum(len(f) for _, _, f in os.walk(dst / "blobs"))
    assert nblobs == rep["blobs"]
    # run again: nothing copied twice, nothing changes
    again = summary(migrate("--data-dir", str(source.data_dir), "--to-data-dir", str(dst), "--json"))
    assert again["blobs_copied"] == 0 and again["blobs_already_copied"] == rep["blobs"]
    assert all_rows("", dst) == source.rows
    assert sum(len(f) for _, _, f in os.walk(dst / "blobs")) == nblobs

    target = LampiServer(data_dir=dst, port=free_port())
    target.start()
    try:
        check_served(source, target)
    finally:
        target.stop()
    # and the copy is clean
    fsck = subprocess.run([*lampi_cmd(), "fsck", "--data-dir", str(dst), "--dry-run"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


# -- into PostgreSQL + RADOS --------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg() -> Iterator[Any]:
    from tests.pgcluster import running

    with running() as c:
        yield c


def pool_heads(ceph: Any, url: str) -> set[str]:
    from lampi.store.blob.rados import RadosBlobStore

    store = RadosBlobStore.from_url(url)
    return {name for name, _size, _mtime in store.iter_blobs()}


def test_migrate_into_postgres_and_rados(source: Source, pg: Any, ceph: Any, tmp_path: Path) -> None:
    from tests.conftest import CEPH_POOL

    meta_url = pg.create_db()
    blob_url = f"{ceph.url(CEPH_POOL)}&namespace={uuid.uuid4().hex}"
    dst = tmp_path / "gateway"
    args = ["--data-dir", str(source.data_dir), "--to-data-dir", str(dst), "--to-meta-url", meta_url,
            "--to-blob-url", blob_url]
    started = time.monotonic()
    rep = summary(migrate(*args, "--json"))
    took = time.monotonic() - started
    print(f"\nmigrated {rep['objects']} objects, {rep['blobs']} blobs, {rep['bytes_copied']} bytes into "
          f"PostgreSQL + RADOS in {rep['seconds']:.2f} s ({took:.2f} s with start-up)")
    assert rep["blobs_copied"] == rep["blobs"] and rep["missing_in_source"] == []
    assert all_rows(meta_url, dst) == source.rows
    assert len(pool_heads(ceph, blob_url)) == rep["blobs"]
    assert not (dst / "blobs").exists() or not any((dst / "blobs").iterdir())  # bytes in RADOS only
    again = summary(migrate(*args, "--json"))
    assert again["blobs_copied"] == 0 and again["blobs_already_copied"] == rep["blobs"]
    assert all_rows(meta_url, dst) == source.rows

    target = LampiServer(data_dir=dst, port=free_port(), extra_args=["--meta-url", meta_url, "--blob-url", blob_url])
    target.start()
    try:
        check_served(source, target)
    finally:
        target.stop()


# -- interrupted, then run again ---------------------------------------------------------------


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A store of 400 small objects in blob files (as a store written with inline blobs
    off keeps them): an interrupted migrate has 400 blobs to copy."""
    base = tmp_path_factory.mktemp("migrate-many")
    srv = LampiServer(data_dir=base / "data", port=free_port(), extra_args=["--inline-max", "0"])
    srv.start()
    try:
        swift_of(srv).put_container("many")

        def put(i: int) -> None:
            swift_of(srv).put_object("many", f"o{i:04d}", payload(100 + i, i))

        with ThreadPoolExecutor(8) as ex:
            list(ex.map(put, range(400)))
    finally:
        srv.stop()
    yield base / "data"


def _count_files(root: Path) -> int:
    return sum(len(f) for _, _, f in os.walk(root)) if root.exists() else 0


def kill_midway(args: list[str], done: Any, total: int) -> None:
    """Start lampi migrate with ``args``; SIGKILL it once ``done()`` says some blobs are
    copied (and the copy is not finished)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMPI_")}
    proc = subprocess.Popen([*lampi_cmd(), "migrate", *args, "--jobs", "1"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            n = done()
            if n >= 20:
                break
            time.sleep(0.01)
        assert proc.poll() is None, "lampi migrate finished before it could be interrupted"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert 0 < done() < total


def test_interrupted_migrate_continues_into_files(many: Path, tmp_path: Path) -> None:
    dst = tmp_path / "copy"
    args = ["--data-dir", str(many), "--to-data-dir", str(dst)]
    kill_midway(args, lambda: _count_files(dst / "blobs"), 400)
    rep = summary(migrate(*args, "--json"))
    assert rep["blobs"] == 400 and rep["blobs_already_copied"] > 0
    assert rep["blobs_copied"] + rep["blobs_already_copied"] == 400
    assert _count_files(dst / "blobs") == 400  # none twice
    assert rep["leftovers_removed"] <= 1 and not list((dst / "tmp").iterdir())  # the blob cut short
    assert all_rows("", dst) == all_rows("", many)
    target = LampiServer(data_dir=dst, port=free_port())
    target.start()
    try:
        c = swift_of(target)
        head, listing = c.get_container("many", full_listing=True)
        assert head["x-container-object-count"] == "400" and len(listing) == 400
        for i in (0, 199, 399):
            assert c.get_object("many", f"o{i:04d}")[1] == payload(100 + i, i)
    finally:
        target.stop()


def test_interrupted_migrate_continues_into_rados(many: Path, pg: Any, ceph: Any, tmp_path: Path) -> None:
    from tests.conftest import CEPH_POOL

    meta_url = pg.create_db()
    blob_url = f"{ceph.url(CEPH_POOL)}&namespace={uuid.uuid4().hex}"
    from lampi.store.blob.rados import RadosBlobStore

    store = RadosBlobStore.from_url(blob_url)
    args = ["--data-dir", str(many), "--to-data-dir", str(tmp_path / "gw"), "--to-meta-url", meta_url,
            "--to-blob-url", blob_url]
    kill_midway(args, lambda: sum(1 for _ in store.iter_blobs()), 400)
    rep = summary(migrate(*args, "--json"))
    assert rep["blobs_copied"] + rep["blobs_already_copied"] == 400 and rep["blobs_already_copied"] > 0
    assert len(pool_heads(ceph, blob_url)) == 400
    assert not list(store.iter_partials())  # the interrupted blob's leftover was replaced
    assert all_rows(meta_url, tmp_path / "gw") == all_rows("", many)


# -- refusals ----------------------------------------------------------------------------------


def refused(res: subprocess.CompletedProcess[str], *words: str) -> None:
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_refuses_missing_source(tmp_path: Path) -> None:
    refused(migrate("--data-dir", str(tmp_path / "nothing"), "--to-data-dir", str(tmp_path / "t")),
            "no lampi data")


def test_refuses_unreachable_target(many: Path, tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/lampi"
    refused(migrate("--data-dir", str(many), "--to-data-dir", str(tmp_path / "t"), "--to-meta-url", url),
            "cannot connect")


def test_refuses_target_of_another_store(many: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    subprocess.run([*lampi_cmd(), "init", "--data-dir", str(other)], check=True, capture_output=True, timeout=120)
    before = all_rows("", other)
    refused(migrate("--data-dir", str(many), "--to-data-dir", str(other)), "another store's data")
    assert all_rows("", other) == before


def test_refuses_other_schema(many: Path, tmp_path: Path) -> None:
    import sqlite3

    dst = tmp_path / "t"
    dst.mkdir()
    from lampi.store.meta.sqlite import SQLiteMetaStore

    asyncio.run(SQLiteMetaStore(dst / "meta.db").close())
    with sqlite3.connect(dst / "meta.db") as conn:
        conn.execute("ALTER TABLE objects ADD COLUMN shiny TEXT")
    refused(migrate("--data-dir", str(many), "--to-data-dir", str(dst)), "schemas differ", "shiny")


def test_refuses_a_served_source_and_serve_refuses_a_store_being_migrated(tmp_path: Path) -> None:
    from lampi.store.dirlock import DataDirLock

    srv = LampiServer(data_dir=tmp_path / "data", port=free_port())
    srv.start()
    try:
        refused(migrate("--data-dir", str(srv.data_dir), "--to-data-dir", str(tmp_path / "t")), "running")
    finally:
        srv.stop()
    assert not (tmp_path / "t" / "meta.db").exists()
    # while a migrate holds the data dir, lampi serve refuses it
    lock = DataDirLock(srv.data_dir)
    assert lock.acquire(exclusive=True)
    try:
        res = subprocess.run([*lampi_cmd(), "serve", "--data-dir", str(srv.data_dir), "--port", str(free_port())],
                             capture_output=True, text=True, timeout=120, check=False)
    finally:
        lock.release()
    assert res.returncode == 2 and "lampi migrate" in res.stderr and "Traceback" not in res.stderr
