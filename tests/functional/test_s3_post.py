"""S3 PostObject (browser form uploads): forms made by boto3's ``generate_presigned_post``
(SigV4 with a client set to ``signature_version="s3v4"``, and SigV2, boto3's default
for forms, also with ``"s3"``) and posted with
``requests``, anonymous posts to a public-write bucket, the object read back through
S3 and Swift, the uploader held to PutObject's access decision, and bad forms and
policies answered with S3 XML errors that store nothing."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import os
import xml.etree.ElementTree as ET

import pytest
import requests
from botocore.exceptions import ClientError

from tests.functional.test_s3_acl import new_project_keys
from tests.functional.test_s3_api import client
from tests.functional.test_s3_features import xml_code
from tests.functional.test_s3_sse import KEY, OTHER, c3, headers_c, keys, marked, on_disk, srv, sse_c  # noqa: F401


def _post(url: str, fields: dict, content: bytes, filename: str = "upload.bin", **kw) -> requests.Response:  # noqa: ANN003
    files = [(k, (None, v)) for k, v in fields.items()] + [("file", (filename, content))]
    return requests.post(url, files=files, timeout=60, **kw)


def _v2_form(secret: str, access: str, policy_doc: dict, **fields: str) -> dict:
    policy = base64.b64encode(json.dumps(policy_doc).encode()).decode()
    sig = base64.b64encode(hmac.new(secret.encode(), policy.encode(), hashlib.sha1).digest()).decode()
    return {**fields, "AWSAccessKeyId": access, "policy": policy, "signature": sig}


def _signed(cli, bucket: str, key: str, **fields: str) -> tuple[str, dict]:  # noqa: ANN001
    """A SigV4 form (boto3's generate_presigned_post) whose policy names every field."""
    post = cli.generate_presigned_post(bucket, key, Fields=fields, Conditions=[{k: v} for k, v in fields.items()],
                                       ExpiresIn=600)
    return post["url"], post["fields"]


def _keys_of(cli, bucket: str) -> list[str]:  # noqa: ANN001
    return [o["Key"] for o in cli.list_objects_v2(Bucket=bucket).get("Contents", [])]


def _expires(seconds: int) -> str:
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_presigned_post_v4_then_read_through_s3_and_swift(server, ec2_keys, s3, swift_conn, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    body = os.urandom(3 * 1024 * 1024 + 17)  # several reads of the file part
    v4 = client(server, ec2_keys["access"], ec2_keys["secret"], signature_version="s3v4")
    post = v4.generate_presigned_post(
        unique, "docs/report.bin",
        Fields={"acl": "private", "Content-Type": "application/x-report", "x-amz-meta-color": "blue",
                "Cache-Control": "max-age=60", "success_action_status": "201"},
        Conditions=[{"acl": "private"}, ["starts-with", "$Content-Type", "application/"],
                    {"x-amz-meta-color": "blue"}, ["eq", "$Cache-Control", "max-age=60"],
                    {"success_action_status": "201"}, ["content-length-range", 1, 10 * 1024 * 1024]],
        ExpiresIn=600)
    assert post["fields"]["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    r = _post(post["url"], post["fields"], body)
    assert r.status_code == 201, r.text
    assert ET.fromstring(r.content).find("Key").text == "docs/report.bin"  # unqualified, as AWS
    assert "<PostResponse" in r.text and "<Key>docs/report.bin</Key>" in r.text and f"<Bucket>{unique}</Bucket>" in r.text
    md5 = hashlib.md5(body).hexdigest()
    assert r.headers["ETag"] == f'"{md5}"' and f'<ETag>"{md5}"</ETag>' in r.text
    got = s3.get_object(Bucket=unique, Key="docs/report.bin")
    assert got["Body"].read() == body
    assert got["ContentType"] == "application/x-report" and got["Metadata"] == {"color": "blue"}
    assert got["CacheControl"] == "max-age=60"
    # one namespace: Swift reads the same object and its metadata
    headers, data = swift_conn.get_object(unique, "docs/report.bin")
    assert data == body and headers["x-object-meta-color"] == "blue" and headers["etag"] == md5


def test_presigned_post_v2_with_filename_key(server, ec2_keys, s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    v2 = client(server, ec2_keys["access"], ec2_keys["secret"], signature_version="s3")
    post = v2.generate_presigned_post(unique, "in/${filename}", ExpiresIn=600)
    assert "signature" in post["fields"] and "AWSAccessKeyId" in post["fields"]
    r = _post(post["url"], post["fields"], b"csv,data\n", filename="table.csv")
    assert r.status_code == 204 and r.content == b"", r.text
    assert r.headers["Location"].endswith(f"/{unique}/in/table.csv")
    assert s3.get_object(Bucket=unique, Key="in/table.csv")["Body"].read() == b"csv,data\n"
    # the same form with the signature of another secret: refused, nothing written
    post["fields"]["signature"] = base64.b64encode(b"x" * 20).decode()
    r = _post(post["url"], post["fields"], b"evil", filename="evil.csv")
    assert r.status_code == 403 and xml_code(r) == "SignatureDoesNotMatch", r.text
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=unique)["Contents"]] == ["in/table.csv"]


def test_anonymous_post_needs_a_public_write_bucket(server, s3, unique) -> None:  # noqa: ANN001
    url = f"{server.url}/{unique}"
    s3.create_bucket(Bucket=unique, ACL="public-read")
    r = _post(url, {"key": "anon.txt", "Content-Type": "text/plain"}, b"hi")
    assert r.status_code == 403 and xml_code(r) == "AccessDenied", r.text
    assert s3.list_objects_v2(Bucket=unique)["KeyCount"] == 0
    s3.put_bucket_acl(Bucket=unique, ACL="public-read-write")
    tags = "<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>"
    r = _post(url, {"KEY": "anon.txt", "content-type": "text/plain", "acl": "public-read", "tagging": tags}, b"hi")
    assert r.status_code == 204, r.text
    assert requests.get(f"{url}/anon.txt", timeout=10).content == b"hi"  # acl public-read
    assert s3.get_object_tagging(Bucket=unique, Key="anon.txt")["TagSet"] == [{"Key": "k", "Value": "v"}]
    # success_action_redirect: 303 to it with bucket, key and etag
    r = _post(url, {"key": "r.txt", "success_action_redirect": "https://example.org/done?x=1"}, b"r",
              allow_redirects=False)
    etag = hashlib.md5(b"r").hexdigest()
    assert r.status_code == 303, r.text
    assert r.headers["Location"] == f"https://example.org/done?x=1&bucket={unique}&key=r.txt&etag=%22{etag}%22"
    # success_action_status outside 200/201/204: 204
    r = _post(url, {"key": "s.txt", "success_action_status": "404"}, b"s")
    assert r.status_code == 204 and r.content == b""


def test_another_projects_policy_goes_through_the_put_decision(server, s3, swift_conn, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    pid, _name, _c, keys = new_project_keys(server)
    doc = {"expiration": _expires(600), "conditions": [{"bucket": unique}, ["starts-with", "$key", ""]]}
    form = _v2_form(keys["secret"], keys["access"], doc, key="from-other.txt")
    r = _post(f"{server.url}/{unique}", form, b"x")
    assert r.status_code == 403 and xml_code(r) == "AccessDenied", r.text
    swift_conn.post_container(unique, {"X-Container-Write": f"{pid}:*"})  # a write grant, as PutObject needs
    r = _post(f"{server.url}/{unique}", form, b"x")
    assert r.status_code == 204, r.text
    assert s3.get_object(Bucket=unique, Key="from-other.txt")["Body"].read() == b"x"


def test_bad_forms_and_policies_store_nothing(server, ec2_keys, s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    s3.put_object(Bucket=unique, Key="keep.txt", Body=b"original")
    url = f"{server.url}/{unique}"
    access, secret = ec2_keys["access"], ec2_keys["secret"]

    def form(conditions: list | None = None, expires: int = 600, **fields: str) -> dict:
        conds = conditions if conditions is not None else [{"bucket": unique}, ["starts-with", "$key", ""]]
        return _v2_form(secret, access, {"expiration": _expires(expires), "conditions": conds}, **fields)

    cases = [
        (form(expires=-60, key="keep.txt"), b"new", 403, "AccessDenied"),
        (form(conditions=[{"bucket": unique}, ["starts-with", "$key", ""], ["content-length-range", 0, 4]],
              key="keep.txt"), b"too long", 400, "EntityTooLarge"),
        (form(conditions=[{"bucket": unique}, ["starts-with", "$key", ""], ["content-length-range", 100, 200]],
              key="keep.txt"), b"short", 400, "EntityTooSmall"),
        (form(key="keep.txt", **{"x-amz-meta-extra": "not in the policy"}), b"new", 403, "AccessDenied"),
        (form(conditions=[{"bucket": "another"}, ["starts-with", "$key", ""]], key="keep.txt"), b"new", 403,
         "AccessDenied"),
        (form(conditions=[["starts-with", "$key", ""]], key="keep.txt"), b"new", 403, "AccessDenied"),
        (form(conditions=[{}], key="keep.txt"), b"new", 400, "InvalidPolicyDocument"),
        (form(conditions=[["content-length-range", 0]], key="keep.txt"), b"new", 400, "InvalidPolicyDocument"),
        (form(), b"new", 400, "InvalidArgument"),  # no key
        (form(key="keep.txt", **{"x-amz-checksum-sha256": base64.b64encode(b"\0" * 32).decode()}), b"new", 400,
         "BadDigest"),
        ({k: v for k, v in form(key="keep.txt").items() if k != "signature"}, b"new", 400, "InvalidArgument"),
        ({**form(key="keep.txt"), "AWSAccessKeyId": "AKIANOSUCHKEY"}, b"new", 403, "InvalidAccessKeyId"),
    ]
    for fields, content, status, err in cases:
        r = _post(url, fields, content)
        assert (r.status_code, xml_code(r)) == (status, err), (fields, r.text)
    # a policy without "expiration" / "conditions" (case-sensitive names)
    for doc in ({"EXPIRATION": _expires(600), "conditions": []}, {"expiration": _expires(600)},
                {"expiration": "tomorrow", "conditions": []}):
        r = _post(url, _v2_form(secret, access, doc, key="keep.txt"), b"new")
        assert (r.status_code, xml_code(r)) == (400, "InvalidPolicyDocument"), (doc, r.text)
    # not a form; a form whose body breaks off; no file part
    r = requests.post(url, data=b"key=keep.txt", headers={"Content-Type": "application/x-www-form-urlencoded"},
                      timeout=10)
    assert (r.status_code, xml_code(r)) == (412, "PreconditionFailed"), r.text
    raw = b"".join(b'--XX\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (k.encode(), v.encode())
                   for k, v in form(key="keep.txt").items())
    raw += b'--XX\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nnew and never ended'
    r = requests.post(url, data=raw, headers={"Content-Type": "multipart/form-data; boundary=XX"}, timeout=10)
    assert (r.status_code, xml_code(r)) == (400, "MalformedPOSTRequest"), r.text
    r = requests.post(url, data=b"garbage", headers={"Content-Type": "multipart/form-data; boundary=XX"}, timeout=10)
    assert (r.status_code, xml_code(r)) == (400, "MalformedPOSTRequest"), r.text
    r = requests.post(url, files=[("key", (None, "keep.txt"))], timeout=10)
    assert (r.status_code, xml_code(r)) == (400, "InvalidArgument"), r.text
    # fields before the file over 20 KiB
    r = _post(url, {"key": "keep.txt", "x-ignore-pad": "p" * 21000}, b"new")
    assert (r.status_code, xml_code(r)) == (400, "MaxPostPreDataLengthExceeded"), r.text
    assert s3.get_object(Bucket=unique, Key="keep.txt")["Body"].read() == b"original"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=unique)["Contents"]] == ["keep.txt"]
    # missing bucket
    r = _post(f"{server.url}/{unique}-none", form(key="a"), b"x")
    assert (r.status_code, xml_code(r)) == (404, "NoSuchBucket"), r.text


def test_v4_form_with_wrong_secret_or_missing_date(server, ec2_keys, s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    wrong = client(server, ec2_keys["access"], "not-the-secret", signature_version="s3v4")
    post = wrong.generate_presigned_post(unique, "k.txt", ExpiresIn=600)
    r = _post(post["url"], post["fields"], b"x")
    assert (r.status_code, xml_code(r)) == (403, "SignatureDoesNotMatch"), r.text
    # a V4 form without x-amz-date: 400 naming the field
    v4 = client(server, ec2_keys["access"], ec2_keys["secret"], signature_version="s3v4")
    good = v4.generate_presigned_post(unique, "k.txt", ExpiresIn=600)
    fields = {k: v for k, v in good["fields"].items() if k != "x-amz-date"}
    r = _post(good["url"], fields, b"x")
    assert (r.status_code, xml_code(r)) == (400, "InvalidArgument") and "x-amz-date" in r.text, r.text
    assert s3.list_objects_v2(Bucket=unique)["KeyCount"] == 0


# -- PostObject is PutObject: encryption, versioning and object lock, access ---------------
# (before: SSE fields were a 501, the bucket default's mode went unreported, no version id
# was answered and a suspended bucket's null version was not replaced, the ``acl`` field
# skipped ObjectOwnership and PublicAccessBlock, and bucket policy conditions did not see
# the form's fields)


def test_post_with_sse_c_s3_and_kms_fields_is_stored_encrypted(srv, keys, c3, unique) -> None:  # noqa: ANN001, F811
    c3.create_bucket(Bucket=unique)
    v4 = client(srv, keys["access"], keys["secret"], signature_version="s3v4")
    data = marked(200_000)
    md5_of_key = base64.b64encode(hashlib.md5(KEY).digest()).decode()
    # SSE-C: the response names the key's MD5; every read needs the key
    url, fields = _signed(v4, unique, "c.bin", **{
        "x-amz-server-side-encryption-customer-algorithm": "AES256",
        "x-amz-server-side-encryption-customer-key": base64.b64encode(KEY).decode(),
        "x-amz-server-side-encryption-customer-key-MD5": md5_of_key})
    r = _post(url, fields, data)
    assert r.status_code == 204, r.text
    assert r.headers["x-amz-server-side-encryption-customer-algorithm"] == "AES256"
    assert r.headers["x-amz-server-side-encryption-customer-key-MD5"] == md5_of_key
    assert not on_disk(srv, b"PLAINTEXT-MARKER")
    for bad in ({}, sse_c(OTHER)):
        with pytest.raises(ClientError) as e:
            c3.get_object(Bucket=unique, Key="c.bin", **bad)
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert c3.get_object(Bucket=unique, Key="c.bin", **sse_c())["Body"].read() == data
    # SSE-S3 and SSE-KMS (a key of the local key store)
    url, fields = _signed(v4, unique, "s3.bin", **{"x-amz-server-side-encryption": "AES256"})
    r = _post(url, fields, data)
    assert r.status_code == 204 and r.headers["x-amz-server-side-encryption"] == "AES256", r.text
    url, fields = _signed(v4, unique, "kms.bin", **{"x-amz-server-side-encryption": "aws:kms",
                                                    "x-amz-server-side-encryption-aws-kms-key-id": "k1"})
    r = _post(url, fields, data)
    assert r.status_code == 204 and r.headers["x-amz-server-side-encryption"] == "aws:kms", r.text
    assert r.headers["x-amz-server-side-encryption-aws-kms-key-id"] == "k1"
    assert c3.head_object(Bucket=unique, Key="s3.bin")["ServerSideEncryption"] == "AES256"
    head = c3.head_object(Bucket=unique, Key="kms.bin")
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", "k1")
    assert c3.get_object(Bucket=unique, Key="kms.bin")["Body"].read() == data
    assert not on_disk(srv, b"PLAINTEXT-MARKER")


def test_post_into_a_bucket_with_default_encryption(srv, keys, c3, unique) -> None:  # noqa: ANN001, F811
    c3.create_bucket(Bucket=unique)
    c3.put_bucket_encryption(Bucket=unique, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "k2"}}]})
    v4 = client(srv, keys["access"], keys["secret"], signature_version="s3v4")
    url, fields = _signed(v4, unique, "d.bin")
    data = marked(50_000)
    r = _post(url, fields, data)
    assert r.status_code == 204, r.text
    assert (r.headers["x-amz-server-side-encryption"], r.headers["x-amz-server-side-encryption-aws-kms-key-id"]) \
        == ("aws:kms", "k2")
    assert c3.head_object(Bucket=unique, Key="d.bin")["SSEKMSKeyId"] == "k2"
    assert c3.get_object(Bucket=unique, Key="d.bin")["Body"].read() == data
    assert not on_disk(srv, b"PLAINTEXT-MARKER")


