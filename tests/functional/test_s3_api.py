"""S3 API with boto3 at its default settings, keys from `openstack ec2 credentials create`."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError


def code(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    e = exc.value.response
    return e["ResponseMetadata"]["HTTPStatusCode"], e["Error"]["Code"]


def client(server, access: str, secret: str, **cfg):  # noqa: ANN001, ANN201
    return boto3.client("s3", endpoint_url=server.url, aws_access_key_id=access, aws_secret_access_key=secret,
                        region_name="us-east-1", config=Config(retries={"max_attempts": 1}, **cfg))


def test_bucket_lifecycle(s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    assert unique in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket=unique)
    assert s3.get_bucket_location(Bucket=unique)["LocationConstraint"] == "regionOne"
    s3.create_bucket(Bucket=unique)  # the owner's re-create: 200, as Ceph RGW (Allas)
    s3.put_object(Bucket=unique, Key="x", Body=b"1")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=unique)
    assert code(exc) == (409, "BucketNotEmpty")
    s3.delete_object(Bucket=unique, Key="x")
    s3.delete_bucket(Bucket=unique)
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=unique)
    assert code(exc)[0] == 404
    with pytest.raises(ClientError) as exc:
        s3.list_objects_v2(Bucket=unique)
    assert code(exc) == (404, "NoSuchBucket")


def test_invalid_bucket_name(s3) -> None:  # noqa: ANN001
    for bad in ("ab", "Upper-Case", "bad_underscore", "-start", "192.168.1.1"):
        with pytest.raises(ClientError) as exc:
            s3.create_bucket(Bucket=bad)
        assert code(exc) == (400, "InvalidBucketName"), bad


def test_put_get_head_delete(s3, unique, tmp_path) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    data = os.urandom(100_000)
    r = s3.put_object(Bucket=unique, Key="dir/obj ü+%.bin", Body=data, ContentType="application/x-test",
                      Metadata={"Color": "blue"}, ContentDisposition="attachment")
    assert r["ETag"] == '"%s"' % hashlib.md5(data).hexdigest()
    assert "ChecksumCRC32" in r  # boto3 sent its default CRC32; lampi verified and echoed it
    g = s3.get_object(Bucket=unique, Key="dir/obj ü+%.bin")
    assert g["Body"].read() == data
    assert g["ContentType"] == "application/x-test"
    assert g["Metadata"] == {"color": "blue"}
    assert g["ContentDisposition"] == "attachment"
    h = s3.head_object(Bucket=unique, Key="dir/obj ü+%.bin")
    assert h["ContentLength"] == len(data)
    assert h["ETag"] == r["ETag"]
    part = s3.get_object(Bucket=unique, Key="dir/obj ü+%.bin", Range="bytes=10-19")
    assert part["Body"].read() == data[10:20]
    assert part["ContentRange"] == f"bytes 10-19/{len(data)}"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=unique, Key="dir/obj ü+%.bin", Range=f"bytes={len(data)}-")
    assert code(exc) == (416, "InvalidRange")
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=unique, Key="dir/obj ü+%.bin", IfNoneMatch=r["ETag"])
    assert code(exc)[0] == 304
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=unique, Key="dir/obj ü+%.bin", IfMatch='"nope"')
    assert code(exc) == (412, "PreconditionFailed")
    o = s3.get_object(Bucket=unique, Key="dir/obj ü+%.bin", ResponseContentType="text/csv")
    assert o["ContentType"] == "text/csv"
    src = tmp_path / "f.txt"
    src.write_bytes(b"file body\n" * 100)
    s3.upload_file(str(src), unique, "uploaded.txt")
    dst = tmp_path / "g.txt"
    s3.download_file(unique, "uploaded.txt", str(dst))
    assert dst.read_bytes() == src.read_bytes()
    s3.delete_object(Bucket=unique, Key="dir/obj ü+%.bin")
    s3.delete_object(Bucket=unique, Key="dir/obj ü+%.bin")  # absent: still 204
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=unique, Key="dir/obj ü+%.bin")
    assert code(exc) == (404, "NoSuchKey")


def test_listing_pagination_delimiter(s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    keys = [f"p{i % 3}/k{i:04d}" for i in range(150)] + [f"top{i}" for i in range(5)]
    for k in keys:
        s3.put_object(Bucket=unique, Key=k, Body=b"")
    # flat, paginated v2 and v1
    for op in ("list_objects_v2", "list_objects"):
        got = [o["Key"] for page in s3.get_paginator(op).paginate(Bucket=unique, PaginationConfig={"PageSize": 40})
               for o in page.get("Contents", [])]
        assert got == sorted(keys), op
    # delimiter: 3 common prefixes + 5 keys, paged 2 at a time
    prefixes, contents = [], []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=unique, Delimiter="/",
                                                              PaginationConfig={"PageSize": 2}):
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        contents += [o["Key"] for o in page.get("Contents", [])]
    assert prefixes == ["p0/", "p1/", "p2/"]
    assert contents == [f"top{i}" for i in range(5)]
    r = s3.list_objects_v2(Bucket=unique, Prefix="p1/", StartAfter="p1/k0100")
    assert [o["Key"] for o in r["Contents"]] == [k for k in sorted(keys) if k.startswith("p1/") and k > "p1/k0100"]
    r = s3.list_objects_v2(Bucket=unique, MaxKeys=0)
    assert r["KeyCount"] == 0 and not r["IsTruncated"] and "Contents" not in r
    r = s3.list_objects(Bucket=unique, Marker="top2")
    assert [o["Key"] for o in r["Contents"]] == ["top3", "top4"]
    r = s3.list_objects_v2(Bucket=unique, Prefix="top", EncodingType="url")
    assert r["KeyCount"] == 5


def test_delete_objects_and_copy(s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    for i in range(5):
        s3.put_object(Bucket=unique, Key=f"k{i}", Body=b"v%d" % i, Metadata={"n": str(i)})
    r = s3.delete_objects(Bucket=unique, Delete={"Objects": [{"Key": "k0"}, {"Key": "k1"}, {"Key": "missing"}]})
    assert sorted(d["Key"] for d in r["Deleted"]) == ["k0", "k1", "missing"]
    r = s3.delete_objects(Bucket=unique, Delete={"Objects": [{"Key": "k2"}], "Quiet": True})
    assert "Deleted" not in r and "Errors" not in r
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=unique)["Contents"]] == ["k3", "k4"]
    r = s3.copy_object(Bucket=unique, Key="c3", CopySource={"Bucket": unique, "Key": "k3"})
    assert r["CopyObjectResult"]["ETag"] == '"%s"' % hashlib.md5(b"v3").hexdigest()
    assert s3.head_object(Bucket=unique, Key="c3")["Metadata"] == {"n": "3"}
    s3.copy_object(Bucket=unique, Key="c4", CopySource=f"{unique}/k4", MetadataDirective="REPLACE",
                   Metadata={"new": "yes"}, ContentType="text/plain")
    h = s3.head_object(Bucket=unique, Key="c4")
    assert h["Metadata"] == {"new": "yes"} and h["ContentType"] == "text/plain"
    assert s3.get_object(Bucket=unique, Key="c4")["Body"].read() == b"v4"
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=unique, Key="k4", CopySource=f"{unique}/k4")
    assert code(exc) == (400, "InvalidRequest")
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=unique, Key="c5", CopySource=f"{unique}/k4", CopySourceIfMatch='"bad"')
    assert code(exc) == (412, "PreconditionFailed")


def test_presigned_get_put(server, s3, unique, ec2_keys) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    url = s3.generate_presigned_url("put_object", Params={"Bucket": unique, "Key": "pre"}, ExpiresIn=60)
    assert requests.put(url, data=b"presigned body").status_code == 200
    url = s3.generate_presigned_url("get_object", Params={"Bucket": unique, "Key": "pre"}, ExpiresIn=60)
    r = requests.get(url)
    assert r.status_code == 200 and r.content == b"presigned body"
    assert "x-amz-request-id" in r.headers and "x-amz-id-2" in r.headers
    # tampered and expired URLs
    bad = requests.get(url.replace("pre?", "pre2?"))
    assert bad.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in bad.text
    expired = s3.generate_presigned_url("get_object", Params={"Bucket": unique, "Key": "pre"}, ExpiresIn=1)
    time.sleep(2.1)
    r = requests.get(expired)
    assert r.status_code == 403 and "<Code>AccessDenied</Code>" in r.text and "Request has expired" in r.text
    # SigV2 query string (what s3cmd signurl makes)
    v2 = client(server, ec2_keys["access"], ec2_keys["secret"], signature_version="s3")
    url = v2.generate_presigned_url("get_object", Params={"Bucket": unique, "Key": "pre"}, ExpiresIn=60)
    assert "AWSAccessKeyId=" in url
    r = requests.get(url)
    assert r.status_code == 200 and r.content == b"presigned body"


def test_sigv2_header(server, unique, ec2_keys) -> None:  # noqa: ANN001
    v2 = client(server, ec2_keys["access"], ec2_keys["secret"], signature_version="s3")
    v2.create_bucket(Bucket=unique)
    v2.put_object(Bucket=unique, Key="a b", Body=b"v2")
    assert v2.get_object(Bucket=unique, Key="a b")["Body"].read() == b"v2"
    assert [o["Key"] for o in v2.list_objects(Bucket=unique)["Contents"]] == ["a b"]


def test_bad_credentials(server, s3, unique, ec2_keys, openrc_env) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    wrong = client(server, ec2_keys["access"], "0" * 32)
    with pytest.raises(ClientError) as exc:
        wrong.list_objects_v2(Bucket=unique)
    assert code(exc) == (403, "SignatureDoesNotMatch")
    r = exc.value.response["Error"]
    assert "CanonicalRequest" in r and "StringToSign" in r
    with pytest.raises(ClientError) as exc:
        client(server, "f" * 32, "0" * 32).list_buckets()
    assert code(exc) == (403, "InvalidAccessKeyId")
    # a fresh key works, and stops working as soon as it is deleted
    made = json.loads(subprocess.run(["openstack", "ec2", "credentials", "create", "-f", "json"], env=openrc_env,
                                     capture_output=True, text=True, check=True).stdout)
    c = client(server, made["access"], made["secret"])
    c.head_bucket(Bucket=unique)
    shown = json.loads(subprocess.run(["openstack", "ec2", "credentials", "show", made["access"], "-f", "json"],
                                      env=openrc_env, capture_output=True, text=True, check=True).stdout)
    assert shown["secret"] == made["secret"]
    subprocess.run(["openstack", "ec2", "credentials", "delete", made["access"]], env=openrc_env, check=True)
    with pytest.raises(ClientError) as exc:
        c.head_bucket(Bucket=unique)
    assert code(exc)[0] == 403


def test_raw_bad_requests(server, s3, unique, ec2_keys) -> None:  # noqa: ANN001
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    s3.create_bucket(Bucket=unique)
    creds = Credentials(ec2_keys["access"], ec2_keys["secret"])

    def send(method: str, path: str, body: bytes = b"", headers: dict | None = None, sign_body: bytes | None = None,
             when: float | None = None) -> requests.Response:
        req = AWSRequest(method=method, url=server.url + path, data=sign_body if sign_body is not None else body,
                         headers=dict(headers or {}))
        if when is not None:  # a client whose clock is off (the client's clock, not lampi's)
            import datetime
            from unittest import mock

            skewed = datetime.datetime.fromtimestamp(when, datetime.timezone.utc).replace(tzinfo=None)
            with mock.patch("botocore.auth.get_current_datetime", return_value=skewed):
                S3SigV4Auth(creds, "s3", "us-east-1").add_auth(req)
        else:
            S3SigV4Auth(creds, "s3", "us-east-1").add_auth(req)
        h = dict(req.headers.items())
        return requests.request(method, server.url + path, data=body, headers=h)

    # tampered body: the declared payload hash does not match → nothing stored
    r = send("PUT", f"/{unique}/t", body=b"evil", sign_body=b"good")
    assert r.status_code == 400 and "<Code>XAmzContentSHA256Mismatch</Code>" in r.text
    with pytest.raises(ClientError):
        s3.head_object(Bucket=unique, Key="t")
    # a wrong flexible checksum
    r = send("PUT", f"/{unique}/t", body=b"data", headers={"x-amz-checksum-crc32": "AAAAAA=="})
    assert r.status_code == 400 and "<Code>BadDigest</Code>" in r.text
    r = send("PUT", f"/{unique}/t", body=b"data", headers={"x-amz-checksum-sha256": "bm90IGEgaGFzaA=="})
    assert r.status_code == 400 and "<Code>BadDigest</Code>" in r.text  # not a SHA-256 at all: as RGW
    r = send("PUT", f"/{unique}/t", body=b"data", headers={"Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg=="})
    assert r.status_code == 400 and "<Code>BadDigest</Code>" in r.text
    with pytest.raises(ClientError):
        s3.head_object(Bucket=unique, Key="t")
    # malformed and entity-expanding XML
    r = send("POST", f"/{unique}?delete", body=b"<Delete><Object><Key>a</Key></Object>")
    assert r.status_code == 400 and "<Code>MalformedXML</Code>" in r.text
    bomb = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
            b"<Delete><Object><Key>&b;</Key></Object></Delete>")
    r = send("POST", f"/{unique}?delete", body=bomb)
    assert r.status_code == 400 and "<Code>MalformedXML</Code>" in r.text
    # clock skew
    r = send("GET", f"/{unique}", when=time.time() - 3600)
    assert r.status_code == 403 and "<Code>RequestTimeTooSkewed</Code>" in r.text
    # unknown operation
    r = send("GET", f"/{unique}?logging")
    assert r.status_code == 501 and "<Code>NotImplemented</Code>" in r.text and "GetBucketLogging" in r.text
    assert r.headers["x-amz-request-id"] and r.headers["x-amz-id-2"]
    # anonymous
    r = requests.get(f"{server.url}/{unique}")
    assert r.status_code == 403 and "<Code>AccessDenied</Code>" in r.text
    # plain GET / is still Keystone version discovery
    r = requests.get(server.url + "/")
    assert r.status_code == 300 and "versions" in r.json()


def test_other_project_bucket(server, s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    other = "p" + unique
    server.cli("project", "create", other)
    server.cli("user", "create", other, "--password", "pw-" + other, "--project", other)
    made = json.loads(server.cli("credential", "create", other, other, "--json").stdout)
    o = client(server, made["access"], made["secret"])
    with pytest.raises(ClientError) as exc:
        o.list_objects_v2(Bucket=unique)
    assert code(exc) == (403, "AccessDenied")
    with pytest.raises(ClientError) as exc:
        o.put_object(Bucket=unique, Key="x", Body=b"x")
    assert code(exc) == (403, "AccessDenied")
    with pytest.raises(ClientError) as exc:
        o.create_bucket(Bucket=unique)
    assert code(exc) == (409, "BucketAlreadyExists")
    assert o.list_buckets()["Buckets"] == []
    listed = json.loads(server.cli("credential", "list", "--user", other, "--json").stdout)
    assert [c["access"] for c in listed] == [made["access"]]
    server.cli("credential", "delete", made["access"])
    with pytest.raises(ClientError) as exc:
        o.list_buckets()
    assert code(exc) == (403, "InvalidAccessKeyId")


def test_v3_credentials_api(server, token_and_url, ec2_keys) -> None:  # noqa: ANN001
    """Allas's allas_project_s3 reads GET /v3/credentials?type=ec2; POST/DELETE of type ec2 work too."""
    token, _ = token_and_url
    h = {"X-Auth-Token": token}
    creds = requests.get(f"{server.url}/v3/credentials?type=ec2", headers=h, timeout=10).json()["credentials"]
    mine = [c for c in creds if json.loads(c["blob"])["access"] == ec2_keys["access"]]
    assert mine and mine[0]["type"] == "ec2" and json.loads(mine[0]["blob"])["secret"] == ec2_keys["secret"]
    assert mine[0]["id"] == hashlib.sha256(ec2_keys["access"].encode()).hexdigest()
    body = {"credential": {"type": "ec2", "user_id": mine[0]["user_id"], "project_id": mine[0]["project_id"],
                           "blob": json.dumps({"access": "a" * 32, "secret": "b" * 32})}}
    r = requests.post(f"{server.url}/v3/credentials", json=body, headers=h, timeout=10)
    assert r.status_code == 201, r.text
    assert requests.post(f"{server.url}/v3/credentials", json=body, headers=h, timeout=10).status_code == 409
    cid = r.json()["credential"]["id"]
    c = client(server, "a" * 32, "b" * 32)
    c.list_buckets()
    assert requests.delete(f"{server.url}/v3/credentials/{cid}", headers=h, timeout=10).status_code == 204
    with pytest.raises(ClientError) as exc:
        c.list_buckets()
    assert code(exc) == (403, "InvalidAccessKeyId")
    assert requests.get(f"{server.url}/v3/credentials", timeout=10).status_code == 401
