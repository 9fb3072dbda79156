"""SIGKILL of a gateway (issue 13): two `lampi serve` gateways over one PostgreSQL and one
Ceph pool; gateway A's whole process group (supervisor and workers) is killed during a
Swift PUT streamed slowly, an SLO upload and an S3 multipart upload, while other clients
write through both. Then, through gateway B: every acknowledged object is intact (bytes
and ETag), nothing half-written is visible (listings, HEAD of the in-flight name), the
SLO and the multipart upload can be finished (or aborted) through B, and ``lampi fsck``
over the shared stores finds no damage. The killed writes' bytes are leftovers that fsck
leaves alone while the dead gateway's RADOS lock lasts (300 s) and removes after.

Without PostgreSQL or Ceph these skip, or fail in CI (LAMPI_REQUIRE_POSTGRES=1,
LAMPI_REQUIRE_CEPH=1).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import CEPH_POOL
from tests.functional.conftest import LampiServer, free_port, lampi_cmd
from tests.pgcluster import PGCluster, require_postgres

MiB = 1024 * 1024


def payload(n: int, seed: int) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest() * (65536 // 32)
    return (block * (n // len(block) + 1))[:n]


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


class Cluster:
    """One PostgreSQL database, one RADOS namespace, gateways A (2 workers) and B."""

    def __init__(self, pg: PGCluster, ceph: Any, base: Any) -> None:
        self.meta_url = pg.create_db()
        self.blob_url = f"{ceph.url(CEPH_POOL)}&namespace={uuid.uuid4().hex}"
        self.base = base
        # each gateway has a data dir of its own: the keys they share are in the database,
        # sealed with the master key both are given
        from cryptography.fernet import Fernet

        self.env: dict[str, str] = {"LAMPI_MASTER_KEY": Fernet.generate_key().decode()}
        args = ["--meta-url", self.meta_url, "--blob-url", self.blob_url]
        self.a = LampiServer(data_dir=base / "data-a", port=free_port(), workers=2, extra_args=args, env=self.env)
        self.b = LampiServer(data_dir=base / "data-b", port=free_port(), extra_args=args, env=self.env)

    def kill_a(self) -> None:
        """SIGKILL to A's whole process group: the supervisor and every worker at once."""
        assert self.a.proc is not None
        os.killpg(self.a.proc.pid, signal.SIGKILL)
        self.a.proc.wait(60)
        self.a.stop(signal.SIGKILL)  # reaps it and anything left of its session

    def ensure_a(self) -> None:
        if self.a.proc is None or self.a.proc.poll() is not None:
            self.a.start()

    def fsck(self, *args: str) -> dict[str, Any]:
        res = subprocess.run([*lampi_cmd(), "fsck", "--json", "--data-dir", str(self.b.data_dir), "--meta-url",
                              self.meta_url, "--blob-url", self.blob_url, *args],
                             capture_output=True, text=True, timeout=600, env={**os.environ, **self.env})
        assert "Traceback" not in res.stderr, res.stderr
        rep = json.loads(res.stdout)
        assert res.returncode == (0 if rep["clean"] else 1), res.stderr
        return rep


@pytest.fixture(scope="module")
def cluster(ceph: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    pg = PGCluster(require_postgres())
    c = None
    try:
        pg.start()
        c = Cluster(pg, ceph, tmp_path_factory.mktemp("gw-kill"))
        c.a.start()  # first: it creates the schema and the bootstrap admin
        c.b.start()
        yield c
    finally:
        try:
            if c is not None:
                for s in (c.a, c.b):
                    if s.proc is not None:
                        s.stop(signal.SIGKILL)
        finally:
            pg.stop()


@pytest.fixture
def gw(cluster: Cluster) -> Cluster:
    cluster.ensure_a()
    return cluster


class Swift:
    """A token and the storage URL of one gateway (raw requests: nothing retried)."""

    def __init__(self, srv: LampiServer, rc: dict[str, str]) -> None:
        r = requests.post(f"{srv.url}/v3/auth/tokens", timeout=60, json={"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": rc["OS_USERNAME"], "domain": {"name": "Default"}, "password": rc["OS_PASSWORD"]}}},
            "scope": {"project": {"name": rc["OS_PROJECT_NAME"], "domain": {"name": "Default"}}}}})
        assert r.status_code == 201, r.text
        self.token = r.headers["X-Subject-Token"]
        project = r.json()["token"]["project"]["id"]
        self.url = f"{srv.url}/v1/AUTH_{project}"
        self.s = requests.Session()
        self.s.headers["X-Auth-Token"] = self.token

    def req(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 120)
        return self.s.request(method, f"{self.url}/{path}", **kw)


