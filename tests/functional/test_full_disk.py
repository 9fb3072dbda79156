"""A full disk (issue 9, item 5): uploads are refused with 507 before the disk is full,
a full disk still lets clients delete, and nothing stored changes.

The data dir is a small filesystem of its own — a size-limited tmpfs and a loop-mounted
ext4 image — filled through the API and with filler files; swiftclient, boto3, the
``lampi`` CLI and raw HTTP talk to a real ``lampi serve``. Mounting needs root (as the
tests run in CI); other users skip these tests.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.functional.conftest import LampiServer, free_port

pytestmark = pytest.mark.slow

MiB = 1024 * 1024
FS_SIZE = 64 * MiB
MIN_FREE = 4 * MiB  # --min-free-space of the servers below
SWIFT_507 = "<html><h1>Insufficient Storage</h1><p>There was not enough space to save the resource. Drive: {}</p></html>"


# -- a small filesystem ---------------------------------------------------------------


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


@pytest.fixture(params=["tmpfs", "ext4"])
def small_fs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB filesystem mounted at ``tmp_path/fs`` (unmounted afterwards, whatever
    happened). ``ext4`` is a loop-mounted image: real blocks, journal and fsync."""
    yield from _mount(request.param, tmp_path)


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    yield from _mount("tmpfs", tmp_path)