def test_post_with_bad_encryption_fields_stores_nothing(srv, keys, c3, unique) -> None:  # noqa: ANN001, F811
    c3.create_bucket(Bucket=unique)
    v4 = client(srv, keys["access"], keys["secret"], signature_version="s3v4")
    c = headers_c()
    cases = [
        ({**c, "x-amz-server-side-encryption-customer-key-MD5": base64.b64encode(hashlib.md5(OTHER).digest())
          .decode()}, 400, "InvalidArgument"),  # the key's MD5 is another key's
        ({k: v for k, v in c.items() if not k.endswith("-key")}, 400, "InvalidArgument"),  # no key
        ({**c, "x-amz-server-side-encryption-customer-algorithm": "AES128"}, 400, "InvalidEncryptionAlgorithmError"),
        ({**c, "x-amz-server-side-encryption": "AES256"}, 400, "InvalidArgument"),  # SSE-C and SSE-S3
        ({"x-amz-server-side-encryption": "aws:kms", "x-amz-server-side-encryption-aws-kms-key-id": "nokey"}, 400,
         "KMS.NotFoundException"),
        ({"x-amz-server-side-encryption": "AES512"}, 400, "InvalidArgument"),
        ({"x-amz-server-side-encryption-aws-kms-key-id": "k1"}, 400, "InvalidArgument"),  # a key id without kms
        ({"x-amz-server-side-encryption": "aws:kms:dsse"}, 501, "NotImplemented"),
    ]
    for extra, status, err in cases:
        url, fields = _signed(v4, unique, "x.bin", **extra)
        r = _post(url, fields, b"never stored")
        assert (r.status_code, xml_code(r)) == (status, err), (extra, r.text)
    assert _keys_of(c3, unique) == []