def openrc(c: Cluster) -> dict[str, str]:
    return c.a.openrc()


class Writers:
    """Clients writing small and striped objects through a gateway until stopped,
    remembering what was acknowledged (201 with the right ETag) and what was tried."""

    def __init__(self, conns: list[Swift], container: str) -> None:
        self.container = container
        self.tried: dict[str, bytes] = {}
        self.acked: dict[str, str] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i, conn), daemon=True)
                        for i, conn in enumerate(conns)]

    def _run(self, i: int, conn: Swift) -> None:
        rnd = random.Random(i)
        n = 0
        while not self.stop.is_set():
            name = f"w{i}/{n:05d}"
            n += 1
            body = payload(rnd.choice([0, 1, 1000, 100_000, 5 * MiB + 3]), seed=hash(name) & 0xFFFF)
            with self.lock:
                self.tried[name] = body
            try:
                r = conn.req("PUT", f"{self.container}/{name}", data=body)
            except requests.RequestException:
                time.sleep(0.2)  # the gateway is gone (killed): keep trying, a client would
                continue
            if r.status_code == 201:
                assert r.headers["ETag"] == md5(body), (name, r.headers)
                with self.lock:
                    self.acked[name] = r.headers["ETag"]

    def __enter__(self) -> Writers:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(300)


def slow_put(url: str, headers: dict[str, str], total: int, body: bytes, sent_enough: threading.Event,
             enough: int, result: list[Any]) -> None:
    """PUT ``body`` (of ``total`` declared bytes) over a raw connection: ``enough`` bytes
    at once, then a little every 0.2 s, so that it is still in flight when killed."""
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=300)
    try:
        conn.putrequest("PUT", u.path + (f"?{u.query}" if u.query else ""), skip_accept_encoding=True)
        for k, v in {**headers, "Content-Length": str(total)}.items():
            conn.putheader(k, v)
        conn.endheaders()
        conn.send(body[:enough])
        sent_enough.set()
        pos = enough
        while pos < len(body):
            conn.send(body[pos:pos + 64 * 1024])
            pos += 64 * 1024
            time.sleep(0.2)
        result.append(conn.getresponse().status)
    except OSError as exc:
        result.append(exc)
        sent_enough.set()
    finally:
        conn.close()


def kill_during(c: Cluster, url: str, headers: dict[str, str], body: bytes, enough: int) -> None:
    """Start a slow PUT of ``body`` to gateway A, kill A once ``enough`` bytes are out;
    the PUT must not have been acknowledged."""
    sent, result = threading.Event(), []
    t = threading.Thread(target=slow_put, args=(url, headers, len(body), body, sent, enough, result), daemon=True)
    t.start()
    assert sent.wait(300)
    time.sleep(1.5)  # let the gateway take in what was sent (stripes written to RADOS)
    assert not result, f"the slow PUT ended before the kill: {result}"
    c.kill_a()
    t.join(120)
    assert result and isinstance(result[0], OSError), result  # never acknowledged


def check_writers(w: Writers, b: Swift) -> None:
    """Through B: every acknowledged write intact; every listed name holds exactly what
    one PUT sent (a write cut by the kill is either wholly there or not at all)."""
    assert w.acked, "no write was acknowledged"
    listed = []
    marker = ""
    while True:
        r = b.req("GET", w.container, params={"format": "json", "marker": marker})
        assert r.status_code in (200, 204), r.text
        page = r.json() if r.status_code == 200 else []
        if not page:
            break
        listed += page
        marker = page[-1]["name"]
    names = {o["name"]: o for o in listed}
    assert set(w.acked) <= set(names)
    for name, o in names.items():
        body = w.tried[name]
        assert o["bytes"] == len(body) and o["hash"] == md5(body), (name, o)
        r = b.req("GET", f"{w.container}/{name}")
        assert r.status_code == 200 and r.content == body and r.headers["ETag"] == md5(body), name
    r = b.req("HEAD", w.container)
    assert int(r.headers["X-Container-Object-Count"]) == len(names)
    assert int(r.headers["X-Container-Bytes-Used"]) == sum(len(w.tried[n]) for n in names)


