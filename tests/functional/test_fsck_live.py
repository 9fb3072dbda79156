"""Online fsck: the real ``lampi fsck`` run again and again beside a live server under load.

Two workers take concurrent Swift overwrites and deletes, S3 multipart uploads (some
left open for a while, some aborted), SLO uploads (segments, manifest, old segments
deleted) and one upload that pauses mid-body for longer than fsck's grace period. Every
fsck run must exit 0 and report no missing or wrong-sized blob; the paused upload must
succeed with the right ETag; every acknowledged object must read back intact, also after
a final fsck with no grace at all.

Before the fix (fsck compared a stale object list with a later blob scan, and judged
temp files by their age) this failed: live objects reported missing, the paused
upload's temp file deleted under it (500). Every third run is a dry run, which must not
report a blob the server frees at that instant as an orphan either.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
import requests
import swiftclient

from tests.functional.conftest import LampiServer, free_port

MiB = 1024 * 1024
GRACE = 1.0  # fsck --grace: small, so the paused upload's temp file is "old" by age
LOAD_SECONDS = 45.0  # load runs at least this long (and until the paused upload is done)
MIN_FSCK_RUNS = 10
HARD_DEADLINE = 150.0


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def _swift(srv: LampiServer) -> swiftclient.Connection:
    rc = srv.openrc()
    return swiftclient.Connection(
        authurl=rc["OS_AUTH_URL"], user=rc["OS_USERNAME"], key=rc["OS_PASSWORD"], auth_version="3", retries=0,
        timeout=120, os_options={"user_domain_name": "Default", "project_domain_name": "Default",
                                 "project_name": rc["OS_PROJECT_NAME"]},
    )


def _start(srv: LampiServer) -> None:
    """``srv.start()``, patient on a busy machine: the fixture gives up on the first
    health check slower than 1 s, while workers may still be starting."""
    try:
        srv.start(timeout=60)
        return
    except requests.ReadTimeout:
        pass
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert srv.proc is not None and srv.proc.poll() is None, srv.log()
        try:
            if requests.get(f"{srv.url}/healthcheck", timeout=10).status_code == 200:
                return
        except requests.RequestException:
            time.sleep(0.2)
    raise AssertionError(f"lampi did not become ready:\n{srv.log()}")


class Load:
    """What the load threads were told: the acknowledged state of every name, failures."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acked: dict[tuple[str, str], str | None] = {}  # (container, name) -> md5, None = deleted
        self.unsure: set[tuple[str, str]] = set()  # a request failed: either state may be stored
        self.failures: list[str] = []
        self.ops = 0
        self.stop = threading.Event()

    def ack(self, key: tuple[str, str], digest: str | None) -> None:
        with self.lock:
            self.acked[key] = digest
            self.ops += 1

    def fail(self, key: tuple[str, str], what: str) -> None:
        with self.lock:
            self.unsure.add(key)
            self.failures.append(f"{key[0]}/{key[1]}: {what}")

    def run(self, fn: Callable[[random.Random], None], seed: int) -> threading.Thread:
        def loop() -> None:
            rnd = random.Random(seed)
            while not self.stop.is_set():
                fn(rnd)

        t = threading.Thread(target=loop, daemon=True)
        t.start()
        return t


def _read_response(s: socket.socket) -> tuple[int, dict[str, str]]:
    fh = s.makefile("rb")
    status = int(fh.readline().split(b" ", 2)[1])
    headers: dict[str, str] = {}
    while (line := fh.readline().strip()):
        k, _, v = line.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers


@pytest.mark.slow
def test_fsck_in_a_loop_beside_live_load(fresh_server: LampiServer, unique: str) -> None:
    srv = fresh_server
    srv.workers = 2
    _start(srv)
    keys = json.loads(srv.cli("credential", "create", "admin", "admin", "--json").stdout)
    cont, segc, bucket = unique, unique + "-seg", unique + "-mpu"
    setup = _swift(srv)
    setup.put_container(cont)
    setup.put_container(segc)

    def s3client() -> Any:
        return boto3.client("s3", endpoint_url=srv.url, aws_access_key_id=keys["access"],
                            aws_secret_access_key=keys["secret"], region_name="us-east-1")

    s3client().create_bucket(Bucket=bucket)
    load = Load()
    fsck_done = [0]  # fsck runs finished so far

    # -- Swift overwrites and deletes (two threads, each on names of its own) --------------
    def overwriter(t: int) -> Callable[[random.Random], None]:
        conn = _swift(srv)

        def step(rnd: random.Random) -> None:
            name = f"ow{t}/{rnd.randrange(6)}"
            key = (cont, name)
            if rnd.random() < 0.25:
                try:
                    conn.delete_object(cont, name)
                except swiftclient.ClientException as exc:
                    if exc.http_status != 404:
                        load.fail(key, f"DELETE {exc.http_status}")
                        return
                load.ack(key, None)
                return
            data = rnd.randbytes(rnd.choice([0, 100, 70_000, 1_500_000]))
            try:
                etag = conn.put_object(cont, name, data)
            except swiftclient.ClientException as exc:
                load.fail(key, f"PUT {exc.http_status}")
                return
            if etag != md5(data):
                load.fail(key, f"PUT answered ETag {etag}")
                return
            load.ack(key, md5(data))

        return step

    # -- S3 multipart uploads: some with a 5 MiB first part, some kept open, some aborted --
    def multipart() -> Callable[[random.Random], None]:
        s3 = s3client()
        n = [0]

        def step(rnd: random.Random) -> None:
            n[0] += 1
            name = f"mpu/{n[0] % 4}"
            key = (bucket, name)
            if n[0] % 3 == 0:
                bodies = [rnd.randbytes(5 * MiB), rnd.randbytes(rnd.randrange(1, 50_000))]
            else:
                bodies = [rnd.randbytes(rnd.randrange(1, 300_000))]
            try:
                uid = s3.create_multipart_upload(Bucket=bucket, Key=name)["UploadId"]
                parts = []
                for i, b in enumerate(bodies, 1):
                    etag = s3.upload_part(Bucket=bucket, Key=name, UploadId=uid, PartNumber=i, Body=b)["ETag"]
                    parts.append({"PartNumber": i, "ETag": etag})
                time.sleep(rnd.random() * 0.5)  # parts of an upload in progress, as fsck sees them
                if n[0] % 5 == 0:
                    s3.abort_multipart_upload(Bucket=bucket, Key=name, UploadId=uid)
                    return
                s3.complete_multipart_upload(Bucket=bucket, Key=name, UploadId=uid,
                                             MultipartUpload={"Parts": parts})
            except Exception as exc:  # noqa: BLE001 — botocore raises several kinds
                load.fail(key, f"multipart: {exc!r}")
                return
            load.ack(key, md5(b"".join(bodies)))

        return step

    # -- SLO: segments, manifest, then the replaced manifest's segments deleted -----------
    def slo() -> Callable[[random.Random], None]:
        conn = _swift(srv)
        n = [0]
        prev: dict[str, list[str]] = {}

        def step(rnd: random.Random) -> None:
            n[0] += 1
            name = f"slo/{n[0] % 3}"
            key = (cont, name)
            segs, datas = [], []
            try:
                for j in range(rnd.randint(1, 3)):
                    data = rnd.randbytes(rnd.randrange(1, 200_000))
                    seg = f"{name}/{n[0]}/{j}"
                    etag = conn.put_object(segc, seg, data)
                    segs.append({"path": f"/{segc}/{seg}", "etag": etag, "size_bytes": len(data)})
                    datas.append(data)
                conn.put_object(cont, name, json.dumps(segs), query_string="multipart-manifest=put")
            except swiftclient.ClientException as exc:
                load.fail(key, f"SLO {exc.http_status}")
                return
            load.ack(key, md5(b"".join(datas)))
            for old in prev.get(name, []):
                try:
                    conn.delete_object(segc, old)
                except swiftclient.ClientException as exc:
                    load.fail((segc, old), f"DELETE segment {exc.http_status}")
            prev[name] = [s["path"].split("/", 2)[2] for s in segs]

        return step

    # -- one upload that sends half its body, pauses past the grace, then finishes --------
    paused: dict[str, Any] = {}

    def paused_upload() -> None:
        conn = _swift(srv)
        url, token = conn.get_auth()
        body = os.urandom(3 * MiB)  # the first MiB reaches the temp file before the pause
        path = urlsplit(url).path + f"/{cont}/paused"
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=120)
        try:
            s.sendall((f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nX-Auth-Token: {token}\r\n"
                       f"Content-Length: {len(body)}\r\nContent-Type: application/octet-stream\r\n\r\n").encode())
            s.sendall(body[: len(body) // 2])
            t0, runs0 = time.monotonic(), fsck_done[0]
            # pause past the grace, until at least three fsck runs started and ended meanwhile
            while (time.monotonic() - t0 < 4 * GRACE or fsck_done[0] < runs0 + 3) and \
                    time.monotonic() - t0 < 90:
                time.sleep(0.1)
            paused["paused_s"] = round(time.monotonic() - t0, 1)
            paused["fsck_runs_during_pause"] = fsck_done[0] - runs0
            s.sendall(body[len(body) // 2:])
            paused["status"], headers = _read_response(s)
            paused["etag"] = headers.get("etag")
        except OSError as exc:
            paused["error"] = repr(exc)
        finally:
            s.close()
        paused["md5"] = md5(body)
        if paused.get("status") == 201 and paused.get("etag") == md5(body):
            load.ack((cont, "paused"), md5(body))
        else:
            load.fail((cont, "paused"), f"paused upload: {paused}")

    threads = [load.run(overwriter(0), 1), load.run(overwriter(1), 2), load.run(multipart(), 3),
               load.run(slo(), 4)]
    pauser = threading.Thread(target=paused_upload, daemon=True)
    pauser.start()

    # -- fsck in a loop, the real CLI -------------------------------------------------------
    runs: list[tuple[int, dict[str, Any] | str]] = []
    t0 = time.monotonic()
    try:
        while True:
            # every third run a dry run (as a monitoring job would run it)
            dry = ["--dry-run"] if len(runs) % 3 == 2 else []
            proc = srv.cli("fsck", "--grace", str(GRACE), "--json", *dry, check=False)
            try:
                runs.append((proc.returncode, json.loads(proc.stdout)))
            except ValueError:
                runs.append((proc.returncode, proc.stdout + proc.stderr))
            fsck_done[0] += 1
            elapsed = time.monotonic() - t0
            if elapsed > HARD_DEADLINE or (elapsed > LOAD_SECONDS and not pauser.is_alive()
                                           and len(runs) >= MIN_FSCK_RUNS):
                break
    finally:
        load.stop.set()
        for t in [*threads, pauser]:
            t.join(120)

    bad_runs = [(code, rep) for code, rep in runs
                if code != 0 or not isinstance(rep, dict) or rep["missing_blobs"] or rep["size_mismatches"]]
    reps = [rep for _c, rep in runs if isinstance(rep, dict)]
    removed = sum(rep["removed"] for rep in reps)
    # how often a live change met fsck (new fields: absent from the old report)
    rechecked = sum(rep.get("rechecked", 0) for rep in reps)
    in_use = sum(rep.get("skipped_in_use", 0) for rep in reps)

    def check_readback() -> list[str]:
        """Every acknowledged object reads back intact (deleted ones are gone)."""
        conn, s3 = _swift(srv), s3client()
        lost = []
        for (c, name), digest in sorted(load.acked.items()):
            if (c, name) in load.unsure:
                continue
            try:
                if c == bucket:
                    got: str | None = md5(s3.get_object(Bucket=c, Key=name)["Body"].read())
                else:
                    got = md5(conn.get_object(c, name)[1])
            except swiftclient.ClientException as exc:
                got = None if exc.http_status == 404 else f"GET {exc.http_status}"
            except s3.exceptions.NoSuchKey:
                got = None
            if got != digest:
                lost.append(f"{c}/{name}: acknowledged {digest}, read {got}")
        return lost

    lost = check_readback()
    summary = (f"fsck runs: {len(runs)}, false reports: {len(bad_runs)}, blobs removed: {removed}, "
               f"suspects cleared by re-check: {rechecked}, files left to their writers: {in_use}; "
               f"acknowledged writes: {load.ops}, failed requests: {len(load.failures)}, "
               f"lost or damaged objects: {len(lost)}; paused upload: {paused}")
    print(summary)
    assert not bad_runs, f"{summary}\nfirst false report: {bad_runs[0]}"
    assert not load.failures, f"{summary}\n" + "\n".join(load.failures[:10])
    assert paused.get("status") == 201 and paused.get("etag") == paused["md5"], summary
    assert paused["fsck_runs_during_pause"] >= 3 and paused["paused_s"] >= 4 * GRACE, summary
    assert not lost, f"{summary}\n" + "\n".join(lost[:10])
    assert len(runs) >= MIN_FSCK_RUNS and load.ops >= 50, summary

    # quiet now: a last fsck with no grace at all removes only true leftovers, and every
    # acknowledged object is still there afterwards
    final = srv.cli("fsck", "--grace", "0", "--json", check=False)
    assert final.returncode == 0, final.stdout + final.stderr
    rep = json.loads(final.stdout)
    assert rep["clean"] and not rep["missing_blobs"] and not rep["size_mismatches"], rep
    assert check_readback() == []
    again = json.loads(srv.cli("fsck", "--grace", "0", "--json").stdout)
    assert again["removed"] == 0 and again["orphan_blobs"] == [] and again["partials"] == [], again


def test_a_second_server_starting_spares_uploads_in_flight(fresh_server: LampiServer, unique: str) -> None:
    """A server starting on the data dir removes leftovers of interrupted uploads from
    ``tmp/`` — but not the temp file of an upload another server is still receiving
    (a restart overlapping the old server's shutdown grace, a second instance)."""
    srv = fresh_server
    _start(srv)
    conn = _swift(srv)
    conn.put_container(unique)
    url, token = conn.get_auth()
    tmp = srv.data_dir / "tmp"
    (tmp / "deadbeef").write_bytes(b"left by a crash")  # a true leftover: nobody holds it
    body = os.urandom(2 * MiB)
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=120)
    other = LampiServer(data_dir=srv.data_dir, port=free_port())
    try:
        s.sendall((f"PUT {urlsplit(url).path}/{unique}/inflight HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n"
                   f"X-Auth-Token: {token}\r\nContent-Length: {len(body)}\r\n\r\n").encode())
        s.sendall(body[:MiB // 2])
        deadline = time.monotonic() + 60
        while len(list(tmp.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        (inflight,) = [p for p in tmp.iterdir() if p.name != "deadbeef"]
        _start(other)
        assert not (tmp / "deadbeef").exists()  # the leftover went
        assert inflight.exists()  # the upload in flight stayed
        assert other.stop() == 0
        s.sendall(body[MiB // 2:])
        status, headers = _read_response(s)
    finally:
        s.close()
        if other.proc is not None and other.proc.poll() is None:
            other.stop()
    assert status == 201 and headers.get("etag") == md5(body), (status, headers)
    assert conn.get_object(unique, "inflight")[1] == body
