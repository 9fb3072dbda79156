"""Issue 12's S3 features (versioning, object lock, bucket policies and configurations,
encryption, PostObject) meet issue 11's container keys and storage policies.

In the per-project namespace a bucket's store key is ``<project_id>/<name>``, not its
name, and with storage policies a bucket's bytes go to its policy's directory: every S3
code path must find the bucket by the caller's (or the ``<project_id>:`` tenant's)
lookup and write through the bucket's policy. Two projects have a bucket of the same
name here, so a path that used the name as the key finds no bucket (or the other one).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from botocore.handlers import validate_bucket_name

from tests.functional.conftest import LampiServer, free_port
from tests.functional.swift_helpers import Account, new_account


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ns-s3") / "data"


@pytest.fixture(scope="module")
def srv(data_dir: Path) -> Iterator[LampiServer]:
    s = LampiServer(data_dir=data_dir, port=free_port(),
                    extra_args=["--bucket-namespace", "project", "--no-sse-c-require-tls",
                                "--storage-policies", "default-placement,gold=gold-disk"])
    s.start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def two(srv: LampiServer) -> tuple[Account, Account]:
    return new_account(srv), new_account(srv)


def _s3(server: LampiServer, acct: Account):  # noqa: ANN202
    keys = json.loads(server.cli("credential", "create", acct.user, acct.project, "--json").stdout)
    client = boto3.client("s3", endpoint_url=server.url, aws_access_key_id=keys["access"],
                          aws_secret_access_key=keys["secret"], region_name="us-east-1")
    # "<project_id>:<bucket>" (RGW's tenant form) is not a name botocore lets through
    client.meta.events.unregister("before-parameter-build.s3", validate_bucket_name)
    return client


@pytest.fixture(scope="module")
def clients(srv: LampiServer, two: tuple[Account, Account]):  # noqa: ANN201
    return _s3(srv, two[0]), _s3(srv, two[1])


def _blob_files(root: Path) -> set[str]:
    return {p.name for p in (root / "blobs").rglob("*") if p.is_file()}


def test_versioning_per_project(clients, two: tuple[Account, Account], unique: str) -> None:  # noqa: ANN001
    a3, b3 = clients
    a, b = two
    a3.create_bucket(Bucket=unique)
    b3.create_bucket(Bucket=unique)
    a3.put_bucket_versioning(Bucket=unique, VersioningConfiguration={"Status": "Enabled"})
    assert a3.get_bucket_versioning(Bucket=unique)["Status"] == "Enabled"
    assert "Status" not in b3.get_bucket_versioning(Bucket=unique)  # the other project's bucket
    v1 = a3.put_object(Bucket=unique, Key="k", Body=b"one")["VersionId"]
    v2 = a3.put_object(Bucket=unique, Key="k", Body=b"two")["VersionId"]
    b3.put_object(Bucket=unique, Key="k", Body=b"b's")
    listed = a3.list_object_versions(Bucket=unique)["Versions"]
    assert [(v["VersionId"], v["IsLatest"]) for v in listed] == [(v2, True), (v1, False)]
    assert [v["VersionId"] for v in b3.list_object_versions(Bucket=unique)["Versions"]] == ["null"]
    assert a3.get_object(Bucket=unique, Key="k", VersionId=v1)["Body"].read() == b"one"
    a3.put_object_tagging(Bucket=unique, Key="k", VersionId=v1, Tagging={"TagSet": [{"Key": "t", "Value": "1"}]})
    assert a3.get_object_tagging(Bucket=unique, Key="k", VersionId=v1)["TagSet"] == [{"Key": "t", "Value": "1"}]
    a3.delete_object(Bucket=unique, Key="k", VersionId=v2)  # S3: the previous version is current again
    assert a3.get_object(Bucket=unique, Key="k")["Body"].read() == b"one"
    marker = a3.delete_object(Bucket=unique, Key="k")
    assert marker["DeleteMarker"] is True
    with pytest.raises(ClientError) as exc:
        a3.head_object(Bucket=unique, Key="k")
    assert exc.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-delete-marker"] == "true"
    # the same versions through Swift, in a's account only
    assert len(a.conn.get_container(unique, query_string="versions")[1]) == 2
    assert b.conn.get_object(unique, "k")[1] == b"b's"
    # the version-id marker of a null version looks the bucket up per project too
    page = b3.list_object_versions(Bucket=unique, KeyMarker="k", VersionIdMarker="null")
    assert "Versions" not in page


def test_bucket_configurations_per_project(clients, two: tuple[Account, Account], unique: str) -> None:  # noqa: ANN001
    a3, b3 = clients
    a, b = two
    a3.create_bucket(Bucket=unique)
    b3.create_bucket(Bucket=unique)
    a3.put_object(Bucket=unique, Key="doc", Body=b"a's doc")
    pol = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{b.project_id}:root"},
        "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{unique}/*"}]}
    a3.put_bucket_policy(Bucket=unique, Policy=json.dumps(pol))
    assert json.loads(a3.get_bucket_policy(Bucket=unique)["Policy"])["Statement"][0]["Action"] == "s3:GetObject"
    with pytest.raises(ClientError) as exc:
        b3.get_bucket_policy(Bucket=unique)  # b's own bucket has none
    assert exc.value.response["Error"]["Code"] == "NoSuchBucketPolicy"
    # the policy lets b read a's object by the tenant form, and through Swift's ACL-less path
    assert b3.get_object(Bucket=f"{a.project_id}:{unique}", Key="doc")["Body"].read() == b"a's doc"
    a3.put_public_access_block(Bucket=unique, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": False, "BlockPublicPolicy": False,
        "RestrictPublicBuckets": False})
    assert a3.get_public_access_block(Bucket=unique)["PublicAccessBlockConfiguration"]["BlockPublicAcls"]
    with pytest.raises(ClientError):
        b3.get_public_access_block(Bucket=unique)
    a3.put_bucket_ownership_controls(Bucket=unique, OwnershipControls={
        "Rules": [{"ObjectOwnership": "BucketOwnerPreferred"}]})
    assert a3.get_bucket_ownership_controls(Bucket=unique)["OwnershipControls"]["Rules"] == [
        {"ObjectOwnership": "BucketOwnerPreferred"}]
    a3.put_bucket_encryption(Bucket=unique, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    assert a3.put_object(Bucket=unique, Key="enc", Body=b"secret")["ServerSideEncryption"] == "AES256"
    assert "ServerSideEncryption" not in b3.put_object(Bucket=unique, Key="enc", Body=b"plain")
    assert a3.get_object(Bucket=unique, Key="enc")["Body"].read() == b"secret"
    attrs = a3.get_object_attributes(Bucket=unique, Key="enc", ObjectAttributes=["ObjectSize"])
    assert attrs["ObjectSize"] == 6


def test_object_lock_per_project(clients, unique: str) -> None:  # noqa: ANN001
    a3, b3 = clients
    a3.create_bucket(Bucket=unique, ObjectLockEnabledForBucket=True)
    b3.create_bucket(Bucket=unique)
    a3.put_object_lock_configuration(Bucket=unique, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
    vid = a3.put_object(Bucket=unique, Key="locked", Body=b"keep")["VersionId"]
    assert a3.get_object_retention(Bucket=unique, Key="locked", VersionId=vid)["Retention"]["Mode"] == "GOVERNANCE"
    a3.put_object_legal_hold(Bucket=unique, Key="locked", VersionId=vid, LegalHold={"Status": "ON"})
    with pytest.raises(ClientError) as exc:
        a3.delete_object(Bucket=unique, Key="locked", VersionId=vid)
    assert exc.value.response["Error"]["Code"] == "AccessDenied"
    a3.put_object_legal_hold(Bucket=unique, Key="locked", VersionId=vid, LegalHold={"Status": "OFF"})
    a3.delete_object(Bucket=unique, Key="locked", VersionId=vid, BypassGovernanceRetention=True)
    with pytest.raises(ClientError) as exc:
        b3.get_object_lock_configuration(Bucket=unique)  # b's bucket of that name has none
    assert exc.value.response["Error"]["Code"] == "ObjectLockConfigurationNotFoundError"


def test_retried_complete_per_project(clients, unique: str) -> None:  # noqa: ANN001
    a3, b3 = clients
    a3.create_bucket(Bucket=unique)
    b3.create_bucket(Bucket=unique)
    up = a3.create_multipart_upload(Bucket=unique, Key="m")["UploadId"]
    etag = a3.upload_part(Bucket=unique, Key="m", UploadId=up, PartNumber=1, Body=b"part")["ETag"]
    parts = {"Parts": [{"ETag": etag, "PartNumber": 1}]}
    first = a3.complete_multipart_upload(Bucket=unique, Key="m", UploadId=up, MultipartUpload=parts)
    again = a3.complete_multipart_upload(Bucket=unique, Key="m", UploadId=up, MultipartUpload=parts)
    assert again["ETag"] == first["ETag"]


def test_encrypted_writes_go_to_the_buckets_storage_policy(srv: LampiServer, clients, two: tuple[Account, Account],
                                                           data_dir: Path, unique: str) -> None:  # noqa: ANN001
    a3, _b3 = clients
    a, _b = two
    a.conn.put_container(unique, headers={"X-Storage-Policy": "gold"})
    gold, base = data_dir / "gold-disk", data_dir
    before_gold, before_base = _blob_files(gold), _blob_files(base)
    data = b"g" * 10_000
    a3.put_object(Bucket=unique, Key="s3", Body=data, ServerSideEncryption="AES256")
    key = b"k" * 32
    a3.put_object(Bucket=unique, Key="c", Body=data, SSECustomerAlgorithm="AES256", SSECustomerKey=key.decode())
    up = a3.create_multipart_upload(Bucket=unique, Key="mp", ServerSideEncryption="AES256")["UploadId"]
    etag = a3.upload_part(Bucket=unique, Key="mp", UploadId=up, PartNumber=1, Body=data)["ETag"]
    a3.complete_multipart_upload(Bucket=unique, Key="mp", UploadId=up,
                                 MultipartUpload={"Parts": [{"ETag": etag, "PartNumber": 1}]})
    a3.copy_object(Bucket=unique, Key="copy", CopySource={"Bucket": unique, "Key": "s3"},
                   ServerSideEncryption="AES256")
    new_gold = _blob_files(gold) - before_gold
    assert len(new_gold) >= 5, "object, SSE-C object, part, manifest and copy: all in gold's directory"
    assert _blob_files(base) == before_base, "nothing of a gold bucket in the default policy's directory"
    for k in ("s3", "mp", "copy"):
        assert a3.get_object(Bucket=unique, Key=k)["Body"].read() == data
    got = a3.get_object(Bucket=unique, Key="c", SSECustomerAlgorithm="AES256", SSECustomerKey=key.decode())
    assert got["Body"].read() == data
    # and none of the plaintext is on disk
    for name in new_gold:
        path = next(gold.joinpath("blobs").rglob(name))
        assert b"g" * 64 not in path.read_bytes()


def test_post_object_per_project(srv: LampiServer, clients, two: tuple[Account, Account],  # noqa: ANN001
                                 unique: str) -> None:
    a3, b3 = clients
    a, _b = two
    a3.create_bucket(Bucket=unique)
    b3.create_bucket(Bucket=unique)
    post = a3.generate_presigned_post(Bucket=unique, Key="form/${filename}", ExpiresIn=600)
    r = requests.post(post["url"], data=post["fields"], files={"file": ("up.txt", b"from a form")}, timeout=60)
    assert r.status_code == 204, r.text
    assert a3.get_object(Bucket=unique, Key="form/up.txt")["Body"].read() == b"from a form"
    with pytest.raises(ClientError):
        b3.head_object(Bucket=unique, Key="form/up.txt")  # b's bucket of the same name has nothing
    # an anonymous form upload names the tenant: a public-write bucket of a
    a3.put_bucket_acl(Bucket=unique, ACL="public-read-write")
    url = f"{srv.url}/{a.project_id}:{unique}"
    r = requests.post(url, data={"key": "anon"}, files={"file": ("f", b"anonymous")}, timeout=60)
    assert r.status_code == 204, r.text
    assert a3.get_object(Bucket=unique, Key="anon")["Body"].read() == b"anonymous"
