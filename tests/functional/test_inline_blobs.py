"""Inline blobs (setting ``inline_max``; docs/architecture.md "Inline blobs"): small
objects' bytes kept in the metadata store, written in the transaction that records the
object, read with its record, deleted with it.

A gateway over a throw-away PostgreSQL (inline by default, up to 64 KiB) and one over
SQLite with ``--inline-max`` set, used through python-swiftclient, boto3 and raw HTTP;
the database is looked at directly to see where the bytes went, and ``lampi fsck``
finds inline blobs gone missing and collects orphans.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.functional.conftest import LampiServer, free_port, lampi_cmd, swift_at
from tests.pgcluster import PGCluster, running

SMALL = os.urandom(3000)
EDGE = os.urandom(64 * 1024)  # inline_max's default over PostgreSQL: still inline
LARGE = os.urandom(64 * 1024 + 1)


@pytest.fixture(scope="module")
def cluster() -> Iterator[PGCluster]:
    with running() as c:
        yield c


def serving(srv: LampiServer) -> Iterator[LampiServer]:
    try:
        srv.start()
        yield srv
    finally:
        if srv.proc is not None:
            srv.stop()


@pytest.fixture(scope="module")
def pg_server(cluster: PGCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LampiServer]:
    yield from serving(LampiServer(data_dir=tmp_path_factory.mktemp("inline-pg") / "data", port=free_port(),
                                   extra_args=["--meta-url", cluster.create_db()]))


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LampiServer]:
    yield from serving(LampiServer(data_dir=tmp_path_factory.mktemp("inline-sqlite") / "data", port=free_port(),
                                   extra_args=["--inline-max", "4096"]))


def meta_url(server: LampiServer) -> str:
    return server.extra_args[server.extra_args.index("--meta-url") + 1]


def inline_rows(server: LampiServer) -> dict[str, bytes]:
    """The store's inline blobs, read from its database."""
    if "--meta-url" in server.extra_args:
        import psycopg

        with psycopg.connect(meta_url(server)) as conn:
            return {r[0]: bytes(r[1]) for r in conn.execute("SELECT blob_id, data FROM inline_blobs")}
    with sqlite3.connect(server.data_dir / "meta.db") as conn:
        return {r[0]: bytes(r[1]) for r in conn.execute("SELECT blob_id, data FROM inline_blobs")}


def blob_files(server: LampiServer) -> int:
    root = server.data_dir / "blobs"
    return sum(1 for p in root.rglob("*") if p.is_file()) if root.exists() else 0


def s3(server: LampiServer):  # noqa: ANN201
    import boto3

    keys = json.loads(server.cli("credential", "create", "admin", "admin", "--json").stdout)
    return boto3.client("s3", endpoint_url=server.url, aws_access_key_id=keys["access"],
                        aws_secret_access_key=keys["secret"], region_name="us-east-1")


def test_small_objects_live_in_the_database_and_go_with_their_object(pg_server: LampiServer) -> None:
    conn = swift_at(pg_server)
    c = "in" + uuid.uuid4().hex[:10]
    conn.put_container(c)
    files = blob_files(pg_server)
    before = set(inline_rows(pg_server))
    etag = conn.put_object(c, "small", SMALL)
    assert etag == hashlib.md5(SMALL).hexdigest()
    conn.put_object(c, "edge", EDGE)
    conn.put_object(c, "empty", b"")
    rows = inline_rows(pg_server)
    new = {k: v for k, v in rows.items() if k not in before}
    assert sorted(new.values(), key=len) == [b"", SMALL, EDGE]
    assert all(k.startswith("~") for k in new)
    assert blob_files(pg_server) == files  # nothing written to the blob store
    conn.put_object(c, "large", LARGE)  # past inline_max: a blob of its own
    assert blob_files(pg_server) == files + 1
    assert len(inline_rows(pg_server)) == len(rows)

    # reads: whole, ranges, HEAD, the listing
    assert conn.get_object(c, "small")[1] == SMALL
    assert conn.get_object(c, "edge")[1] == EDGE
    assert conn.get_object(c, "empty")[1] == b""
    hdrs, body = conn.get_object(c, "small", headers={"Range": "bytes=10-19"})
    assert body == SMALL[10:20] and hdrs["content-range"] == f"bytes 10-19/{len(SMALL)}"
    assert conn.get_object(c, "small", headers={"Range": "bytes=-5"})[1] == SMALL[-5:]
    hdrs, body = conn.get_object(c, "edge", headers={"Range": "bytes=0-1,5-6"})
    assert b"multipart/byteranges" in hdrs["content-type"].encode() and EDGE[5:7] in body
    head = conn.head_object(c, "small")
    assert int(head["content-length"]) == len(SMALL) and head["etag"] == hashlib.md5(SMALL).hexdigest()
    assert {o["name"]: o["bytes"] for o in conn.get_container(c)[1]} == {
        "small": len(SMALL), "edge": len(EDGE), "empty": 0, "large": len(LARGE)}
    assert int(conn.head_container(c)["x-container-bytes-used"]) == len(SMALL) + len(EDGE) + len(LARGE)

    # an overwrite replaces the bytes in the same transaction; a delete removes them
    small_id = next(k for k, v in new.items() if v == SMALL)
    conn.put_object(c, "small", b"second")
    rows = inline_rows(pg_server)
    assert small_id not in rows and b"second" in rows.values()
    assert conn.get_object(c, "small")[1] == b"second"
    for name in ("small", "edge", "empty", "large"):
        conn.delete_object(c, name)
    assert set(inline_rows(pg_server)) == before
    assert blob_files(pg_server) == files
    assert int(conn.head_container(c)["x-container-bytes-used"]) == 0