def test_post_into_versioned_and_suspended_buckets(server, ec2_keys, s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    s3.put_bucket_versioning(Bucket=unique, VersioningConfiguration={"Status": "Enabled"})
    v4 = client(server, ec2_keys["access"], ec2_keys["secret"], signature_version="s3v4")
    ids = []
    for content in (b"one", b"two"):
        url, fields = _signed(v4, unique, "v.txt")
        r = _post(url, fields, content)
        assert r.status_code == 204 and r.headers.get("x-amz-version-id"), (r.headers, r.text)
        ids.append(r.headers["x-amz-version-id"])
    assert ids[0] != ids[1]
    listed = s3.list_object_versions(Bucket=unique)["Versions"]
    assert sorted(v["VersionId"] for v in listed) == sorted(ids)
    assert s3.get_object(Bucket=unique, Key="v.txt", VersionId=ids[0])["Body"].read() == b"one"
    assert s3.get_object(Bucket=unique, Key="v.txt")["VersionId"] == ids[1]
    # suspended: the null version, no id answered; a second POST replaces the null version
    s3.put_bucket_versioning(Bucket=unique, VersioningConfiguration={"Status": "Suspended"})
    for content in (b"three", b"four"):
        url, fields = _signed(v4, unique, "v.txt")
        r = _post(url, fields, content)
        assert r.status_code == 204 and "x-amz-version-id" not in r.headers, (r.headers, r.text)
    listed = s3.list_object_versions(Bucket=unique)["Versions"]
    assert sorted(v["VersionId"] for v in listed) == sorted(ids + ["null"])
    assert s3.get_object(Bucket=unique, Key="v.txt", VersionId="null")["Body"].read() == b"four"


def test_post_into_an_object_lock_bucket(server, ec2_keys, s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(Bucket=unique, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
    v4 = client(server, ec2_keys["access"], ec2_keys["secret"], signature_version="s3v4")
    url, fields = _signed(v4, unique, "locked.txt")
    r = _post(url, fields, b"keep me")
    assert r.status_code == 204 and r.headers.get("x-amz-version-id"), r.text
    vid = r.headers["x-amz-version-id"]
    assert s3.head_object(Bucket=unique, Key="locked.txt")["ObjectLockMode"] == "GOVERNANCE"  # the default applies
    with pytest.raises(ClientError) as e:
        s3.delete_object(Bucket=unique, Key="locked.txt", VersionId=vid)
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    # the form's own lock fields, as PutObject's headers
    url, fields = _signed(v4, unique, "held.txt", **{"x-amz-object-lock-legal-hold": "ON"})
    assert _post(url, fields, b"held").status_code == 204
    assert s3.head_object(Bucket=unique, Key="held.txt")["ObjectLockLegalHoldStatus"] == "ON"
    url, fields = _signed(v4, unique, "bad.txt", **{"x-amz-object-lock-legal-hold": "MAYBE"})
    r = _post(url, fields, b"x")
    assert (r.status_code, xml_code(r)) == (400, "InvalidArgument"), r.text
    # lock fields where the bucket has no object lock: 400, as PutObject
    s3.create_bucket(Bucket=unique + "-plain")
    url, fields = _signed(v4, unique + "-plain", "x.txt", **{"x-amz-object-lock-legal-hold": "ON"})
    r = _post(url, fields, b"x")
    assert (r.status_code, xml_code(r)) == (400, "InvalidRequest"), r.text
    assert _keys_of(s3, unique + "-plain") == [] and "bad.txt" not in _keys_of(s3, unique)


def test_post_is_held_to_bucket_policy_conditions(server, unique) -> None:  # noqa: ANN001
    _pid, _name, s3, keys = new_project_keys(server)  # not the cloud admin, whom no policy binds
    s3.create_bucket(Bucket=unique)
    arn = f"arn:aws:s3:::{unique}/*"
    s3.put_bucket_policy(Bucket=unique, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": arn,
         "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "AES256"}}},
        {"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": arn,
         "Condition": {"StringNotEquals": {"s3:RequestObjectTag/team": "blue"}}}]}))
    v4 = client(server, keys["access"], keys["secret"], signature_version="s3v4")

    def tags(team: str) -> str:
        return f"<Tagging><TagSet><Tag><Key>team</Key><Value>{team}</Value></Tag></TagSet></Tagging>"

    for fields in ({"tagging": tags("blue")},  # no encryption
                   {"x-amz-server-side-encryption": "AES256"},  # no tag
                   {"x-amz-server-side-encryption": "AES256", "tagging": tags("red")}):
        url, form = _signed(v4, unique, "p.txt", **fields)
        r = _post(url, form, b"x")
        assert (r.status_code, xml_code(r)) == (403, "AccessDenied"), (fields, r.text)
    url, form = _signed(v4, unique, "p.txt", **{"x-amz-server-side-encryption": "AES256", "tagging": tags("blue")})
    r = _post(url, form, b"x")
    assert r.status_code == 204, r.text
    assert s3.get_object_tagging(Bucket=unique, Key="p.txt")["TagSet"] == [{"Key": "team", "Value": "blue"}]
    # the POST's own headers are not the form's: an encryption header does not satisfy the policy
    url, form = _signed(v4, unique, "h.txt", tagging=tags("blue"))
    r = _post(url, form, b"x", headers={"x-amz-server-side-encryption": "AES256"})
    assert (r.status_code, xml_code(r)) == (403, "AccessDenied"), r.text
    assert _keys_of(s3, unique) == ["p.txt"]


