"""S3 features meeting each other (issue 12 merged): a versioned object keeps its
encryption (SSE-C, SSE-S3, SSE-KMS, the bucket default) whichever version is read,
promoted, copied or locked; multipart uploads in versioned, encrypted buckets. Each
feature's own tests are in test_s3_sse.py, test_s3_versioning.py, test_s3_object_lock.py."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
from collections.abc import Iterator

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from tests.functional.conftest import LampiServer, free_port

KEY = os.urandom(32)
OTHER = os.urandom(32)
MiB = 1024 * 1024


def sse_c(key: bytes = KEY) -> dict[str, object]:
    return {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key}


def code(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    e = exc.value.response
    return e["ResponseMetadata"]["HTTPStatusCode"], e["Error"]["Code"]


def on_disk(srv: LampiServer, needle: bytes) -> bool:
    """Whether any file of the data dir holds ``needle``: blob files, and meta.db and its
    WAL, where small objects' bytes are kept (inline blobs; never an encrypted one's)."""
    return any(p.is_file() and needle in p.read_bytes() for p in srv.data_dir.rglob("*"))


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LampiServer]:
    base = tmp_path_factory.mktemp("interactions")
    s = LampiServer(data_dir=base / "data", port=free_port(), extra_args=["--no-sse-c-require-tls"])
    s.start()
    try:
        s.cli("kms", "create", "k1")
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def c3(srv: LampiServer):  # noqa: ANN201
    keys = json.loads(srv.cli("credential", "create", "admin", "admin", "--json").stdout)
    return boto3.client("s3", endpoint_url=srv.url, aws_access_key_id=keys["access"],
                        aws_secret_access_key=keys["secret"], region_name="us-east-1")


def test_on_disk_sees_plain_bytes(srv, c3, unique) -> None:  # noqa: ANN001
    """The control for the ``not on_disk`` checks below: an unencrypted object's bytes
    are found, a small one's in meta.db (an inline blob), a large one's in a blob file."""
    c3.create_bucket(Bucket=unique)
    c3.put_object(Bucket=unique, Key="small", Body=b"PLAIN-SMALL-CONTROL")
    c3.put_object(Bucket=unique, Key="large", Body=b"PLAIN-LARGE-CONTROL" * 5000)
    assert on_disk(srv, b"PLAIN-SMALL-CONTROL") and on_disk(srv, b"PLAIN-LARGE-CONTROL" * 100)
    assert not on_disk(srv, b"NEVER-WRITTEN-CONTROL")


def test_each_version_keeps_its_encryption(srv, c3, unique) -> None:  # noqa: ANN001
    c3.create_bucket(Bucket=unique)
    c3.put_bucket_versioning(Bucket=unique, VersioningConfiguration={"Status": "Enabled"})
    v1 = c3.put_object(Bucket=unique, Key="k", Body=b"VERSION-ONE-SSE-C" * 1000, **sse_c())["VersionId"]
    v2 = c3.put_object(Bucket=unique, Key="k", Body=b"VERSION-TWO-SSE-KMS" * 1000, ServerSideEncryption="aws:kms",
                       SSEKMSKeyId="k1")["VersionId"]
    v3 = c3.put_object(Bucket=unique, Key="k", Body=b"version three plain")["VersionId"]
    assert len({v1, v2, v3}) == 3
    assert not on_disk(srv, b"VERSION-ONE-SSE-C") and not on_disk(srv, b"VERSION-TWO-SSE-KMS")
    # the SSE-C version needs its key, by version id too (GET and HEAD)
    for call in (c3.get_object, c3.head_object):
        with pytest.raises(ClientError) as e:
            call(Bucket=unique, Key="k", VersionId=v1)
        assert code(e)[0] == 400
        with pytest.raises(ClientError) as e:
            call(Bucket=unique, Key="k", VersionId=v1, **sse_c(OTHER))
        assert code(e)[0] == 400
    got = c3.get_object(Bucket=unique, Key="k", VersionId=v1, **sse_c())
    assert got["Body"].read() == b"VERSION-ONE-SSE-C" * 1000
    assert got["VersionId"] == v1 and got["SSECustomerAlgorithm"] == "AES256"
    got = c3.get_object(Bucket=unique, Key="k", VersionId=v2, Range="bytes=19-37")
    assert got["Body"].read() == b"VERSION-TWO-SSE-KMS"
    assert got["ServerSideEncryption"] == "aws:kms" and got["SSEKMSKeyId"] == "k1"
    cur = c3.get_object(Bucket=unique, Key="k")
    assert cur["Body"].read() == b"version three plain" and "ServerSideEncryption" not in cur
    # deleting the current version promotes the KMS one, still encrypted
    c3.delete_object(Bucket=unique, Key="k", VersionId=v3)
    cur = c3.get_object(Bucket=unique, Key="k")
    assert cur["VersionId"] == v2 and cur["ServerSideEncryption"] == "aws:kms"
    assert cur["Body"].read() == b"VERSION-TWO-SSE-KMS" * 1000
    # a delete marker over it, then the SSE-C version copied out by id (with its key) as SSE-S3
    c3.delete_object(Bucket=unique, Key="k")
    with pytest.raises(ClientError) as e:
        c3.copy_object(Bucket=unique, Key="copy", CopySource={"Bucket": unique, "Key": "k", "VersionId": v1})
    assert code(e)[0] == 400  # the source's key is needed
    cp = c3.copy_object(Bucket=unique, Key="copy", CopySource={"Bucket": unique, "Key": "k", "VersionId": v1},
                        CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=KEY,
                        ServerSideEncryption="AES256")
    assert cp["CopySourceVersionId"] == v1 and cp["ServerSideEncryption"] == "AES256" and cp["VersionId"]
    got = c3.get_object(Bucket=unique, Key="copy")
    assert got["Body"].read() == b"VERSION-ONE-SSE-C" * 1000 and got["ServerSideEncryption"] == "AES256"
    # tags on an SSE-C version leave it readable with its key only
    c3.put_object_tagging(Bucket=unique, Key="k", VersionId=v1, Tagging={"TagSet": [{"Key": "a", "Value": "b"}]})
    assert c3.get_object(Bucket=unique, Key="k", VersionId=v1, **sse_c())["Body"].read()[:17] == b"VERSION-ONE-SSE-C"
    with pytest.raises(ClientError) as e:
        c3.get_object(Bucket=unique, Key="k", VersionId=v1)
    assert code(e)[0] == 400


def test_default_encryption_applies_to_versions_and_null_versions(srv, c3, unique) -> None:  # noqa: ANN001
    c3.create_bucket(Bucket=unique)
    c3.put_bucket_encryption(Bucket=unique, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    c3.put_object(Bucket=unique, Key="k", Body=b"NULL-VERSION-BEFORE")
    c3.put_bucket_versioning(Bucket=unique, VersioningConfiguration={"Status": "Enabled"})
    v = c3.put_object(Bucket=unique, Key="k", Body=b"ENABLED-VERSION")["VersionId"]
    c3.put_bucket_versioning(Bucket=unique, VersioningConfiguration={"Status": "Suspended"})
    put = c3.put_object(Bucket=unique, Key="k", Body=b"SUSPENDED-NULL-VERSION")
    assert put["ServerSideEncryption"] == "AES256"
    for needle in (b"NULL-VERSION-BEFORE", b"ENABLED-VERSION", b"SUSPENDED-NULL-VERSION"):
        assert not on_disk(srv, needle), needle
    got = c3.get_object(Bucket=unique, Key="k", VersionId=v)
    assert got["Body"].read() == b"ENABLED-VERSION" and got["ServerSideEncryption"] == "AES256"
    got = c3.get_object(Bucket=unique, Key="k", VersionId="null")
    assert got["Body"].read() == b"SUSPENDED-NULL-VERSION" and got["ServerSideEncryption"] == "AES256"


def test_locked_encrypted_version(srv, c3, unique) -> None:  # noqa: ANN001
    c3.create_bucket(Bucket=unique, ObjectLockEnabledForBucket=True)
    c3.put_bucket_encryption(Bucket=unique, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "k1"}}]})
    until = datetime.datetime(2099, 1, 1, tzinfo=datetime.timezone.utc)
    v = c3.put_object(Bucket=unique, Key="k", Body=b"LOCKED-AND-ENCRYPTED", ObjectLockMode="GOVERNANCE",
                      ObjectLockRetainUntilDate=until)["VersionId"]
    c3.put_object_legal_hold(Bucket=unique, Key="k", VersionId=v, LegalHold={"Status": "ON"})
    c3.put_object_retention(Bucket=unique, Key="k", VersionId=v,
                            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until + datetime.timedelta(days=1)})
    assert not on_disk(srv, b"LOCKED-AND-ENCRYPTED")
    got = c3.get_object(Bucket=unique, Key="k", VersionId=v)
    assert got["Body"].read() == b"LOCKED-AND-ENCRYPTED"
    assert got["ServerSideEncryption"] == "aws:kms" and got["SSEKMSKeyId"] == "k1"
    assert got["ObjectLockMode"] == "GOVERNANCE" and got["ObjectLockLegalHoldStatus"] == "ON"
    with pytest.raises(ClientError) as e:
        c3.delete_object(Bucket=unique, Key="k", VersionId=v)
    assert code(e) == (403, "AccessDenied")
    assert c3.get_object(Bucket=unique, Key="k", VersionId=v)["Body"].read() == b"LOCKED-AND-ENCRYPTED"


def test_sse_c_multipart_in_a_versioned_bucket(srv, c3, unique) -> None:  # noqa: ANN001
    c3.create_bucket(Bucket=unique)
    c3.put_bucket_versioning(Bucket=unique, VersioningConfiguration={"Status": "Enabled"})
    first = c3.put_object(Bucket=unique, Key="mp", Body=b"older")["VersionId"]
    up = c3.create_multipart_upload(Bucket=unique, Key="mp", **sse_c())["UploadId"]
    parts = []
    for n, chunk in enumerate((b"a" * (5 * MiB), b"b" * 1000), start=1):
        etag = c3.upload_part(Bucket=unique, Key="mp", UploadId=up, PartNumber=n, Body=chunk, **sse_c())["ETag"]
        parts.append({"PartNumber": n, "ETag": etag})
    done = c3.complete_multipart_upload(Bucket=unique, Key="mp", UploadId=up, MultipartUpload={"Parts": parts},
                                        **sse_c())
    assert done["VersionId"] and done["VersionId"] != first
    assert done["ResponseMetadata"]["HTTPHeaders"]["x-amz-server-side-encryption-customer-algorithm"] == "AES256"
    # a retried Complete (its answer lost) gets the same answer
    again = c3.complete_multipart_upload(Bucket=unique, Key="mp", UploadId=up, MultipartUpload={"Parts": parts},
                                         **sse_c())
    assert again["ETag"] == done["ETag"] and again["VersionId"] == done["VersionId"]
    with pytest.raises(ClientError) as e:
        c3.get_object(Bucket=unique, Key="mp", VersionId=done["VersionId"])
    assert code(e)[0] == 400
    got = c3.get_object(Bucket=unique, Key="mp", VersionId=done["VersionId"], Range="bytes=5242870-5242889",
                        **sse_c())
    assert got["Body"].read() == b"a" * 10 + b"b" * 10
    assert c3.get_object(Bucket=unique, Key="mp", VersionId=first)["Body"].read() == b"older"


# -- bucket policies, ACLs and object lock meeting versions ----------------------------------
# (the session server of conftest.py; each test's bucket belongs to a project of its own,
# as the admin fixtures are the cloud admin, whom no bucket policy binds)


def _policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _allow(action: str, resource: str, principal: object = "*", effect: str = "Allow") -> dict:
    return {"Effect": effect, "Principal": principal, "Action": action, "Resource": resource}


def _denied(call) -> None:  # noqa: ANN001
    with pytest.raises(ClientError) as e:
        call()
    assert code(e) in ((403, "AccessDenied"), (403, "403"))  # HEAD: no body, no code


def test_policy_governs_version_reads_and_deletes(server, unique) -> None:  # noqa: ANN001
    from tests.functional.test_s3_acl import new_project_keys

    _pid, _name, own, _keys = new_project_keys(server)
    other_pid, _oname, other, _okeys = new_project_keys(server)
    own.create_bucket(Bucket=unique)
    own.put_bucket_versioning(Bucket=unique, VersioningConfiguration={"Status": "Enabled"})
    v1 = own.put_object(Bucket=unique, Key="k", Body=b"one")["VersionId"]
    own.put_object(Bucket=unique, Key="k", Body=b"two")
    own.put_object(Bucket=unique, Key="gone", Body=b"x")
    objects = f"arn:aws:s3:::{unique}/*"
    # s3:GetObject reads the current version only; a version id asks for s3:GetObjectVersion
    own.put_bucket_policy(Bucket=unique, Policy=_policy(_allow("s3:GetObject", objects),
                                                        _allow("s3:DeleteObject", objects)))
    assert other.get_object(Bucket=unique, Key="k")["Body"].read() == b"two"
    _denied(lambda: other.get_object(Bucket=unique, Key="k", VersionId=v1))
    _denied(lambda: other.head_object(Bucket=unique, Key="k", VersionId=v1))
    # s3:DeleteObject writes a delete marker; deleting a version asks for s3:DeleteObjectVersion,
    # in DeleteObjects too, key by key
    _denied(lambda: other.delete_object(Bucket=unique, Key="k", VersionId=v1))
    res = other.delete_objects(Bucket=unique, Delete={"Objects": [{"Key": "k", "VersionId": v1}, {"Key": "gone"}]})
    assert [(e["Key"], e["VersionId"], e["Code"]) for e in res["Errors"]] == [("k", v1, "AccessDenied")]
    assert [(d["Key"], d["DeleteMarker"]) for d in res["Deleted"]] == [("gone", True)]
    assert own.get_object(Bucket=unique, Key="k", VersionId=v1)["Body"].read() == b"one"
    own.put_bucket_policy(Bucket=unique, Policy=_policy(
        _allow("s3:GetObjectVersion", objects, {"AWS": f"arn:aws:iam::{other_pid}:root"}),
        _allow("s3:DeleteObjectVersion", objects, {"AWS": f"arn:aws:iam::{other_pid}:root"})))
    assert other.get_object(Bucket=unique, Key="k", VersionId=v1)["Body"].read() == b"one"
    _denied(lambda: other.get_object(Bucket=unique, Key="k"))  # the current one: s3:GetObject, not allowed now
    other.delete_object(Bucket=unique, Key="k", VersionId=v1)
    with pytest.raises(ClientError) as e:
        own.get_object(Bucket=unique, Key="k", VersionId=v1)
    assert code(e) == (404, "NoSuchVersion")
    # a Deny of the version actions binds the bucket's own project too
    own.put_bucket_policy(Bucket=unique, Policy=_policy(_allow("s3:GetObjectVersion", objects, effect="Deny")))
    cur = own.head_object(Bucket=unique, Key="k")["VersionId"]
    _denied(lambda: own.get_object(Bucket=unique, Key="k", VersionId=cur))
    assert own.get_object(Bucket=unique, Key="k")["Body"].read() == b"two"


def test_each_version_has_its_own_acl(server, unique) -> None:  # noqa: ANN001
    """An anonymous read of one version is decided by that version's ACL: before, the
    current object's ACL decided, so a public current version opened every old one."""
    from tests.functional.test_s3_acl import new_project_keys

    own = new_project_keys(server)[2]
    own.create_bucket(Bucket=unique)
    own.put_bucket_versioning(Bucket=unique, VersioningConfiguration={"Status": "Enabled"})
    secret = own.put_object(Bucket=unique, Key="k", Body=b"old secret")["VersionId"]
    public = own.put_object(Bucket=unique, Key="k", Body=b"now public", ACL="public-read")["VersionId"]
    url = f"{server.url}/{unique}/k"
    assert requests.get(url, timeout=30).content == b"now public"
    assert requests.get(url, params={"versionId": public}, timeout=30).content == b"now public"
    r = requests.get(url, params={"versionId": secret}, timeout=30)
    assert r.status_code == 403 and b"AccessDenied" in r.content
    # the other way round: an old public-read version stays readable by its id only
    own.put_object(Bucket=unique, Key="k", Body=b"private again")
    assert requests.get(url, timeout=30).status_code == 403
    assert requests.get(url, params={"versionId": public}, timeout=30).content == b"now public"
    acl = own.get_object_acl(Bucket=unique, Key="k", VersionId=public)
    assert any(g["Grantee"].get("URI", "").endswith("AllUsers") for g in acl["Grants"])