def _mount(kind: str, tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root (the tests run as root in CI)")
    mnt = tmp_path / "fs"
    mnt.mkdir()
    if kind == "tmpfs":
        _run("mount", "-t", "tmpfs", "-o", f"size={FS_SIZE},mode=0755", "tmpfs", str(mnt))
    else:
        if not shutil.which("mkfs.ext4"):
            pytest.skip("mkfs.ext4 is not installed (e2fsprogs)")
        img = tmp_path / "fs.img"
        with open(img, "wb") as fh:
            fh.truncate(FS_SIZE)
        _run("mkfs.ext4", "-q", "-F", "-m", "0", str(img))  # -m 0: no blocks kept for root
        try:
            _run("mount", "-o", "loop", str(img), str(mnt))
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"cannot loop-mount an ext4 image here: {exc.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        for _ in range(50):  # a server still closing its files: try again shortly
            if subprocess.run(["umount", str(mnt)], capture_output=True).returncode == 0:
                break
            time.sleep(0.2)
        else:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def free(mnt: Path) -> int:
    st = os.statvfs(mnt)
    return st.f_bavail * st.f_frsize


def fill(mnt: Path, leave: int = 0) -> Path:
    """A filler file taking the free space down to ``leave`` bytes; 0: until ENOSPC."""
    (mnt / "filler").mkdir(exist_ok=True)
    path = mnt / "filler" / uuid.uuid4().hex
    refused = 0
    with open(path, "wb", buffering=0) as fh:
        while refused < 50:
            room = free(mnt) - leave
            if room <= 0 and leave:
                break
            try:
                fh.write(b"\xa5" * max(1024, min(MiB, room)))  # a short write takes the last bytes
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if leave or free(mnt) == 0:
                    break
                refused += 1  # blocks left that only the filesystem's own metadata may take
        try:
            os.fsync(fh.fileno())
        except OSError:
            pass
    return path


def reserve_size(mnt: Path) -> int:
    """The metadata reserve on this filesystem: 1/16 of its size (at most 8 MiB)."""
    st = os.statvfs(mnt)
    return min(8 * MiB, st.f_blocks * st.f_frsize // 16 // 4096 * 4096)


def unfill(mnt: Path) -> None:
    shutil.rmtree(mnt / "filler", ignore_errors=True)


# -- a server on it --------------------------------------------------------------------


def start(servers: list[LampiServer], mnt: Path, min_free: int = MIN_FREE, workers: int = 1) -> LampiServer:
    # the data dir is the filesystem's root; the server's log is written beside it, elsewhere
    srv = LampiServer(data_dir=mnt, port=free_port(), workers=workers,
                      extra_args=["--min-free-space", str(min_free)])
    servers.append(srv)  # stopped at the end even if it never became ready
    restart(srv)
    return srv


def restart(srv: LampiServer) -> None:
    """``srv.start()``, waiting on when a busy machine makes /healthcheck slow to answer."""
    try:
        srv.start(timeout=60)
    except requests.RequestException:
        deadline = time.monotonic() + 60
        while True:
            assert srv.proc is not None and srv.proc.poll() is None, srv.log()
            try:
                if requests.get(f"{srv.url}/healthcheck", timeout=10).status_code == 200:
                    return
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.2)


@pytest.fixture
def servers() -> Iterator[list[LampiServer]]:
    """The servers a test starts, all stopped when it ends (before the unmount)."""
    started: list[LampiServer] = []
    yield started
    for srv in started:
        if srv.proc is not None:
            srv.stop()


def swift(srv: LampiServer):  # noqa: ANN201
    import swiftclient

    rc = srv.openrc()
    return swiftclient.Connection(
        authurl=rc["OS_AUTH_URL"], user=rc["OS_USERNAME"], key=rc["OS_PASSWORD"], auth_version="3", retries=0,
        os_options={"user_domain_name": "Default", "project_domain_name": "Default",
                    "project_name": rc["OS_PROJECT_NAME"]})


def s3(srv: LampiServer):  # noqa: ANN201
    import boto3
    from botocore.config import Config

    keys = json.loads(srv.cli("credential", "create", "admin", "admin", "--json").stdout)
    return boto3.client("s3", endpoint_url=srv.url, aws_access_key_id=keys["access"],
                        aws_secret_access_key=keys["secret"], region_name="us-east-1",
                        config=Config(retries={"max_attempts": 1, "mode": "standard"}))


def swift_status(fn, *args, **kw) -> tuple[int, str]:  # noqa: ANN001
    """(status, body) of a swiftclient call that may fail."""
    from swiftclient import ClientException

    try:
        fn(*args, **kw)
    except ClientException as exc:
        return exc.http_status, (exc.http_response_content or b"").decode(errors="replace")
    return 200, ""


def s3_error(fn, *args, **kw) -> tuple[int, str]:  # noqa: ANN001
    """(HTTP status, S3 error code) of a boto3 call expected to fail."""
    from botocore.exceptions import ClientError

    try:
        fn(*args, **kw)
    except ClientError as exc:
        return exc.response["ResponseMetadata"]["HTTPStatusCode"], exc.response["Error"]["Code"]
    raise AssertionError(f"{fn.__name__} succeeded on a full disk")


def assert_swift_507(status: int, body: str, mnt: Path) -> None:
    assert (status, body) == (507, SWIFT_507.format(mnt.name))


def assert_no_5xx_but_507(srv: LampiServer) -> None:
    """No request was answered 500 (or any 5xx but 507), and nothing went unhandled."""
    bad = []
    for line in srv.log().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("msg") == "unhandled error" or (rec.get("status", 0) >= 500 and rec["status"] != 507):
            bad.append(line[:300])
    assert not bad, "\n".join(bad)


def leftovers(mnt: Path) -> list[str]:
    return sorted(p.name for p in (mnt / "tmp").iterdir())


def blob_count(mnt: Path) -> int:
    return sum(len(files) for _d, _s, files in os.walk(mnt / "blobs"))


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def put_expect_continue(url: str, token: str, length: int) -> tuple[int, bytes]:
    """PUT with ``Expect: 100-continue`` and never send the body: the final answer must
    come at once (a "100 Continue" would leave this waiting for ever, i.e. time out)."""
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
    try:
        conn.putrequest("PUT", u.path)
        conn.putheader("X-Auth-Token", token)
        conn.putheader("Content-Length", str(length))
        conn.putheader("Expect", "100-continue")
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def formpost(url: str, key: str, files: list[tuple[str, bytes]]) -> requests.Response:
    import hmac

    path = urlsplit(url).path
    expires = int(time.time() + 300)
    sig = hmac.new(key.encode(), f"{path}\n\n{10 * MiB}\n5\n{expires}".encode(), hashlib.sha256).hexdigest()
    fields = {"redirect": "", "max_file_size": str(10 * MiB), "max_file_count": "5", "expires": str(expires),
              "signature": sig}
    multipart = [(k, (None, v)) for k, v in fields.items()]
    multipart += [(f"file{i}", (name, data, "application/octet-stream")) for i, (name, data) in enumerate(files)]
    return requests.post(url, files=multipart, allow_redirects=False, timeout=60)


# -- the tests --------------------------------------------------------------------------


def test_full_disk_refuses_uploads_with_507_and_still_deletes(small_fs: Path, servers: list[LampiServer]) -> None:
    mnt = small_fs
    srv = start(servers, mnt, workers=2)
    sw, s3c = swift(srv), s3(srv)
    url, token = sw.get_auth()
    stored: dict[tuple[str, str], bytes] = {}

    # what is stored before the disk fills, to be found unchanged at the end
    sw.put_container("keep")
    sw.put_container("doomed")
    sw.put_container("empty")
    for name, size in (("a", MiB), ("b", 100_000), ("dir/c", 1)):
        stored["keep", name] = os.urandom(size)
        sw.put_object("keep", name, stored["keep", name])
    for i in range(3):
        sw.put_object("doomed", f"d{i}", os.urandom(2 * MiB))
    s3c.create_bucket(Bucket="s3keep")
    s3c.create_bucket(Bucket="s3doomed")
    s3c.create_bucket(Bucket="s3empty")
    stored["s3keep", "x"] = os.urandom(MiB)
    s3c.put_object(Bucket="s3keep", Key="x", Body=stored["s3keep", "x"])
    for i in range(3):
        s3c.put_object(Bucket="s3doomed", Key=f"y{i}", Body=os.urandom(MiB))
    to_complete = s3c.create_multipart_upload(Bucket="s3keep", Key="mpu")["UploadId"]
    part = s3c.upload_part(Bucket="s3keep", Key="mpu", UploadId=to_complete, PartNumber=1, Body=b"p" * 1000)
    to_abort = s3c.create_multipart_upload(Bucket="s3doomed", Key="mpu")["UploadId"]
    s3c.upload_part(Bucket="s3doomed", Key="mpu", UploadId=to_abort, PartNumber=1, Body=os.urandom(MiB))
    sw.post_account({"X-Account-Meta-Temp-URL-Key": "formkey"})

    # 1. fill through the API: uploads are refused with 507 while min_free_space is still free
    sw.put_container("fill")
    filled = 0
    while True:
        status, body = swift_status(sw.put_object, "fill", f"f{filled}", os.urandom(2 * MiB))
        if status == 507:
            break
        assert status == 200, (status, body)
        filled += 1
        assert filled < 40, "the disk never filled"
    assert_swift_507(status, body, mnt)
    assert filled > 10
    # the floor holds for object data; the last upload's metadata commit (a few WAL pages)
    # comes after its check
    assert free(mnt) >= MIN_FREE - 256 * 1024, "an upload went past --min-free-space"
    # a declared length past the free space: refused before the body is sent
    status, raw = put_expect_continue(f"{url}/keep/big", token, 10 * free(mnt))
    assert (status, raw.decode()) == (507, SWIFT_507.format(mnt.name))
    assert s3_error(s3c.put_object, Bucket="s3keep", Key="big", Body=os.urandom(3 * MiB)) == (507, "InsufficientStorage")
    assert leftovers(mnt) == []

    # 2. below the floor: every kind of upload is refused, nothing is left behind
    fill(mnt, leave=MiB)
    blobs_before = blob_count(mnt)
    assert_swift_507(*swift_status(sw.put_object, "keep", "new", b"n" * 1000), mnt)
    assert_swift_507(*swift_status(sw.put_object, "keep", "chunked", iter([b"c" * 1000] * 3)), mnt)
    assert_swift_507(*swift_status(sw.put_object, "keep", "copy", None, headers={"X-Copy-From": "/keep/a"}), mnt)
    manifest = json.dumps([{"path": "/keep/a", "etag": md5(stored["keep", "a"]), "size_bytes": MiB},
                           {"path": "/keep/b", "etag": md5(stored["keep", "b"]), "size_bytes": 100_000}])
    assert_swift_507(*swift_status(sw.put_object, "keep", "slo", manifest,
                                   query_string="multipart-manifest=put"), mnt)
    r = requests.put(f"{url}/keep?extract-archive=tar", data=tar_of({"t1": b"t" * 5000}),
                     headers={"X-Auth-Token": token, "Accept": "application/json"}, timeout=60)
    assert r.status_code == 200 and r.json()["Errors"] == [["keep/t1", "507 Insufficient Storage"]], r.text
    assert r.json()["Number Files Created"] == 0
    r = formpost(f"{url}/keep/form/", "formkey", [("f.txt", b"form")])
    assert (r.status_code, r.text) == (507, SWIFT_507.format(mnt.name))
    assert s3_error(s3c.put_object, Bucket="s3keep", Key="new", Body=b"n" * 1000) == (507, "InsufficientStorage")
    assert s3_error(s3c.copy_object, Bucket="s3keep", Key="copy",
                    CopySource={"Bucket": "s3keep", "Key": "x"}) == (507, "InsufficientStorage")
    assert s3_error(s3c.upload_part, Bucket="s3keep", Key="mpu", UploadId=to_complete, PartNumber=2,
                    Body=b"q" * 1000) == (507, "InsufficientStorage")
    assert s3_error(s3c.upload_part_copy, Bucket="s3keep", Key="mpu", UploadId=to_complete, PartNumber=3,
                    CopySource={"Bucket": "s3keep", "Key": "x"}) == (507, "InsufficientStorage")
    complete = {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
    assert s3_error(s3c.complete_multipart_upload, Bucket="s3keep", Key="mpu", UploadId=to_complete,
                    MultipartUpload=complete) == (507, "InsufficientStorage")
    assert leftovers(mnt) == [] and blob_count(mnt) == blobs_before

    # 3. completely full: uploads 507, and deleting works — through both APIs
    fill(mnt)
    assert free(mnt) == 0
    assert_swift_507(*swift_status(sw.put_object, "keep", "new", b"n"), mnt)
    assert s3_error(s3c.put_object, Bucket="s3keep", Key="new", Body=b"n") == (507, "InsufficientStorage")
    sw.delete_object("doomed", "d0")
    s3c.delete_object(Bucket="s3doomed", Key="y0")
    out = s3c.delete_objects(Bucket="s3doomed", Delete={"Objects": [{"Key": "y1"}, {"Key": "y2"}]})
    assert sorted(d["Key"] for d in out["Deleted"]) == ["y1", "y2"] and not out.get("Errors")
    s3c.abort_multipart_upload(Bucket="s3doomed", Key="mpu", UploadId=to_abort)
    sw.delete_container("empty")
    s3c.delete_bucket(Bucket="s3empty")
    assert free(mnt) >= 5 * MiB  # the deleted blobs' space came back
    assert [o["name"] for o in sw.get_container("doomed")[1]] == ["d1", "d2"]
    assert s3c.list_objects_v2(Bucket="s3doomed")["KeyCount"] == 0
    assert "empty" not in [c["name"] for c in sw.get_account()[1]]

    # 4. space freed: uploads work again, and everything stored before is unchanged
    unfill(mnt)
    sw.put_object("keep", "after", b"after")
    s3c.put_object(Bucket="s3keep", Key="after", Body=b"after")
    s3c.complete_multipart_upload(Bucket="s3keep", Key="mpu", UploadId=to_complete, MultipartUpload=complete)
    for (c, name), data in stored.items():
        if c == "keep":
            headers, body = sw.get_object(c, name)
            assert (headers["etag"], body) == (md5(data), data)
        else:
            obj = s3c.get_object(Bucket=c, Key=name)
            assert (obj["ETag"], obj["Body"].read()) == (f'"{md5(data)}"', data)
    assert [o["name"] for o in sw.get_container("keep")[1]] == ["a", "after", "b", "dir/c"]
    assert [o["Key"] for o in s3c.list_objects_v2(Bucket="s3keep")["Contents"]] == ["after", "mpu", "x"]
    assert len(sw.get_container("fill")[1]) == filled
    assert leftovers(mnt) == []
    # the metadata reserve is whole again once there is room (the writer looks every 2 s)
    reserve, whole = mnt / "meta.db-reserve", reserve_size(mnt)
    deadline = time.monotonic() + 60
    while reserve.stat().st_size < whole and time.monotonic() < deadline:
        sw.post_container("keep", {"X-Container-Meta-Tick": str(time.time())})
        time.sleep(0.5)
    assert reserve.stat().st_size == whole
    report = json.loads(srv.cli("fsck", "--dry-run", "--grace", "0", "--json", check=False).stdout)
    assert (report["orphan_blobs"], report["partials"], report["missing_blobs"]) == ([], [], [])
    assert_no_5xx_but_507(srv)


def test_restart_on_a_full_disk_then_delete(small_tmpfs: Path, servers: list[LampiServer]) -> None:
    """A server (re)started on a full disk serves, and deletes free space: SQLite must
    recreate its WAL and index, which the metadata reserve makes room for."""
    mnt = small_tmpfs
    srv = start(servers, mnt)
    sw = swift(srv)
    sw.put_container("c")
    keep = os.urandom(MiB)
    sw.put_object("c", "keep", keep)
    for i in range(4):
        sw.put_object("c", f"big{i}", os.urandom(4 * MiB))
    srv.stop()  # the last connection goes: SQLite removes meta.db-wal and -shm
    assert not (mnt / "meta.db-wal").exists()
    assert (mnt / "meta.db-reserve").exists()
    fill(mnt)
    assert free(mnt) == 0

    restart(srv)
    sw = swift(srv)
    assert_swift_507(*swift_status(sw.put_object, "c", "new", b"n"), mnt)
    s3c = s3(srv)  # (a credential is a small metadata write: the reserve's slice has room for it)
    s3c.delete_object(Bucket="c", Key="big0")
    sw.delete_object("c", "big1")
    assert free(mnt) >= 5 * MiB  # 8 MiB of blobs, less the WAL and a reserve growing back
    assert [o["name"] for o in sw.get_container("c")[1]] == ["big2", "big3", "keep"]
    # slices were given back for SQLite to open and write (and may be grown back by now)
    assert "disk full: gave 1048576 bytes of the metadata reserve" in srv.log()
    unfill(mnt)
    sw.put_object("c", "new", b"new")
    assert sw.get_object("c", "keep")[1] == keep
    assert_no_5xx_but_507(srv)


def test_an_upload_meeting_a_full_disk_mid_stream(small_tmpfs: Path, servers: list[LampiServer]) -> None:
    """With no floor (--min-free-space 0) the disk really fills under an upload: ENOSPC
    is 507 in both APIs, no partial blob or metadata remains, the old version stays."""
    mnt = small_tmpfs
    srv = start(servers, mnt, min_free=0)
    sw, s3c = swift(srv), s3(srv)
    sw.put_container("c")
    old = os.urandom(MiB)
    sw.put_object("c", "obj", old)
    s3c.put_object(Bucket="c", Key="s3obj", Body=old)
    fill(mnt, leave=3 * MiB)
    blobs = blob_count(mnt)

    big = os.urandom(8 * MiB)
    assert_swift_507(*swift_status(sw.put_object, "c", "obj", big), mnt)  # a replacement, Content-Length
    assert_swift_507(*swift_status(sw.put_object, "c", "new", iter([big[i:i + MiB] for i in range(0, 8 * MiB, MiB)])),
                     mnt)  # chunked: no length announced
    assert s3_error(s3c.put_object, Bucket="c", Key="s3obj", Body=big) == (507, "InsufficientStorage")
    assert s3_error(s3c.put_object, Bucket="c", Key="s3new", Body=big) == (507, "InsufficientStorage")
    assert leftovers(mnt) == [] and blob_count(mnt) == blobs
    assert swift_status(sw.head_object, "c", "new")[0] == 404
    assert sorted(o["name"] for o in sw.get_container("c")[1]) == ["obj", "s3obj"]
    assert sw.get_object("c", "obj")[1] == old
    assert s3c.get_object(Bucket="c", Key="s3obj")["Body"].read() == old
    unfill(mnt)
    sw.put_object("c", "obj", big)
    assert sw.get_object("c", "obj")[1] == big
    assert_no_5xx_but_507(srv)


def test_admin_commands_on_a_full_disk_print_one_line(small_tmpfs: Path, servers: list[LampiServer]) -> None:
    """With the disk full and its reserve used up, admin commands fail with one line
    naming the problem — no traceback."""
    mnt = small_tmpfs
    srv = start(servers, mnt)
    srv.cli("project", "create", "p1")
    srv.stop()
    (mnt / "meta.db-reserve").unlink(missing_ok=True)  # used up by earlier trouble
    fill(mnt)
    for args in (["user", "create", "bob", "--password", "pw"], ["user", "list"], ["project", "create", "p2"],
                 ["fsck", "--dry-run"]):
        res = srv.cli(*args, check=False)
        assert res.returncode == 1, (args, res.stdout, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and "no space left on the filesystem holding" in lines[0], (args, res.stderr)
        assert "Traceback" not in res.stdout + res.stderr
    unfill(mnt)
    assert "p1" in srv.cli("project", "list").stdout