def test_post_acl_meets_public_access_block_and_ownership(server, unique) -> None:  # noqa: ANN001
    owner_pid, _n, s3, owner_keys = new_project_keys(server)
    pid, _name, other_s3, keys = new_project_keys(server)
    s3.create_bucket(Bucket=unique)
    s3.put_bucket_policy(Bucket=unique, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{pid}:root"}, "Action": "s3:PutObject",
         "Resource": f"arn:aws:s3:::{unique}/*"}]}))
    v4 = client(server, owner_keys["access"], owner_keys["secret"], signature_version="s3v4")
    other = client(server, keys["access"], keys["secret"], signature_version="s3v4")
    # BlockPublicAcls: a public acl field is refused; an unknown one is a 400
    s3.put_public_access_block(Bucket=unique, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": False, "BlockPublicPolicy": False,
        "RestrictPublicBuckets": False})
    url, form = _signed(v4, unique, "pub.txt", acl="public-read")
    r = _post(url, form, b"x")
    assert (r.status_code, xml_code(r)) == (403, "AccessDenied"), r.text
    url, form = _signed(v4, unique, "bad.txt", acl="no-such-acl")
    r = _post(url, form, b"x")
    assert (r.status_code, xml_code(r)) == (400, "InvalidArgument"), r.text
    s3.delete_public_access_block(Bucket=unique)
    # ObjectWriter: another project's upload is its own; BucketOwnerPreferred with
    # bucket-owner-full-control: the bucket owner's
    url, form = _signed(other, unique, "writer.txt")
    assert _post(url, form, b"w").status_code == 204
    assert other_s3.get_object_acl(Bucket=unique, Key="writer.txt")["Owner"]["ID"] == pid
    s3.put_bucket_ownership_controls(Bucket=unique, OwnershipControls={"Rules": [
        {"ObjectOwnership": "BucketOwnerPreferred"}]})
    url, form = _signed(other, unique, "preferred.txt", acl="bucket-owner-full-control")
    assert _post(url, form, b"p").status_code == 204
    assert s3.get_object_acl(Bucket=unique, Key="preferred.txt")["Owner"]["ID"] == owner_pid
    # BucketOwnerEnforced: ACLs other than bucket-owner-full-control refused, the owner the bucket's
    s3.put_bucket_ownership_controls(Bucket=unique, OwnershipControls={"Rules": [
        {"ObjectOwnership": "BucketOwnerEnforced"}]})
    url, form = _signed(other, unique, "enforced.txt", acl="public-read")
    r = _post(url, form, b"x")
    assert (r.status_code, xml_code(r)) == (400, "AccessControlListNotSupported"), r.text
    url, form = _signed(other, unique, "enforced.txt")
    assert _post(url, form, b"e").status_code == 204
    assert s3.get_object_acl(Bucket=unique, Key="enforced.txt")["Owner"]["ID"] == owner_pid
    assert sorted(_keys_of(s3, unique)) == ["enforced.txt", "preferred.txt", "writer.txt"]