def check_fsck(c: Cluster) -> dict[str, Any]:
    """No damage: nothing missing, nothing of the wrong size. The killed uploads' bytes
    are leftovers, left alone while the dead gateway's lock lasts."""
    rep = c.fsck("--dry-run")
    assert not rep["missing_blobs"] and not rep["size_mismatches"], rep
    rep = c.fsck("--grace", "0")
    assert rep["clean"], rep
    return rep


def test_kill_during_slow_swift_put(gw: Cluster) -> None:
    rc = openrc(gw)
    a, b = Swift(gw.a, rc), Swift(gw.b, rc)
    cont = "kill-put-" + uuid.uuid4().hex[:8]
    assert a.req("PUT", cont).status_code == 201
    previous = payload(1000, 7)
    assert b.req("PUT", f"{cont}/inflight", data=previous).status_code == 201
    big = payload(40 * MiB, 8)
    with Writers([Swift(gw.a, rc), Swift(gw.b, rc), Swift(gw.b, rc)], cont) as w:
        time.sleep(2)
        kill_during(gw, f"{a.url}/{cont}/inflight", {"X-Auth-Token": a.token}, big, enough=12 * MiB)
        time.sleep(2)  # the writers through B go on after the kill
    # the in-flight name still answers with its previous version, in HEAD, GET and listing
    h = b.req("HEAD", f"{cont}/inflight")
    assert h.status_code == 200 and h.headers["ETag"] == md5(previous) and h.headers["Content-Length"] == "1000"
    assert b.req("GET", f"{cont}/inflight").content == previous
    w.tried["inflight"] = previous
    check_writers(w, b)
    # a name that had no previous version: 404 after its upload was killed
    gw.ensure_a()
    a = Swift(gw.a, rc)
    kill_during(gw, f"{a.url}/{cont}/fresh", {"X-Auth-Token": a.token}, payload(20 * MiB, 9), enough=9 * MiB)
    assert b.req("HEAD", f"{cont}/fresh").status_code == 404
    listing = b.req("GET", cont, params={"format": "json", "prefix": "fresh"}).json()
    assert listing == []
    rep = check_fsck(gw)
    assert rep["skipped_in_use"] >= 2  # the two killed uploads' stripes: still under A's (dead) lock


def test_kill_during_slo_upload(gw: Cluster) -> None:
    rc = openrc(gw)
    a, b = Swift(gw.a, rc), Swift(gw.b, rc)
    cont, segs = "kill-slo-" + uuid.uuid4().hex[:8], "kill-slo-segs-" + uuid.uuid4().hex[:8]
    for name in (cont, segs):
        assert a.req("PUT", name).status_code == 201
    parts = [payload(6 * MiB, 20), payload(6 * MiB, 21), payload(6 * MiB + 5, 22)]
    for i in (0, 1):
        r = a.req("PUT", f"{segs}/seg{i}", data=parts[i])
        assert r.status_code == 201 and r.headers["ETag"] == md5(parts[i])
    with Writers([Swift(gw.a, rc), Swift(gw.b, rc)], cont) as w:
        time.sleep(1)
        kill_during(gw, f"{a.url}/{segs}/seg2", {"X-Auth-Token": a.token}, parts[2], enough=5 * MiB)
        time.sleep(1)
    check_writers(w, b)
    # through B: the acknowledged segments are intact, the killed one and the manifest absent
    for i in (0, 1):
        r = b.req("GET", f"{segs}/seg{i}")
        assert r.content == parts[i] and r.headers["ETag"] == md5(parts[i])
    assert b.req("HEAD", f"{segs}/seg2").status_code == 404
    assert b.req("HEAD", f"{cont}/big").status_code == 404
    assert [o["name"] for o in b.req("GET", segs, params={"format": "json"}).json()] == ["seg0", "seg1"]
    # the upload is finished through B: the last segment again, then the manifest
    bw = Swift(gw.b, rc)  # B takes writes too (it is a full gateway)
    assert bw.req("PUT", f"{segs}/seg2", data=parts[2]).status_code == 201
    manifest = [{"path": f"/{segs}/seg{i}", "etag": md5(p), "size_bytes": len(p)} for i, p in enumerate(parts)]
    r = bw.req("PUT", f"{cont}/big", params={"multipart-manifest": "put"}, data=json.dumps(manifest))
    assert r.status_code == 201, r.text
    whole = b"".join(parts)
    r = b.req("GET", f"{cont}/big")
    assert r.status_code == 200 and r.content == whole
    assert r.headers["ETag"] == f'"{md5(b"".join(md5(p).encode() for p in parts))}"'
    check_fsck(gw)


