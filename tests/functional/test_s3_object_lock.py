"""S3 object lock (issue 12) with boto3 and the aws CLI: lock-enabled buckets, default
retention, GOVERNANCE/COMPLIANCE retention, legal hold, bypass; bad input gets S3's
4xx; and the lock holds for Swift requests too (one namespace)."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import shutil

import pytest
from botocore.exceptions import ClientError
from swiftclient import ClientException

from tests.functional.test_s3_clients import aws_env, run
from tests.functional.test_s3_features import signed_request, xml_code

UTC = datetime.timezone.utc
FAR = datetime.datetime(2099, 1, 1, tzinfo=UTC)


def code(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    e = exc.value.response
    return e["ResponseMetadata"]["HTTPStatusCode"], e["Error"]["Code"]


def lock_bucket(s3, name: str) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)


def md5(doc: bytes) -> str:
    return base64.b64encode(hashlib.md5(doc).digest()).decode()


def test_lock_configuration(s3, unique, server, ec2_keys) -> None:  # noqa: ANN001
    lock_bucket(s3, unique)
    assert s3.get_bucket_versioning(Bucket=unique)["Status"] == "Enabled"  # lock turns versioning on
    assert s3.get_object_lock_configuration(Bucket=unique)["ObjectLockConfiguration"] == {"ObjectLockEnabled":
                                                                                         "Enabled"}
    conf = {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 2}}}
    s3.put_object_lock_configuration(Bucket=unique, ObjectLockConfiguration=conf)
    assert s3.get_object_lock_configuration(Bucket=unique)["ObjectLockConfiguration"] == conf
    conf = {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Years": 1}}}
    s3.put_object_lock_configuration(Bucket=unique, ObjectLockConfiguration=conf)
    assert s3.get_object_lock_configuration(Bucket=unique)["ObjectLockConfiguration"] == conf
    # versioning can no longer be suspended
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_versioning(Bucket=unique, VersioningConfiguration={"Status": "Suspended"})
    assert code(exc) == (409, "InvalidBucketState")
    # bad configurations: S3's 400s, the stored one unchanged
    bad = [
        ({"ObjectLockEnabled": "Disabled"}, "MalformedXML"),
        ({"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "governance", "Days": 1}}},
         "MalformedXML"),
        ({"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1,
                                                                         "Years": 1}}}, "MalformedXML"),
        ({"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 0}}},
         "InvalidRetentionPeriod"),
        ({"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Years": -1}}},
         "InvalidRetentionPeriod"),
    ]
    for c, want in bad:
        with pytest.raises(ClientError) as exc:
            s3.put_object_lock_configuration(Bucket=unique, ObjectLockConfiguration=c)
        assert code(exc) == (400, want), c
    assert s3.get_object_lock_configuration(Bucket=unique)["ObjectLockConfiguration"] == conf
    # the body must carry Content-MD5 (or a checksum), as AWS requires
    doc = b"<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled></ObjectLockConfiguration>"
    r = signed_request("PUT", f"{server.url}/{unique}?object-lock", ec2_keys, body=doc)
    assert r.status_code == 400 and xml_code(r) == "InvalidRequest"
    r = signed_request("PUT", f"{server.url}/{unique}?object-lock", ec2_keys, body=b"<ObjectLockConfiguration>",
                       headers={"Content-MD5": md5(b"<ObjectLockConfiguration>")})
    assert r.status_code == 400 and xml_code(r) == "MalformedXML"
    # a plain bucket: no configuration; lock only once versioning is Enabled
    plain = unique + "-plain"
    s3.create_bucket(Bucket=plain)
    with pytest.raises(ClientError) as exc:
        s3.get_object_lock_configuration(Bucket=plain)
    assert code(exc) == (404, "ObjectLockConfigurationNotFoundError")
    with pytest.raises(ClientError) as exc:
        s3.put_object_lock_configuration(Bucket=plain, ObjectLockConfiguration=conf)
    assert code(exc) == (409, "InvalidBucketState")
    s3.put_bucket_versioning(Bucket=plain, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object_lock_configuration(Bucket=plain, ObjectLockConfiguration=conf)
    assert s3.get_object_lock_configuration(Bucket=plain)["ObjectLockConfiguration"] == conf
    # retention requests on a bucket without lock: InvalidRequest
    nolock = unique + "-nolock"
    s3.create_bucket(Bucket=nolock)
    s3.put_object(Bucket=nolock, Key="k", Body=b"x")
    for call in (lambda: s3.get_object_retention(Bucket=nolock, Key="k"),
                 lambda: s3.put_object_legal_hold(Bucket=nolock, Key="k", LegalHold={"Status": "ON"}),
                 lambda: s3.put_object_retention(Bucket=nolock, Key="k", Retention={"Mode": "GOVERNANCE",
                                                                                    "RetainUntilDate": FAR}),
                 lambda: s3.put_object(Bucket=nolock, Key="k2", Body=b"x", ObjectLockMode="GOVERNANCE",
                                       ObjectLockRetainUntilDate=FAR)):
        with pytest.raises(ClientError) as exc:
            call()
        assert code(exc) == (400, "InvalidRequest")


def test_retention_governance_compliance_and_bypass(s3, unique) -> None:  # noqa: ANN001
    lock_bucket(s3, unique)
    v = s3.put_object(Bucket=unique, Key="g", Body=b"abc")["VersionId"]
    with pytest.raises(ClientError) as exc:
        s3.get_object_retention(Bucket=unique, Key="g")
    assert code(exc) == (404, "NoSuchObjectLockConfiguration")
    until = datetime.datetime(2098, 1, 1, tzinfo=UTC)
    s3.put_object_retention(Bucket=unique, Key="g", Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until})
    assert s3.get_object_retention(Bucket=unique, Key="g", VersionId=v)["Retention"] == {
        "Mode": "GOVERNANCE", "RetainUntilDate": until}
    h = s3.head_object(Bucket=unique, Key="g")
    assert h["ObjectLockMode"] == "GOVERNANCE" and h["ObjectLockRetainUntilDate"] == until
    # a DELETE without version id only writes a marker: allowed
    marker = s3.delete_object(Bucket=unique, Key="g")["VersionId"]
    # the locked version cannot go, nor can its retention be shortened, without the bypass
    with pytest.raises(ClientError) as exc:
        s3.delete_object(Bucket=unique, Key="g", VersionId=v)
    assert code(exc) == (403, "AccessDenied")
    shorter = {"Mode": "GOVERNANCE", "RetainUntilDate": datetime.datetime(2097, 1, 1, tzinfo=UTC)}
    with pytest.raises(ClientError) as exc:
        s3.put_object_retention(Bucket=unique, Key="g", VersionId=v, Retention=shorter)
    assert code(exc) == (403, "AccessDenied")
    longer = {"Mode": "GOVERNANCE", "RetainUntilDate": FAR}
    s3.put_object_retention(Bucket=unique, Key="g", VersionId=v, Retention=longer)  # lengthening is fine
    s3.put_object_retention(Bucket=unique, Key="g", VersionId=v, Retention=shorter, BypassGovernanceRetention=True)
    assert s3.get_object_retention(Bucket=unique, Key="g", VersionId=v)["Retention"] == shorter
    s3.delete_object(Bucket=unique, Key="g", VersionId=marker)
    assert s3.delete_object(Bucket=unique, Key="g", VersionId=v, BypassGovernanceRetention=True)[
        "ResponseMetadata"]["HTTPStatusCode"] == 204
    # COMPLIANCE: no bypass, no shortening, no change of mode
    c = s3.put_object(Bucket=unique, Key="c", Body=b"abc", ObjectLockMode="COMPLIANCE",
                      ObjectLockRetainUntilDate=FAR)["VersionId"]
    for kw in ({}, {"BypassGovernanceRetention": True}):
        with pytest.raises(ClientError) as exc:
            s3.delete_object(Bucket=unique, Key="c", VersionId=c, **kw)
        assert code(exc) == (403, "AccessDenied")
    with pytest.raises(ClientError) as exc:
        s3.put_object_retention(Bucket=unique, Key="c", Retention={"Mode": "GOVERNANCE", "RetainUntilDate": FAR},
                                BypassGovernanceRetention=True)
    assert code(exc) == (403, "AccessDenied")
    # DeleteObjects reports the locked version as AccessDenied and deletes the rest
    free = s3.put_object(Bucket=unique, Key="free", Body=b"x")["VersionId"]
    r = s3.delete_objects(Bucket=unique, Delete={"Objects": [{"Key": "c", "VersionId": c},
                                                             {"Key": "free", "VersionId": free}]})
    assert [(e["Key"], e["VersionId"], e["Code"]) for e in r["Errors"]] == [("c", c, "AccessDenied")]
    assert [(d["Key"], d["VersionId"]) for d in r["Deleted"]] == [("free", free)]
    # bad retention input
    for ret in ({"Mode": "governance", "RetainUntilDate": FAR}, {"Mode": "abc", "RetainUntilDate": FAR}):
        with pytest.raises(ClientError) as exc:
            s3.put_object_retention(Bucket=unique, Key="c", Retention=ret)
        assert code(exc) == (400, "MalformedXML")
    with pytest.raises(ClientError) as exc:  # a date in the past
        s3.put_object_retention(Bucket=unique, Key="c", Retention={
            "Mode": "COMPLIANCE", "RetainUntilDate": datetime.datetime(2001, 1, 1, tzinfo=UTC)})
    assert code(exc)[0] == 400
    for kw in ({"ObjectLockMode": "GOVERNANCE"},  # a mode without a date
               {"ObjectLockMode": "FOREVER", "ObjectLockRetainUntilDate": FAR},
               {"ObjectLockMode": "GOVERNANCE", "ObjectLockRetainUntilDate": datetime.datetime(2001, 1, 1,
                                                                                                tzinfo=UTC)},
               {"ObjectLockLegalHoldStatus": "MAYBE"}):
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=unique, Key="bad", Body=b"x", **kw)
        assert code(exc) == (400, "InvalidArgument"), kw


def test_legal_hold_and_default_retention(s3, unique) -> None:  # noqa: ANN001
    lock_bucket(s3, unique)
    v = s3.put_object(Bucket=unique, Key="h", Body=b"x", ObjectLockLegalHoldStatus="ON")["VersionId"]
    assert s3.get_object_legal_hold(Bucket=unique, Key="h")["LegalHold"] == {"Status": "ON"}
    assert s3.head_object(Bucket=unique, Key="h")["ObjectLockLegalHoldStatus"] == "ON"
    for kw in ({}, {"BypassGovernanceRetention": True}):  # a legal hold cannot be bypassed
        with pytest.raises(ClientError) as exc:
            s3.delete_object(Bucket=unique, Key="h", VersionId=v, **kw)
        assert code(exc) == (403, "AccessDenied")
    with pytest.raises(ClientError) as exc:
        s3.put_object_legal_hold(Bucket=unique, Key="h", LegalHold={"Status": "abc"})
    assert code(exc) == (400, "MalformedXML")
    s3.put_object_legal_hold(Bucket=unique, Key="h", LegalHold={"Status": "OFF"})
    assert s3.get_object_legal_hold(Bucket=unique, Key="h", VersionId=v)["LegalHold"] == {"Status": "OFF"}
    s3.delete_object(Bucket=unique, Key="h", VersionId=v)
    # default retention: every new version (PutObject, CopyObject, multipart) gets it
    s3.put_object_lock_configuration(Bucket=unique, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
    before = datetime.datetime.now(UTC)
    p = s3.put_object(Bucket=unique, Key="d", Body=b"x")["VersionId"]
    c = s3.copy_object(Bucket=unique, Key="d2", CopySource={"Bucket": unique, "Key": "d"})["VersionId"]
    up = s3.create_multipart_upload(Bucket=unique, Key="d3")["UploadId"]
    e = s3.upload_part(Bucket=unique, Key="d3", UploadId=up, PartNumber=1, Body=b"p")["ETag"]
    m = s3.complete_multipart_upload(Bucket=unique, Key="d3", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e}]})["VersionId"]
    for key, vid in (("d", p), ("d2", c), ("d3", m)):
        ret = s3.get_object_retention(Bucket=unique, Key=key, VersionId=vid)["Retention"]
        assert ret["Mode"] == "GOVERNANCE"
        assert before + datetime.timedelta(hours=23) < ret["RetainUntilDate"] < before + datetime.timedelta(days=2)
        with pytest.raises(ClientError) as exc:
            s3.delete_object(Bucket=unique, Key=key, VersionId=vid)
        assert code(exc) == (403, "AccessDenied")
    # explicit headers override the default; a multipart upload carries them to the object
    up = s3.create_multipart_upload(Bucket=unique, Key="d4", ObjectLockMode="COMPLIANCE",
                                    ObjectLockRetainUntilDate=FAR, ObjectLockLegalHoldStatus="ON")["UploadId"]
    e = s3.upload_part(Bucket=unique, Key="d4", UploadId=up, PartNumber=1, Body=b"p")["ETag"]
    s3.complete_multipart_upload(Bucket=unique, Key="d4", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e}]})
    h = s3.head_object(Bucket=unique, Key="d4")
    assert (h["ObjectLockMode"], h["ObjectLockRetainUntilDate"], h["ObjectLockLegalHoldStatus"]) == (
        "COMPLIANCE", FAR, "ON")


def test_lock_holds_for_swift(s3, swift_conn, unique) -> None:  # noqa: ANN001
    """One namespace: a locked version cannot be deleted through Swift either, Swift
    cannot turn versioning off, and Swift writes get the bucket's default retention."""
    lock_bucket(s3, unique)
    s3.put_object_lock_configuration(Bucket=unique, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}}})
    resp: dict = {}
    swift_conn.put_object(unique, "sw", b"from swift", response_dict=resp)
    vid = resp["headers"]["x-object-version-id"]
    assert s3.get_object_retention(Bucket=unique, Key="sw", VersionId=vid)["Retention"]["Mode"] == "COMPLIANCE"
    with pytest.raises(ClientException) as exc:
        swift_conn.delete_object(unique, "sw", query_string=f"version-id={vid}")
    assert exc.value.http_status == 403
    with pytest.raises(ClientException) as exc:
        swift_conn.post_container(unique, {"X-Versions-Enabled": "false"})
    assert exc.value.http_status == 409
    assert swift_conn.head_container(unique)["x-versions-enabled"] == "True"
    # a plain Swift DELETE is a delete marker (nothing destroyed): allowed
    resp = {}
    swift_conn.delete_object(unique, "sw", response_dict=resp)
    assert s3.get_object(Bucket=unique, Key="sw", VersionId=vid)["Body"].read() == b"from swift"
    s3.delete_object(Bucket=unique, Key="sw", VersionId=resp["headers"]["x-object-version-id"])
    # the lock's sysmeta is S3's own: not shown by Swift, kept by a Swift POST
    swift_conn.post_object(unique, "sw", headers={"X-Object-Meta-Color": "red"})
    h = swift_conn.head_object(unique, "sw")
    assert h["x-object-meta-color"] == "red" and not any("lock" in k for k in h)
    assert s3.get_object_retention(Bucket=unique, Key="sw")["Retention"]["Mode"] == "COMPLIANCE"