def test_policy_decides_governance_bypass(server, unique) -> None:  # noqa: ANN001
    from tests.functional.test_s3_acl import new_project_keys

    own = new_project_keys(server)[2]
    other_pid, _n, other, _k = new_project_keys(server)
    own.create_bucket(Bucket=unique, ObjectLockEnabledForBucket=True)
    until = datetime.datetime(2099, 1, 1, tzinfo=datetime.timezone.utc)
    v = own.put_object(Bucket=unique, Key="k", Body=b"kept", ObjectLockMode="GOVERNANCE",
                       ObjectLockRetainUntilDate=until)["VersionId"]
    objects = f"arn:aws:s3:::{unique}/*"
    # a Deny of s3:BypassGovernanceRetention: not even the owner may bypass
    own.put_bucket_policy(Bucket=unique, Policy=_policy(_allow("s3:BypassGovernanceRetention", objects,
                                                               effect="Deny")))
    _denied(lambda: own.delete_object(Bucket=unique, Key="k", VersionId=v, BypassGovernanceRetention=True))
    # another project allowed to delete versions meets the lock; allowed to bypass, it may
    other_root = {"AWS": f"arn:aws:iam::{other_pid}:root"}
    own.put_bucket_policy(Bucket=unique, Policy=_policy(_allow("s3:DeleteObjectVersion", objects, other_root)))
    _denied(lambda: other.delete_object(Bucket=unique, Key="k", VersionId=v, BypassGovernanceRetention=True))
    assert own.get_object(Bucket=unique, Key="k", VersionId=v)["Body"].read() == b"kept"
    own.put_bucket_policy(Bucket=unique, Policy=_policy(
        _allow("s3:DeleteObjectVersion", objects, other_root),
        _allow("s3:BypassGovernanceRetention", objects, other_root)))
    _denied(lambda: other.delete_object(Bucket=unique, Key="k", VersionId=v))  # no bypass asked: locked
    other.delete_object(Bucket=unique, Key="k", VersionId=v, BypassGovernanceRetention=True)
    with pytest.raises(ClientError) as e:
        own.head_object(Bucket=unique, Key="k", VersionId=v)
    assert code(e)[0] == 404