def test_kill_during_s3_multipart_upload(gw: Cluster) -> None:
    import boto3
    import botocore.exceptions

    res = gw.a.cli("credential", "create", "admin", "admin", "--json", "--meta-url", gw.meta_url)
    keys = json.loads(res.stdout)
    sa, sb = (boto3.client("s3", endpoint_url=s.url, aws_access_key_id=keys["access"],
                           aws_secret_access_key=keys["secret"], region_name="us-east-1") for s in (gw.a, gw.b))
    bucket = "kill-mpu-" + uuid.uuid4().hex[:8]
    sa.create_bucket(Bucket=bucket)
    parts = [payload(5 * MiB, 40), payload(7 * MiB + 1, 41)]
    up = sa.create_multipart_upload(Bucket=bucket, Key="big")["UploadId"]
    e1 = sa.upload_part(Bucket=bucket, Key="big", UploadId=up, PartNumber=1, Body=parts[0])["ETag"]
    doomed = sa.create_multipart_upload(Bucket=bucket, Key="doomed")["UploadId"]
    sa.upload_part(Bucket=bucket, Key="doomed", UploadId=doomed, PartNumber=1, Body=payload(5 * MiB, 42))
    url = sa.generate_presigned_url("upload_part", Params={"Bucket": bucket, "Key": "big", "UploadId": up,
                                                          "PartNumber": 2}, ExpiresIn=3600)
    rc = openrc(gw)
    cont = "kill-mpu-w-" + uuid.uuid4().hex[:8]
    assert Swift(gw.b, rc).req("PUT", cont).status_code == 201
    with Writers([Swift(gw.a, rc), Swift(gw.b, rc)], cont) as w:
        time.sleep(1)
        kill_during(gw, url, {}, parts[1], enough=5 * MiB)
        time.sleep(1)
    check_writers(w, Swift(gw.b, rc))
    # through B: the upload is there with its acknowledged part only; no object yet
    listed = sb.list_parts(Bucket=bucket, Key="big", UploadId=up)
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed.get("Parts", [])] == [(1, e1, 5 * MiB)]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        sb.head_object(Bucket=bucket, Key="big")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert "Contents" not in sb.list_objects_v2(Bucket=bucket)
    uploads = {u["UploadId"] for u in sb.list_multipart_uploads(Bucket=bucket)["Uploads"]}
    assert uploads == {up, doomed}
    # continued and completed through B
    e2 = sb.upload_part(Bucket=bucket, Key="big", UploadId=up, PartNumber=2, Body=parts[1])["ETag"]
    done = sb.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    expect = md5(b"".join(bytes.fromhex(md5(p)) for p in parts)) + "-2"
    assert done["ETag"] == f'"{expect}"'
    got = sb.get_object(Bucket=bucket, Key="big")
    assert got["Body"].read() == b"".join(parts) and got["ETag"] == f'"{expect}"'
    # the other one aborted through B
    sb.abort_multipart_upload(Bucket=bucket, Key="doomed", UploadId=doomed)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        sb.list_parts(Bucket=bucket, Key="doomed", UploadId=doomed)
    assert exc.value.response["Error"]["Code"] == "NoSuchUpload"
    assert "Uploads" not in sb.list_multipart_uploads(Bucket=bucket)
    assert [o["Key"] for o in sb.list_objects_v2(Bucket=bucket)["Contents"]] == ["big"]
    check_fsck(gw)