def test_aws_cli_object_lock(server, ec2_keys, unique, tmp_path) -> None:  # noqa: ANN001
    aws = [shutil.which("aws") or "aws", "--endpoint-url", server.url, "--output", "json"]
    env = aws_env(ec2_keys, tmp_path)
    run([*aws, "s3api", "create-bucket", "--bucket", unique, "--object-lock-enabled-for-bucket"], env)
    run([*aws, "s3api", "put-object-lock-configuration", "--bucket", unique, "--object-lock-configuration",
         json.dumps({"ObjectLockEnabled": "Enabled",
                     "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 3}}})], env)
    got = json.loads(run([*aws, "s3api", "get-object-lock-configuration", "--bucket", unique], env).stdout)
    assert got["ObjectLockConfiguration"]["Rule"]["DefaultRetention"] == {"Mode": "GOVERNANCE", "Days": 3}
    src = tmp_path / "f"
    src.write_bytes(b"data")
    vid = json.loads(run([*aws, "s3api", "put-object", "--bucket", unique, "--key", "f", "--body", str(src)],
                         env).stdout)["VersionId"]
    run([*aws, "s3api", "put-object-retention", "--bucket", unique, "--key", "f", "--version-id", vid,
         "--retention", "Mode=GOVERNANCE,RetainUntilDate=2098-06-01T00:00:00Z"], env)
    got = json.loads(run([*aws, "s3api", "get-object-retention", "--bucket", unique, "--key", "f"], env).stdout)
    assert got["Retention"]["Mode"] == "GOVERNANCE" and got["Retention"]["RetainUntilDate"].startswith("2098-06-01")
    run([*aws, "s3api", "put-object-legal-hold", "--bucket", unique, "--key", "f", "--legal-hold", "Status=ON"], env)
    got = json.loads(run([*aws, "s3api", "get-object-legal-hold", "--bucket", unique, "--key", "f"], env).stdout)
    assert got["LegalHold"]["Status"] == "ON"
    p = run([*aws, "s3api", "delete-object", "--bucket", unique, "--key", "f", "--version-id", vid,
             "--bypass-governance-retention"], env, check=False)
    assert p.returncode != 0 and "AccessDenied" in p.stderr  # the legal hold
    run([*aws, "s3api", "put-object-legal-hold", "--bucket", unique, "--key", "f", "--legal-hold", "Status=OFF"], env)
    run([*aws, "s3api", "delete-object", "--bucket", unique, "--key", "f", "--version-id", vid,
         "--bypass-governance-retention"], env)