def test_copies_versions_and_s3(pg_server: LampiServer) -> None:
    import botocore.exceptions

    client = s3(pg_server)
    bucket = "in" + uuid.uuid4().hex[:10]
    client.create_bucket(Bucket=bucket)
    before = set(inline_rows(pg_server))
    client.put_object(Bucket=bucket, Key="a", Body=SMALL)
    assert client.get_object(Bucket=bucket, Key="a")["Body"].read() == SMALL
    assert client.get_object(Bucket=bucket, Key="a", Range="bytes=100-")["Body"].read() == SMALL[100:]
    # a server-side copy reads the inline source and writes an inline copy of its own
    client.copy_object(Bucket=bucket, Key="b", CopySource={"Bucket": bucket, "Key": "a"})
    assert client.get_object(Bucket=bucket, Key="b")["Body"].read() == SMALL
    assert len(set(inline_rows(pg_server)) - before) == 2
    client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a"}, {"Key": "b"}]})
    assert set(inline_rows(pg_server)) == before

    # versions keep their inline bytes; an old one is read by its id; deleting a
    # version deletes its bytes
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = client.put_object(Bucket=bucket, Key="v", Body=b"one")["VersionId"]
    v2 = client.put_object(Bucket=bucket, Key="v", Body=b"two")["VersionId"]
    assert client.get_object(Bucket=bucket, Key="v")["Body"].read() == b"two"
    assert client.get_object(Bucket=bucket, Key="v", VersionId=v1)["Body"].read() == b"one"
    assert sorted(v for k, v in inline_rows(pg_server).items() if k not in before) == [b"one", b"two"]
    client.delete_object(Bucket=bucket, Key="v")  # a delete marker: both versions stay
    assert client.get_object(Bucket=bucket, Key="v", VersionId=v2)["Body"].read() == b"two"
    for vid in (v1, v2):
        client.delete_object(Bucket=bucket, Key="v", VersionId=vid)
    assert set(inline_rows(pg_server)) == before
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        client.get_object(Bucket=bucket, Key="v", VersionId=v1)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_bad_uploads_leave_nothing(pg_server: LampiServer) -> None:
    conn = swift_at(pg_server)
    c = "in" + uuid.uuid4().hex[:10]
    conn.put_container(c)
    before = inline_rows(pg_server)
    # an ETag the body does not have: Swift's 422, nothing stored
    import swiftclient

    with pytest.raises(swiftclient.ClientException) as exc:
        conn.put_object(c, "o", SMALL, etag="0" * 32)
    assert exc.value.http_status == 422
    # a body shorter than its Content-Length, the connection closed: nothing stored
    url, token = conn.get_auth()
    path = url.split(str(pg_server.port), 1)[1]
    sock = http.client.HTTPConnection("127.0.0.1", pg_server.port, timeout=30)
    sock.putrequest("PUT", f"{path}/{c}/short")
    sock.putheader("X-Auth-Token", token)
    sock.putheader("Content-Length", "1000")
    sock.endheaders()
    sock.send(b"x" * 10)
    sock.sock.shutdown(1)  # type: ignore[union-attr]
    try:
        status = sock.getresponse().status
        assert 400 <= status < 500
    except (http.client.RemoteDisconnected, ConnectionResetError):
        pass
    finally:
        sock.close()
    assert inline_rows(pg_server) == before
    with pytest.raises(swiftclient.ClientException) as exc:
        conn.head_object(c, "short")
    assert exc.value.http_status == 404
    assert conn.get_container(c)[1] == []