def test_attributes_of_versions_and_sse_c_objects(srv, c3, unique) -> None:  # noqa: ANN001
    c3.create_bucket(Bucket=unique)
    c3.put_bucket_versioning(Bucket=unique, VersioningConfiguration={"Status": "Enabled"})
    v1 = c3.put_object(Bucket=unique, Key="k", Body=b"x" * 1000, **sse_c())["VersionId"]
    c3.put_object(Bucket=unique, Key="k", Body=b"yy")
    attrs = ["ETag", "ObjectSize", "StorageClass"]
    cur = c3.get_object_attributes(Bucket=unique, Key="k", ObjectAttributes=attrs)
    assert cur["ObjectSize"] == 2 and cur["VersionId"] != v1
    with pytest.raises(ClientError) as e:
        c3.get_object_attributes(Bucket=unique, Key="k", VersionId=v1, ObjectAttributes=attrs)
    assert code(e)[0] == 400  # an SSE-C version: its key, as HeadObject
    # (GetObjectAttributes takes the key as base64 text, as s3-tests sends it: boto3 encodes it only for GetObject)
    b64 = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": base64.b64encode(KEY).decode(),
           "SSECustomerKeyMD5": base64.b64encode(hashlib.md5(KEY).digest()).decode()}
    old = c3.get_object_attributes(Bucket=unique, Key="k", VersionId=v1, ObjectAttributes=attrs, **b64)
    assert old["ObjectSize"] == 1000 and old["VersionId"] == v1
