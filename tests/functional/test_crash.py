"""Durability: SIGKILL during concurrent uploads, restart, and ``lampi fsck``.

Every acknowledged (201) upload survives the crash intact; nothing half-written is
ever visible; fsck then reports the data dir clean. fsck also finds damage done by
hand (a missing or truncated blob) and removes leftovers (tmp files, orphan blobs).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import threading
import time
from pathlib import Path

import requests
import swiftclient

from lampi.config import INLINE_MAX_DEFAULT as INLINE
from tests.functional.conftest import LampiServer


def connect(srv: LampiServer) -> swiftclient.Connection:
    rc = srv.openrc()
    return swiftclient.Connection(
        authurl=rc["OS_AUTH_URL"], user=rc["OS_USERNAME"], key=rc["OS_PASSWORD"], auth_version="3", retries=0,
        os_options={"user_domain_name": "Default", "project_domain_name": "Default",
                    "project_name": rc["OS_PROJECT_NAME"]},
    )


def fsck(srv: LampiServer, *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    proc = srv.cli("fsck", "--json", *args, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def blob_files(srv: LampiServer) -> list[Path]:
    return [p for p in (srv.data_dir / "blobs").rglob("*") if p.is_file()]


def blob_of(srv: LampiServer, content: bytes) -> Path:
    """The blob file holding exactly ``content`` (blob ids are not visible through the API)."""
    matches = [p for p in blob_files(srv) if p.stat().st_size == len(content) and p.read_bytes() == content]
    assert len(matches) == 1, matches
    return matches[0]


def test_sigkill_during_concurrent_uploads(fresh_server: LampiServer, unique: str) -> None:
    fresh_server.start()
    conn = connect(fresh_server)
    conn.put_container(unique)
    url, token = conn.get_auth()

    acked: dict[str, str] = {}  # name -> md5 of acknowledged uploads
    lock = threading.Lock()
    stop = threading.Event()
    started = threading.Barrier(9)
    errors: list[BaseException] = []

    def uploader(n: int) -> None:
        rng = random.Random(n)
        session = requests.Session()
        started.wait()
        i = 0
        while not stop.is_set():
            name = f"w{n}/obj{i:04d}"
            i += 1
            # one upload in three small enough to be an inline blob (inline_max's default:
            # bytes committed with the row), the rest blob files
            size = rng.randint(1, INLINE) if i % 3 == 1 else rng.randint(INLINE + 1, 4 * 1024 * 1024)
            body = os.urandom(size)
            digest = hashlib.md5(body).hexdigest()
            try:
                r = session.put(f"{url}/{unique}/{name}", data=body, timeout=30,
                                headers={"X-Auth-Token": token, "Content-Type": "application/octet-stream"})
            except requests.RequestException:
                return  # the server died under us: this upload is not acknowledged
            if r.status_code != 201:
                errors.append(AssertionError(f"{name}: {r.status_code} {r.text}"))
                return
            assert r.headers["ETag"] == digest
            with lock:
                acked[name] = digest

    threads = [threading.Thread(target=uploader, args=(n,), daemon=True) for n in range(8)]
    for t in threads:
        t.start()
    started.wait()
    # kill once a good number of uploads are acknowledged, with more surely in flight
    deadline = time.monotonic() + 30
    while len(acked) < 24 and time.monotonic() < deadline and not errors:
        time.sleep(0.05)
    assert fresh_server.proc is not None
    fresh_server.proc.send_signal(signal.SIGKILL)
    fresh_server.proc.wait()
    stop.set()
    for t in threads:
        t.join(60)
    assert not errors, errors
    with lock:
        acked_now = dict(acked)
    assert len(acked_now) >= 8, "too few uploads acknowledged before the kill"

    fresh_server.start()
    conn = connect(fresh_server)
    # every acknowledged object is there, byte for byte
    for name, digest in acked_now.items():
        headers, data = conn.get_object(unique, name)
        assert hashlib.md5(data).hexdigest() == digest, name
        assert headers["etag"] == digest, name
    # nothing partial is visible: every listed object is whole (acknowledged or not —
    # an upload may have committed just before the kill without its 201 getting out)
    _, listing = conn.get_container(unique, full_listing=True)
    names = {o["name"] for o in listing}
    assert set(acked_now) <= names
    for entry in listing:
        headers, data = conn.get_object(unique, entry["name"])
        assert len(data) == entry["bytes"] == int(headers["content-length"]), entry["name"]
        assert hashlib.md5(data).hexdigest() == entry["hash"] == headers["etag"], entry["name"]
    # stats agree with the listing
    head = conn.head_container(unique)
    assert int(head["x-container-object-count"]) == len(listing)
    assert int(head["x-container-bytes-used"]) == sum(o["bytes"] for o in listing)
    # the restart cleared interrupted writes
    assert not list((fresh_server.data_dir / "tmp").iterdir())

    # fsck: clean (it may remove blobs written just before the kill whose metadata
    # never committed); a second run finds nothing left to do
    code, rep = fsck(fresh_server, "--grace", "0")
    assert code == 0, rep
    assert rep["clean"] and not rep["missing_blobs"] and not rep["size_mismatches"]
    large = sum(1 for o in listing if o["bytes"] > INLINE)  # the rest are inline blobs
    assert rep["objects"] == large  # objects whose bytes are blob files
    code, rep = fsck(fresh_server, "--grace", "0")
    assert code == 0, rep
    assert rep["clean"]
    assert rep["orphan_blobs"] == [] and rep["partials"] == [] and rep["removed"] == 0
    assert rep["blobs"] == rep["objects"] == large
    assert 0 < large < len(listing)
    # the human output says so too
    out = fresh_server.cli("fsck").stdout
    assert out.strip().endswith("clean")
    assert "orphaned blobs: 0  partial uploads: 0" in out
    # and the objects are still all there after fsck
    for name, digest in acked_now.items():
        assert conn.head_object(unique, name)["etag"] == digest


def test_fsck_reports_missing_and_truncated_blobs(fresh_server: LampiServer, unique: str) -> None:
    fresh_server.start()
    conn = connect(fresh_server)
    conn.put_container(unique)
    # past inline_max's default: blob files of their own
    assert len(b"good data " * 7000) > INLINE
    good, lost, short = b"good data " * 7000, b"lost data " * 7000, b"short data " * 7000
    conn.put_object(unique, "good", good)
    conn.put_object(unique, "dir/lost", lost)
    conn.put_object(unique, "short", short)
    code, rep = fsck(fresh_server)
    assert code == 0 and rep["clean"] and rep["objects"] == 3

    blob_of(fresh_server, lost).unlink()
    with open(blob_of(fresh_server, short), "r+b") as fh:
        fh.truncate(10)

    code, rep = fsck(fresh_server)
    assert code == 1
    assert not rep["clean"]
    assert [(m["container"], m["object"]) for m in rep["missing_blobs"]] == [(unique, "dir/lost")]
    assert rep["size_mismatches"] == [
        {"container": unique, "object": "short", "expected": len(short), "actual": 10}]
    proc = fresh_server.cli("fsck", check=False)
    assert proc.returncode == 1
    assert "MISSING blob" in proc.stdout and f"{unique}/dir/lost" in proc.stdout
    assert f"SIZE MISMATCH {unique}/short: metadata {len(short)} bytes, blob 10 bytes" in proc.stdout
    assert "NOT CLEAN" in proc.stdout
    # damage is reported, never "repaired" by deleting metadata; the good object is untouched
    names = [o["name"] for o in conn.get_container(unique)[1]]
    assert names == ["dir/lost", "good", "short"]
    assert conn.get_object(unique, "good")[1] == good
    assert fsck(fresh_server)[0] == 1


def test_fsck_removes_old_leftovers_and_spares_young_ones(fresh_server: LampiServer, unique: str) -> None:
    fresh_server.start()
    conn = connect(fresh_server)
    conn.put_container(unique)
    conn.put_object(unique, "keep", b"keep me")
    root = fresh_server.data_dir
    old = time.time() - 3600

    junk_tmp = root / "tmp" / "deadbeef"
    junk_tmp.write_bytes(b"half an upload")
    orphan = root / "blobs" / "ab" / "cd" / ("abcd" + "0" * 28)
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"no object refers to me")
    for p in (junk_tmp, orphan):
        os.utime(p, (old, old))
    young_tmp = root / "tmp" / "young-upload"
    young_tmp.write_bytes(b"in flight")
    young_blob = root / "blobs" / "ef" / "01" / ("ef01" + "1" * 28)
    young_blob.parent.mkdir(parents=True, exist_ok=True)
    young_blob.write_bytes(b"just committed")

    # --dry-run reports and removes nothing
    code, rep = fsck(fresh_server, "--dry-run")
    assert code == 1 and not rep["clean"]
    assert rep["orphan_blobs"] == [orphan.name]
    assert rep["partials"] == [junk_tmp.name]
    assert rep["skipped_young"] == 2
    assert junk_tmp.exists() and orphan.exists()

    code, rep = fsck(fresh_server)
    assert code == 0 and rep["clean"], rep
    assert rep["removed"] == 2
    assert not junk_tmp.exists() and not orphan.exists()
    # younger than the grace period: may belong to an upload in flight, left alone
    assert young_tmp.exists() and young_blob.exists()
    assert conn.get_object(unique, "keep")[1] == b"keep me"

    code, rep = fsck(fresh_server, "--grace", "0")
    assert code == 0 and rep["removed"] == 2
    assert not young_tmp.exists() and not young_blob.exists()
    code, rep = fsck(fresh_server, "--grace", "0")
    assert code == 0 and rep["removed"] == 0 and rep["orphan_blobs"] == [] and rep["partials"] == []
    assert conn.get_object(unique, "keep")[1] == b"keep me"


def test_fsck_on_missing_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    srv = LampiServer(data_dir=tmp_path / "nothing", port=0)
    proc = srv.cli("fsck", check=False)
    assert proc.returncode not in (0, 1)  # neither clean nor "damage found"
    assert "no lampi data" in proc.stderr
    assert "Traceback" not in proc.stderr
