"""S3 server-side encryption with real clients (boto3, the aws CLI, s3cmd, raw signed
requests) against a real server: SSE-C, SSE-S3, SSE-KMS over lampi's local key store,
bucket default encryption, multipart uploads and copies between modes, ranged reads;
the bytes on disk are never the plaintext; Swift reads of the same objects; fsck and
key files. Before lampi/core/sse.py every encryption header was accepted and ignored:
objects were stored in clear and readable without their key."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import requests
import swiftclient
from botocore.exceptions import ClientError

from tests.functional.conftest import LampiServer, free_port
from tests.functional.test_s3_clients import S3CMD, aws_env, run, s3cmd_config
from tests.functional.test_s3_multipart import code, signer

MiB = 1024 * 1024
KEY = os.urandom(32)
OTHER = os.urandom(32)


def sse_c(key: bytes = KEY) -> dict[str, object]:
    return {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key}


def headers_c(key: bytes = KEY, prefix: str = "x-amz-server-side-encryption-customer-") -> dict[str, str]:
    return {prefix + "algorithm": "AES256", prefix + "key": base64.b64encode(key).decode(),
            prefix + "key-MD5": base64.b64encode(hashlib.md5(key).digest()).decode()}


def marked(size: int) -> bytes:
    """Random bytes with a recognisable marker every 4 KiB (searched for on disk)."""
    data = bytearray(os.urandom(size))
    for i in range(0, max(size - 32, 0), 4096):
        data[i:i + 32] = b"PLAINTEXT-MARKER-0123456789abcdef"[:32]
    return bytes(data)


def on_disk(srv: LampiServer, needle: bytes) -> bool:
    """Whether any file of the data dir holds ``needle``: blob files, and meta.db and its
    WAL, where small objects' bytes are kept (inline blobs; never an encrypted one's)."""
    for path in srv.data_dir.rglob("*"):
        if path.is_file() and needle in path.read_bytes():
            return True
    return False


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LampiServer]:
    """A server that takes SSE-C keys over plain HTTP (the default refuses them, as S3),
    with KMS keys k1 and k2."""
    base = tmp_path_factory.mktemp("sse")
    s = LampiServer(data_dir=base / "data", port=free_port(), extra_args=["--no-sse-c-require-tls"])
    s.start()
    try:
        s.cli("kms", "create", "k1")
        s.cli("kms", "create", "k2")
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def keys(srv: LampiServer) -> dict[str, str]:
    return json.loads(srv.cli("credential", "create", "admin", "admin", "--json").stdout)


@pytest.fixture
def c3(srv: LampiServer, keys: dict[str, str]):  # noqa: ANN201
    return boto3.client("s3", endpoint_url=srv.url, aws_access_key_id=keys["access"],
                        aws_secret_access_key=keys["secret"], region_name="us-east-1")


@pytest.fixture
def swift(srv: LampiServer) -> swiftclient.Connection:
    rc = srv.openrc()
    return swiftclient.Connection(authurl=rc["OS_AUTH_URL"], user=rc["OS_USERNAME"], key=rc["OS_PASSWORD"],
                                  os_options={"user_domain_name": rc["OS_USER_DOMAIN_NAME"],
                                              "project_domain_name": rc["OS_PROJECT_DOMAIN_NAME"],
                                              "project_name": rc["OS_PROJECT_NAME"]},
                                  auth_version="3", retries=0)


def hdrs(resp: dict) -> dict[str, str]:
    return resp["ResponseMetadata"]["HTTPHeaders"]


# -- SSE-C -------------------------------------------------------------------------------


def test_sse_c_object_is_stored_encrypted_and_needs_its_key(srv, c3, swift, unique) -> None:  # noqa: ANN001
    c3.create_bucket(Bucket=unique)
    data = marked(300_000)
    put = c3.put_object(Bucket=unique, Key="secret", Body=data, **sse_c())
    assert put["SSECustomerAlgorithm"] == "AES256"
    assert put["SSECustomerKeyMD5"] == base64.b64encode(hashlib.md5(KEY).digest()).decode()
    assert put["ETag"].strip('"') != hashlib.md5(data).hexdigest()  # as S3: not the MD5 of the plaintext
    assert not on_disk(srv, b"PLAINTEXT-MARKER")
    # every read needs the key: GET and HEAD without it, or with another, are 400
    for call in (c3.get_object, c3.head_object):
        with pytest.raises(ClientError) as e:
            call(Bucket=unique, Key="secret")
        assert code(e)[0] == 400
        with pytest.raises(ClientError) as e:
            call(Bucket=unique, Key="secret", **sse_c(OTHER))
        assert code(e)[0] == 400
    with pytest.raises(ClientError) as e:
        c3.get_object(Bucket=unique, Key="secret")
    assert code(e) == (400, "InvalidRequest")
    with pytest.raises(ClientError) as e:
        c3.get_object(Bucket=unique, Key="secret", **sse_c(OTHER))
    assert code(e) == (400, "InvalidArgument")
    got = c3.get_object(Bucket=unique, Key="secret", **sse_c())
    assert got["Body"].read() == data and got["SSECustomerAlgorithm"] == "AES256"
    head = c3.head_object(Bucket=unique, Key="secret", **sse_c())
    assert head["ContentLength"] == len(data) and head["ETag"] == put["ETag"]
    # ranges decrypt only what they need: inside a chunk, across chunks, the tail
    for first, last in ((0, 0), (5, 70_000), (65_535, 65_536), (131_000, 299_999), (299_990, 299_999)):
        r = c3.get_object(Bucket=unique, Key="secret", Range=f"bytes={first}-{last}", **sse_c())
        assert r["Body"].read() == data[first:last + 1] and r["ContentRange"] == f"bytes {first}-{last}/300000"
    # a plain object read with a customer key: refused, not ignored
    c3.put_object(Bucket=unique, Key="plain", Body=b"x")
    with pytest.raises(ClientError) as e:
        c3.get_object(Bucket=unique, Key="plain", **sse_c())
    assert code(e) == (400, "InvalidRequest")
    # Swift cannot supply the key: HEAD answers from the metadata, GET is refused
    assert int(swift.head_object(unique, "secret")["content-length"]) == len(data)
    with pytest.raises(swiftclient.ClientException) as se:
        swift.get_object(unique, "secret")
    assert se.value.http_status == 400 and "customer-provided key" in se.value.http_response_content.decode()
    # listings show the plaintext size and the same opaque ETag
    listed = {o["Key"]: o for o in c3.list_objects_v2(Bucket=unique)["Contents"]}
    assert listed["secret"]["Size"] == len(data) and listed["secret"]["ETag"] == put["ETag"]


def test_sse_c_header_errors_store_nothing(srv, keys, c3, unique) -> None:  # noqa: ANN001
    c3.create_bucket(Bucket=unique)
    send = signer(srv, keys)
    good = headers_c()
    p = "x-amz-server-side-encryption-customer-"
    cases = [
        ({k: v for k, v in good.items() if k != p + "key-MD5"}, "InvalidArgument", "client calculated MD5"),
        ({**good, p + "key-MD5": base64.b64encode(b"0" * 16).decode()}, "InvalidArgument", "did not match"),
        ({k: v for k, v in good.items() if k != p + "algorithm"}, "InvalidArgument", "valid encryption algorithm"),
        ({p + "algorithm": "AES256"}, "InvalidArgument", "appropriate secret key"),
        ({**good, p + "algorithm": "AES128"}, "InvalidEncryptionAlgorithmError", "AES256"),
        (headers_c(os.urandom(16)), "InvalidArgument", "secret key was invalid"),
        ({**good, "x-amz-server-side-encryption": "AES256"}, "InvalidArgument", "incompatible"),
        ({"x-amz-server-side-encryption": "aes:kms"}, "InvalidArgument", "not supported"),
        ({"x-amz-server-side-encryption": "AES256", "x-amz-server-side-encryption-aws-kms-key-id": "k1"},
         "InvalidArgument", "only valid"),
        ({"x-amz-server-side-encryption-aws-kms-key-id": "k1"}, "InvalidArgument", "only valid"),
        ({"x-amz-server-side-encryption": "aws:kms", "x-amz-server-side-encryption-aws-kms-key-id": "nope"},
         "KMS.NotFoundException", "Invalid keyId"),
        ({"x-amz-server-side-encryption": "aws:kms"}, "InvalidArgument", "aws-kms-key-id"),
    ]
    for extra, want, text in cases:
        r = send("PUT", f"/{unique}/obj", b"hello", extra)
        assert r.status_code == 400, (extra, r.text)
        assert f"<Code>{want}</Code>" in r.text and text in r.text, (extra, r.text)
    for extra, status in (({"x-amz-server-side-encryption": "aws:kms:dsse"}, 501),
                          ({"x-amz-server-side-encryption": "aws:kms", "x-amz-server-side-encryption-aws-kms-key-id":
                            "k1", "x-amz-server-side-encryption-context": base64.b64encode(b"{}").decode()}, 501)):
        r = send("PUT", f"/{unique}/obj", b"hello", extra)
        assert r.status_code == status and "<Code>NotImplemented</Code>" in r.text, r.text
    assert c3.list_objects_v2(Bucket=unique)["KeyCount"] == 0
    # reads take no x-amz-server-side-encryption header (S3: writes only)
    c3.put_object(Bucket=unique, Key="obj", Body=b"hello", ServerSideEncryption="AES256")
    for extra in ({"x-amz-server-side-encryption": "AES256"}, {"x-amz-server-side-encryption-aws-kms-key-id": "k1"}):
        for method in ("GET", "HEAD"):
            assert send(method, f"/{unique}/obj", b"", extra).status_code == 400


def test_sse_c_keys_over_plain_http_are_refused_by_default(tmp_path: Path) -> None:
    """As S3: a customer key sent in clear is refused, unless a trusted TLS proxy says
    the client used HTTPS (X-Forwarded-Proto), or the operator allows plain HTTP."""
    s = LampiServer(data_dir=tmp_path / "data", port=free_port(), extra_args=["--trusted-proxies", "127.0.0.1"])
    s.start()
    try:
        keys = json.loads(s.cli("credential", "create", "admin", "admin", "--json").stdout)
        c = boto3.client("s3", endpoint_url=s.url, aws_access_key_id=keys["access"],
                         aws_secret_access_key=keys["secret"], region_name="us-east-1")
        c.create_bucket(Bucket="bkt")
        with pytest.raises(ClientError) as e:
            c.put_object(Bucket="bkt", Key="k", Body=b"x", **sse_c())
        assert code(e) == (400, "InvalidRequest") and "secure connection" in e.value.response["Error"]["Message"]
        assert "Contents" not in c.list_objects_v2(Bucket="bkt")
        c.meta.events.register("before-sign.s3", lambda request, **_: request.headers.add_header(
            "X-Forwarded-Proto", "https"))
        c.put_object(Bucket="bkt", Key="k", Body=b"x", **sse_c())
        assert c.get_object(Bucket="bkt", Key="k", **sse_c())["Body"].read() == b"x"
    finally:
        s.stop(signal.SIGKILL)


# -- SSE-S3, SSE-KMS and bucket defaults ----------------------------------------------------


def test_sse_s3_and_kms_objects_are_encrypted_and_read_by_both_apis(srv, c3, swift, unique) -> None:  # noqa: ANN001
    c3.create_bucket(Bucket=unique)
    data = marked(200_000)
    put = c3.put_object(Bucket=unique, Key="s3", Body=data, ServerSideEncryption="AES256")
    assert put["ServerSideEncryption"] == "AES256" and put["ETag"].strip('"') == hashlib.md5(data).hexdigest()
    put = c3.put_object(Bucket=unique, Key="kms", Body=data, ServerSideEncryption="aws:kms", SSEKMSKeyId="k1")
    assert put["ServerSideEncryption"] == "aws:kms" and put["SSEKMSKeyId"] == "k1"
    assert not on_disk(srv, b"PLAINTEXT-MARKER")
    for key, mode in (("s3", "AES256"), ("kms", "aws:kms")):
        got = c3.get_object(Bucket=unique, Key=key)
        assert got["ServerSideEncryption"] == mode and got["Body"].read() == data
        assert c3.get_object(Bucket=unique, Key=key, Range="bytes=100000-100009")["Body"].read() == \
            data[100000:100010]
        # the server holds the key: Swift reads decrypt, as Swift's own encryption does
        assert swift.get_object(unique, key)[1] == data
        assert swift.get_object(unique, key, headers={"Range": "bytes=-7"})[1] == data[-7:]
    assert c3.head_object(Bucket=unique, Key="kms")["SSEKMSKeyId"] == "k1"
    # a Swift POST (which replaces system metadata) keeps the object readable
    swift.post_object(unique, "kms", headers={"X-Object-Meta-Color": "blue"})
    assert c3.get_object(Bucket=unique, Key="kms")["Body"].read() == data
    # bytes used count the plaintext (what quotas count too)
    assert int(swift.head_container(unique)["x-container-bytes-used"]) == 2 * len(data)


def test_bucket_default_encryption_applies_to_every_write(srv, c3, swift, unique) -> None:  # noqa: ANN001
    c3.create_bucket(Bucket=unique)
    with pytest.raises(ClientError) as e:
        c3.get_bucket_encryption(Bucket=unique)
    assert code(e) == (404, "ServerSideEncryptionConfigurationNotFoundError")
    conf = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "k2"},
                       "BucketKeyEnabled": True}]}
    c3.put_bucket_encryption(Bucket=unique, ServerSideEncryptionConfiguration=conf)
    got = c3.get_bucket_encryption(Bucket=unique)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert got["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "k2"}
    data = marked(10_000)
    put = c3.put_object(Bucket=unique, Key="a", Body=data)
    assert put["ServerSideEncryption"] == "aws:kms" and put["SSEKMSKeyId"] == "k2"
    # a Swift upload into the bucket is encrypted too (one namespace, one default)
    swift.put_object(unique, "from-swift", data)
    head = c3.head_object(Bucket=unique, Key="from-swift")
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == "k2"
    assert swift.get_object(unique, "from-swift")[1] == data
    assert not on_disk(srv, b"PLAINTEXT-MARKER")
    # an explicit request wins over the default
    assert c3.put_object(Bucket=unique, Key="b", Body=b"x", ServerSideEncryption="AES256")["ServerSideEncryption"] \
        == "AES256"
    c3.delete_bucket_encryption(Bucket=unique)
    assert "ServerSideEncryption" not in c3.put_object(Bucket=unique, Key="c", Body=b"x")
    with pytest.raises(ClientError) as e:
        c3.get_bucket_encryption(Bucket=unique)
    assert code(e)[1] == "ServerSideEncryptionConfigurationNotFoundError"
    assert c3.get_object(Bucket=unique, Key="a")["Body"].read() == data  # objects keep their encryption
    bad = [({"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256", "KMSMasterKeyID": "k1"}}]},
            "InvalidArgument"),
           ({"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "nope"}}]},
            "KMS.NotFoundException"),
           ({"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES512"}}]}, "MalformedXML")]
    for conf, want in bad:
        with pytest.raises(ClientError) as e:
            c3.put_bucket_encryption(Bucket=unique, ServerSideEncryptionConfiguration=conf)
        assert code(e) == (400, want)


# -- multipart uploads and copies ------------------------------------------------------------


def test_multipart_with_a_customer_key(srv, c3, unique) -> None:  # noqa: ANN001
    c3.create_bucket(Bucket=unique)
    up = c3.create_multipart_upload(Bucket=unique, Key="mp", **sse_c())
    assert up["SSECustomerAlgorithm"] == "AES256"
    uid = up["UploadId"]
    parts_data = [marked(5 * MiB + 3), os.urandom(1_000_001)]
    # every part needs the upload's key: none, or another, is a 400 and stores nothing
    for extra in ({}, sse_c(OTHER)):
        with pytest.raises(ClientError) as e:
            c3.upload_part(Bucket=unique, Key="mp", UploadId=uid, PartNumber=1, Body=b"x", **extra)
        assert code(e)[0] == 400
    parts = []
    for n, body in enumerate(parts_data, 1):
        r = c3.upload_part(Bucket=unique, Key="mp", UploadId=uid, PartNumber=n, Body=body, **sse_c())
        assert r["SSECustomerAlgorithm"] == "AES256"
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    assert [p["Size"] for p in c3.list_parts(Bucket=unique, Key="mp", UploadId=uid)["Parts"]] == \
        [len(b) for b in parts_data]
    with pytest.raises(ClientError) as e:  # completing needs it too (as Ceph RGW, and s3-tests)
        c3.complete_multipart_upload(Bucket=unique, Key="mp", UploadId=uid, MultipartUpload={"Parts": parts})
    assert code(e)[0] == 400
    done = c3.complete_multipart_upload(Bucket=unique, Key="mp", UploadId=uid, MultipartUpload={"Parts": parts},
                                        **sse_c())
    assert hdrs(done)["x-amz-server-side-encryption-customer-algorithm"] == "AES256"
    assert not on_disk(srv, b"PLAINTEXT-MARKER")
    whole = b"".join(parts_data)
    with pytest.raises(ClientError) as e:
        c3.get_object(Bucket=unique, Key="mp")
    assert code(e) == (400, "InvalidRequest")
    assert c3.get_object(Bucket=unique, Key="mp", **sse_c())["Body"].read() == whole
    edge = len(parts_data[0])
    for first, last in ((edge - 10, edge + 10), (0, 99), (len(whole) - 5, len(whole) - 1)):
        r = c3.get_object(Bucket=unique, Key="mp", Range=f"bytes={first}-{last}", **sse_c())
        assert r["Body"].read() == whole[first:last + 1]
    r = c3.get_object(Bucket=unique, Key="mp", PartNumber=2, **sse_c())
    assert r["Body"].read() == parts_data[1] and r["PartsCount"] == 2


def test_copies_between_encryption_modes(srv, keys, c3, unique) -> None:  # noqa: ANN001
    c3.create_bucket(Bucket=unique)
    data = marked(5 * MiB + 1000)
    c3.put_object(Bucket=unique, Key="c", Body=data, **sse_c())
    src = {"Bucket": unique, "Key": "c"}
    copy_key = {"CopySourceSSECustomerAlgorithm": "AES256", "CopySourceSSECustomerKey": KEY}
    with pytest.raises(ClientError) as e:  # an SSE-C source needs its key
        c3.copy_object(Bucket=unique, Key="x", CopySource=src)
    assert code(e) == (400, "InvalidRequest")
    with pytest.raises(ClientError) as e:
        c3.copy_object(Bucket=unique, Key="x", CopySource=src, CopySourceSSECustomerAlgorithm="AES256",
                       CopySourceSSECustomerKey=OTHER)
    assert code(e)[0] == 400
    r = c3.copy_object(Bucket=unique, Key="to-s3", CopySource=src, ServerSideEncryption="AES256", **copy_key)
    assert r["ServerSideEncryption"] == "AES256"
    r = c3.copy_object(Bucket=unique, Key="to-kms", CopySource=src, ServerSideEncryption="aws:kms",
                       SSEKMSKeyId="k2", **copy_key)
    assert r["SSEKMSKeyId"] == "k2"
    r = c3.copy_object(Bucket=unique, Key="to-other-c", CopySource=src, **sse_c(OTHER), **copy_key)
    assert r["SSECustomerAlgorithm"] == "AES256"
    c3.copy_object(Bucket=unique, Key="to-plain", CopySource=src, **copy_key)
    for key, extra in (("to-s3", {}), ("to-kms", {}), ("to-other-c", sse_c(OTHER)), ("to-plain", {})):
        assert c3.get_object(Bucket=unique, Key=key, **extra)["Body"].read() == data, key
    assert "ServerSideEncryption" not in c3.head_object(Bucket=unique, Key="to-plain")
    # re-encrypting an object in place is a copy onto itself that changes its encryption
    c3.copy_object(Bucket=unique, Key="to-plain", CopySource={"Bucket": unique, "Key": "to-plain"},
                   ServerSideEncryption="AES256")
    assert c3.head_object(Bucket=unique, Key="to-plain")["ServerSideEncryption"] == "AES256"
    # UploadPartCopy: source decrypted with its key, the part encrypted with the upload's
    up = c3.create_multipart_upload(Bucket=unique, Key="mp", ServerSideEncryption="aws:kms", SSEKMSKeyId="k1")
    r = c3.upload_part_copy(Bucket=unique, Key="mp", UploadId=up["UploadId"], PartNumber=1, CopySource=src,
                            CopySourceRange=f"bytes=0-{5 * MiB}", **copy_key)
    assert hdrs(r)["x-amz-server-side-encryption"] == "aws:kms"
    # UploadPart headers (boto3 sends none) may repeat the upload's encryption, never name another
    send = signer(srv, keys)
    path = f"/{unique}/mp?partNumber=2&uploadId={up['UploadId']}"
    kms = {"x-amz-server-side-encryption": "aws:kms", "x-amz-server-side-encryption-aws-kms-key-id": "k2"}
    bad = send("PUT", path, b"tail", kms)
    assert bad.status_code == 400 and "<Code>InvalidArgument</Code>" in bad.text
    bad = send("PUT", path, b"tail", {"x-amz-server-side-encryption": "AES256"})
    assert bad.status_code == 400
    part = send("PUT", path, b"tail", {**kms, "x-amz-server-side-encryption-aws-kms-key-id": "k1"})
    assert part.status_code == 200 and part.headers["x-amz-server-side-encryption-aws-kms-key-id"] == "k1"
    c3.complete_multipart_upload(Bucket=unique, Key="mp", UploadId=up["UploadId"], MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": r["CopyPartResult"]["ETag"]}, {"PartNumber": 2, "ETag": part.headers["ETag"]}]})
    got = c3.get_object(Bucket=unique, Key="mp")
    assert got["SSEKMSKeyId"] == "k1" and got["Body"].read() == data[:5 * MiB + 1] + b"tail"
    assert not on_disk(srv, b"PLAINTEXT-MARKER")


# -- the aws CLI and s3cmd ---------------------------------------------------------------------


def test_aws_cli_sse_and_sse_c(srv, keys, c3, unique, tmp_path) -> None:  # noqa: ANN001
    aws = [shutil.which("aws") or "aws", "--endpoint-url", srv.url]
    env = aws_env(keys, tmp_path)
    src = tmp_path / "in.bin"
    src.write_bytes(marked(9 * MiB))  # above the CLI's 8 MiB threshold: a multipart upload
    keyfile = tmp_path / "key.bin"
    keyfile.write_bytes(KEY)
    run([*aws, "s3", "mb", f"s3://{unique}"], env)
    run([*aws, "s3", "cp", str(src), f"s3://{unique}/s3.bin", "--sse", "AES256"], env)
    run([*aws, "s3", "cp", str(src), f"s3://{unique}/kms.bin", "--sse", "aws:kms", "--sse-kms-key-id", "k1"], env)
    run([*aws, "s3", "cp", str(src), f"s3://{unique}/c.bin", "--sse-c", "AES256", "--sse-c-key",
         f"fileb://{keyfile}"], env)
    head = json.loads(run([*aws, "s3api", "head-object", "--bucket", unique, "--key", "kms.bin"], env).stdout)
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == "k1"
    assert c3.head_object(Bucket=unique, Key="s3.bin")["ServerSideEncryption"] == "AES256"
    assert not on_disk(srv, b"PLAINTEXT-MARKER")
    failed = run([*aws, "s3", "cp", f"s3://{unique}/c.bin", str(tmp_path / "nokey.bin")], env, check=False)
    assert failed.returncode != 0 and not (tmp_path / "nokey.bin").exists()
    for name, extra in (("s3.bin", []), ("kms.bin", []), ("c.bin", ["--sse-c", "AES256", "--sse-c-key",
                                                                    f"fileb://{keyfile}"])):
        run([*aws, "s3", "cp", f"s3://{unique}/{name}", str(tmp_path / name), *extra], env)
        assert (tmp_path / name).read_bytes() == src.read_bytes(), name


@pytest.mark.skipif(not shutil.which("s3cmd") and not Path(S3CMD).exists(), reason="s3cmd not installed")
def test_s3cmd_server_side_encryption(srv, keys, c3, unique, tmp_path) -> None:  # noqa: ANN001
    cfg = s3cmd_config(tmp_path, srv, keys, v2=False)
    s3c = [S3CMD, "-c", str(cfg), "--no-progress"]
    src = tmp_path / "f.txt"
    src.write_bytes(marked(50_000))
    run([*s3c, "mb", f"s3://{unique}"])
    run([*s3c, "put", "--server-side-encryption", str(src), f"s3://{unique}/sse.txt"])
    run([*s3c, "put", "--server-side-encryption-kms-id", "k2", str(src), f"s3://{unique}/kms.txt"])
    assert c3.head_object(Bucket=unique, Key="sse.txt")["ServerSideEncryption"] == "AES256"
    assert c3.head_object(Bucket=unique, Key="kms.txt")["SSEKMSKeyId"] == "k2"
    assert not on_disk(srv, b"PLAINTEXT-MARKER")
    run([*s3c, "get", f"s3://{unique}/kms.txt", str(tmp_path / "back.txt")])
    assert (tmp_path / "back.txt").read_bytes() == src.read_bytes()


# -- operations: fsck, key files -------------------------------------------------------------


def test_fsck_checks_encrypted_blobs_and_lost_keys_are_503(tmp_path, unique) -> None:  # noqa: ANN001
    s = LampiServer(data_dir=tmp_path / "data", port=free_port(), extra_args=["--no-sse-c-require-tls"])
    s.start()
    try:
        keys = json.loads(s.cli("credential", "create", "admin", "admin", "--json").stdout)
        c = boto3.client("s3", endpoint_url=s.url, aws_access_key_id=keys["access"],
                         aws_secret_access_key=keys["secret"], region_name="us-east-1")
        c.create_bucket(Bucket=unique)
        c.put_object(Bucket=unique, Key="s3", Body=b"a" * 70_000, ServerSideEncryption="AES256")
        c.put_object(Bucket=unique, Key="c", Body=b"b" * 1000, **sse_c())
        c.put_object(Bucket=unique, Key="empty", Body=b"", ServerSideEncryption="AES256")
        rep = json.loads(s.cli("fsck", "--dry-run", "--json").stdout)
        assert rep["clean"] and rep["size_mismatches"] == [], rep  # blob sizes on disk, not plaintext sizes
        assert c.get_object(Bucket=unique, Key="empty")["Body"].read() == b""
        # rotation: a new master key for new objects, older objects still open
        s.cli("sse", "rotate-key")
        c.put_object(Bucket=unique, Key="new", Body=b"n", ServerSideEncryption="AES256")
        assert sorted(p.name for p in (s.data_dir / "keys").glob("sse-*")) == ["sse-0", "sse-1"]
        assert c.get_object(Bucket=unique, Key="s3")["Body"].read() == b"a" * 70_000
        # a blob cut short is damage fsck reports (and a read of it fails, never returns garbage)
        blob = max((p for p in (s.data_dir / "blobs").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
        blob.write_bytes(blob.read_bytes()[:-100])
        rep = json.loads(s.cli("fsck", "--dry-run", "--json", check=False).stdout)
        assert [m["object"] for m in rep["size_mismatches"]] == ["s3"]
        s.stop()
        # the master key file lost (no backup of keys/): its objects answer 503, others work
        (s.data_dir / "keys" / "sse-0").unlink()
        s.start()
        with pytest.raises(ClientError) as e:
            c.get_object(Bucket=unique, Key="empty")
        assert code(e) == (503, "ServiceUnavailable")
        assert c.get_object(Bucket=unique, Key="new")["Body"].read() == b"n"
        assert c.get_object(Bucket=unique, Key="c", **sse_c())["Body"].read() == b"b" * 1000
        assert "SSE-S3 master key" in s.log()
    finally:
        if s.proc is not None and s.proc.poll() is None:
            s.stop(signal.SIGKILL)


def test_kms_cli(srv) -> None:  # noqa: ANN001
    out = json.loads(srv.cli("kms", "list", "--json").stdout)
    assert [k["name"] for k in out] == ["k1", "k2"]
    res = srv.cli("kms", "create", "k1", check=False)
    assert res.returncode != 0 and "exists" in res.stderr
    res = srv.cli("kms", "create", "../x", check=False)
    assert res.returncode != 0
    srv.cli("kms", "rotate", "k2")
    assert len(json.loads(srv.cli("kms", "list", "--json").stdout)[1]["versions"]) == 2
    mode = (srv.data_dir / "keys" / "kms" / "k2-1").stat().st_mode & 0o777
    assert mode == 0o600