def test_fsck_finds_missing_and_collects_orphans(pg_server: LampiServer) -> None:
    import psycopg

    conn = swift_at(pg_server)
    c = "in" + uuid.uuid4().hex[:10]
    conn.put_container(c)
    conn.put_object(c, "kept", b"kept")
    conn.put_object(c, "lost", b"lost")
    with psycopg.connect(meta_url(pg_server)) as db:
        lost = db.execute("SELECT blob_id FROM objects WHERE container = %s AND name = 'lost'", (c,)).fetchone()[0]
        db.execute("DELETE FROM inline_blobs WHERE blob_id = %s", (lost,))
        db.execute("INSERT INTO inline_blobs (blob_id, data) VALUES ('~orphan' || %s, 'x')", (uuid.uuid4().hex,))
    # the lost object's GET is a 503 (damage), not a 200 cut short
    import swiftclient

    with pytest.raises(swiftclient.ClientException) as exc:
        conn.get_object(c, "lost")
    assert exc.value.http_status == 503
    dry = pg_server.cli("fsck", "--json", "--dry-run", check=False)
    report = json.loads(dry.stdout)
    assert {"container": c, "object": "lost", "blob": lost} in report["missing_blobs"]
    assert any(b.startswith("~orphan") for b in report["orphan_blobs"])
    assert any(k.startswith("~orphan") for k in inline_rows(pg_server))  # a dry run removes nothing
    pg_server.cli("fsck", "--json", check=False)
    assert not any(k.startswith("~orphan") for k in inline_rows(pg_server))
    assert conn.get_object(c, "kept")[1] == b"kept"
    conn.delete_object(c, "lost")
    conn.delete_object(c, "kept")


def test_sqlite_store_inlines_when_asked(sqlite_server: LampiServer) -> None:
    conn = swift_at(sqlite_server)
    c = "in" + uuid.uuid4().hex[:10]
    conn.put_container(c)
    files = blob_files(sqlite_server)
    conn.put_object(c, "small", SMALL)
    conn.put_object(c, "big", EDGE)  # past --inline-max 4096
    assert SMALL in inline_rows(sqlite_server).values()
    assert blob_files(sqlite_server) == files + 1
    assert conn.get_object(c, "small")[1] == SMALL
    assert conn.get_object(c, "small", headers={"Range": "bytes=1-2"})[1] == SMALL[1:3]
    conn.delete_object(c, "small")
    conn.delete_object(c, "big")
    assert SMALL not in inline_rows(sqlite_server).values()


def test_a_policy_with_a_place_of_its_own_keeps_every_byte_there(cluster: PGCluster, tmp_path: Path) -> None:
    """A storage policy with its own directory (or pool) keeps its containers' small
    objects there too; the policy without one inlines them."""
    srv = LampiServer(data_dir=tmp_path / "data", port=free_port(),
                      extra_args=["--meta-url", cluster.create_db(),
                                  "--storage-policies", "default-placement,gold=gold-disk"])
    srv.start()
    try:
        conn = swift_at(srv)
        conn.put_container("g", headers={"X-Storage-Policy": "gold"})
        conn.put_container("d")
        conn.put_object("g", "o", b"golden bytes")
        conn.put_object("d", "o", b"plain bytes")
        assert list(inline_rows(srv).values()) == [b"plain bytes"]
        gold = [p for p in (srv.data_dir / "gold-disk" / "blobs").rglob("*") if p.is_file()]
        assert [p.read_bytes() for p in gold] == [b"golden bytes"]
        assert conn.get_object("g", "o")[1] == b"golden bytes" and conn.get_object("d", "o")[1] == b"plain bytes"
    finally:
        srv.stop()


def test_min_free_space_holds_for_inline_objects(tmp_path: Path) -> None:
    """Bytes kept in the metadata store still leave ``min_free_space`` free: refused with
    507 (S3: InsufficientStorage) before the body is read, nothing stored."""
    import botocore.exceptions
    import swiftclient

    srv = LampiServer(data_dir=tmp_path / "data", port=free_port(),
                      extra_args=["--inline-max", "4096", "--min-free-space", "99.99%"])
    srv.start()
    try:
        conn = swift_at(srv)
        conn.put_container("c")
        with pytest.raises(swiftclient.ClientException) as exc:
            conn.put_object("c", "o", SMALL)
        assert exc.value.http_status == 507
        client = s3(srv)
        with pytest.raises(botocore.exceptions.ClientError) as err:
            client.put_object(Bucket="c", Key="o", Body=SMALL)
        assert err.value.response["Error"]["Code"] == "InsufficientStorage"
        assert conn.get_container("c")[1] == [] and inline_rows(srv) == {}
    finally:
        srv.stop()


@pytest.mark.parametrize("value", ["-2", str(1024 * 1024 + 1), "lots"])
def test_bad_inline_max_refused(value: str, tmp_path: Path) -> None:
    res = subprocess.run([*lampi_cmd(), "serve", "--host", "127.0.0.1", "--port", str(free_port()),
                          "--data-dir", str(tmp_path / "data"), "--console-port", "0", "--inline-max", value],
                         capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in os.environ.items() if k != "LAMPI_CONFIG"})
    assert res.returncode != 0
    assert "inline" in res.stderr.lower()
