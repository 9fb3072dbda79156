"""S3 header edge cases as AWS and RGW answer them: unknown ``Expect`` values ignored,
SigV2 dates (an empty or pre-epoch ``x-amz-date`` is AccessDenied, not a skew or a
signature mismatch), an empty ListObjectsV2 continuation token, and ``x-amz-tagging``
keys without a value."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from .conftest import LampiServer


def code(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    e = exc.value.response
    return e["ResponseMetadata"]["HTTPStatusCode"], e["Error"]["Code"]


def with_headers(client, operation: str, headers: dict[str, str]) -> None:  # noqa: ANN001
    """Add headers before botocore signs (so they are signed), as s3-tests do."""
    client.meta.events.register(f"before-call.s3.{operation}",
                                lambda **kw: kw["params"]["headers"].update(headers))


@pytest.fixture
def s3v2(server: LampiServer, ec2_keys: dict[str, str]):  # noqa: ANN201
    return boto3.client("s3", endpoint_url=server.url, aws_access_key_id=ec2_keys["access"],
                        aws_secret_access_key=ec2_keys["secret"], region_name="us-east-1",
                        config=Config(signature_version="s3"))


def test_unknown_expect_is_ignored_by_s3_not_by_swift(server, s3, swift_conn, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    with_headers(s3, "PutObject", {"Expect": "200"})
    s3.put_object(Bucket=unique, Key="empty")  # no body: the server sees the Expect as sent
    s3.put_object(Bucket=unique, Key="k", Body=b"bar")
    assert s3.get_object(Bucket=unique, Key="k")["Body"].read() == b"bar"
    assert s3.head_object(Bucket=unique, Key="empty")["ContentLength"] == 0
    # Swift keeps its 417 for an Expect it does not know
    url, token = swift_conn.get_auth()
    u = urlsplit(url)
    with socket.create_connection((u.hostname, u.port), timeout=30) as sock:
        sock.sendall(f"PUT {u.path}/{unique}/swift HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {token}\r\n"
                     "Content-Length: 3\r\nExpect: 200\r\nConnection: close\r\n\r\n".encode())
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 417"), reply[:200]


@pytest.mark.parametrize("value", ["", "Tue, 07 Jul 1950 21:53:04 GMT", "Bad Date"])
def test_sigv2_bad_amz_date_is_access_denied(s3v2, s3, unique, value: str) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    with_headers(s3v2, "PutObject", {"x-amz-date": value})
    with pytest.raises(ClientError) as e:
        s3v2.put_object(Bucket=unique, Key="k", Body=b"bar")
    assert code(e) == (403, "AccessDenied")
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=unique, Key="k")
    assert code(e)[0] == 404  # nothing was stored


def test_sigv2_old_amz_date_is_skewed(s3v2, s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    with_headers(s3v2, "PutObject", {"x-amz-date": "Tue, 07 Jul 2010 21:53:04 GMT"})
    with pytest.raises(ClientError) as e:
        s3v2.put_object(Bucket=unique, Key="k", Body=b"bar")
    assert code(e) == (403, "RequestTimeTooSkewed")


def test_sigv2_valid_amz_date_accepted(s3v2, unique) -> None:  # noqa: ANN001
    s3v2.create_bucket(Bucket=unique)
    s3v2.put_object(Bucket=unique, Key="k", Body=b"bar")
    assert s3v2.get_object(Bucket=unique, Key="k")["Body"].read() == b"bar"


def test_empty_continuation_token_lists_from_the_start(s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    for k in ("bar", "baz", "foo"):
        s3.put_object(Bucket=unique, Key=k, Body=b"")
    r = s3.list_objects_v2(Bucket=unique, ContinuationToken="")
    assert r["ContinuationToken"] == "" and r["IsTruncated"] is False
    assert [o["Key"] for o in r["Contents"]] == ["bar", "baz", "foo"]
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket=unique, ContinuationToken="!!not-a-token!!")
    assert code(e) == (400, "InvalidArgument")


def test_tagging_header_key_without_value(s3, swift_conn, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    with_headers(s3, "PutObject", {"x-amz-tagging": "foo=bar&bar"})
    s3.put_object(Bucket=unique, Key="k", Body=b"A" * 100)
    assert s3.get_object_tagging(Bucket=unique, Key="k")["TagSet"] == [
        {"Key": "bar", "Value": ""}, {"Key": "foo", "Value": "bar"}]
    assert swift_conn.get_object(unique, "k")[1] == b"A" * 100


@pytest.mark.parametrize("value", ["=v", "a=1&a=2", "aws:x=1", "k=%FF"])
def test_bad_tagging_header_is_invalid_tag(s3, unique, value: str) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    with_headers(s3, "PutObject", {"x-amz-tagging": value})
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=unique, Key="k", Body=b"x")
    assert code(e)[0] == 400


def _raw(url: str, head: str) -> bytes:
    u = urlsplit(url)
    with socket.create_connection((u.hostname, u.port), timeout=30) as sock:
        sock.sendall(head.encode() + b"\r\n")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


def test_raw_requests_the_header_tests_meant(server, s3, ec2_keys, unique) -> None:  # noqa: ANN001
    """What test_headers.py's before-signing edits meant to send, sent as raw requests."""
    import requests
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    s3.create_bucket(Bucket=unique)
    url = f"{server.url}/{unique}/k"
    for headers, want in (({}, (403, "AccessDenied")), ({"Authorization": ""}, (403, "AccessDenied")),
                          ({"Authorization": "AWS HAHAHA"}, (400, "InvalidArgument"))):
        r = requests.put(url, data=b"bar", headers=headers, timeout=30)
        assert (r.status_code, r.text.split("<Code>")[1].split("</Code>")[0]) == want, (headers, r.text)
    # a signed PUT that has neither Content-Length nor Transfer-Encoding
    req = AWSRequest(method="PUT", url=url, headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    S3SigV4Auth(Credentials(ec2_keys["access"], ec2_keys["secret"]), "s3", "us-east-1").add_auth(req)
    head = f"PUT /{unique}/k HTTP/1.1\r\nHost: {urlsplit(url).netloc}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in req.headers.items() if k.lower() != "content-length")
    reply = _raw(server.url, head + "Connection: close\r\n")
    assert reply.startswith(b"HTTP/1.1 411") and b"<Code>MissingContentLength</Code>" in reply, reply[:600]
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=unique, Key="k")
    assert code(e)[0] == 404


def test_bucket_tagging(s3, swift_conn, ec2_keys, server, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    with pytest.raises(ClientError) as e:
        s3.get_bucket_tagging(Bucket=unique)
    assert code(e) == (404, "NoSuchTagSet")
    s3.put_bucket_tagging(Bucket=unique, Tagging={"TagSet": [{"Key": "Hello", "Value": "World"},
                                                             {"Key": "dept", "Value": "bio"}]})
    assert s3.get_bucket_tagging(Bucket=unique)["TagSet"] == [
        {"Key": "Hello", "Value": "World"}, {"Key": "dept", "Value": "bio"}]
    assert not any("tagging" in k.lower() for k in swift_conn.head_container(unique))  # S3's own
    for bad in ([{"Key": "aws:x", "Value": "1"}], [{"Key": "k", "Value": "v"}] * 2,
                [{"Key": f"k{i}", "Value": "v"} for i in range(51)]):
        with pytest.raises(ClientError) as e:
            s3.put_bucket_tagging(Bucket=unique, Tagging={"TagSet": bad})
        assert code(e) == (400, "InvalidTag")
    assert len(s3.get_bucket_tagging(Bucket=unique)["TagSet"]) == 2  # refused writes changed nothing
    # only the bucket's owner: another project's user, even with write access, may not
    s3.put_bucket_acl(Bucket=unique, ACL="public-read-write")
    anon = boto3.client("s3", endpoint_url=server.url, region_name="us-east-1",
                        config=Config(signature_version=__import__("botocore").UNSIGNED))
    with pytest.raises(ClientError) as e:
        anon.get_bucket_tagging(Bucket=unique)
    assert code(e)[0] == 403
    assert s3.delete_bucket_tagging(Bucket=unique)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as e:
        s3.get_bucket_tagging(Bucket=unique)
    assert code(e) == (404, "NoSuchTagSet")


def test_more_than_ten_object_tags_is_invalid_tag(s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    s3.put_object(Bucket=unique, Key="k", Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.put_object_tagging(Bucket=unique, Key="k", Tagging={"TagSet": [
            {"Key": f"k{i}", "Value": "v"} for i in range(11)]})
    assert code(e) == (400, "InvalidTag")


def test_if_modified_since_a_later_date_is_not_modified(s3, unique) -> None:  # noqa: ANN001
    import datetime

    s3.create_bucket(Bucket=unique)
    etag = s3.put_object(Bucket=unique, Key="k", Body=b"bar")["ETag"]
    lm = s3.head_object(Bucket=unique, Key="k")["LastModified"]
    later = lm + datetime.timedelta(seconds=30)  # in the future: RGW still compares
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=unique, Key="k", IfModifiedSince=later)
    assert code(e)[0] == 304 and e.value.response["ResponseMetadata"]["HTTPHeaders"]["etag"] == etag
    earlier = lm - datetime.timedelta(seconds=30)
    assert s3.get_object(Bucket=unique, Key="k", IfModifiedSince=earlier)["Body"].read() == b"bar"


@pytest.mark.parametrize(("sent", "kept"), [("gzip", "gzip"), ("deflate, gzip", "deflate, gzip"),
                                             ("gzip, aws-chunked", "gzip"), ("aws-chunked, gzip", "gzip"),
                                             ("aws-chunked", None)])
def test_content_encoding_without_aws_chunked(s3, unique, sent: str, kept: str | None) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    s3.put_object(Bucket=unique, Key="k", ContentEncoding=sent)
    assert s3.head_object(Bucket=unique, Key="k").get("ContentEncoding") == kept


def test_list_buckets_paginated(server, unique) -> None:  # noqa: ANN001
    """MaxBuckets and ContinuationToken, in a project of its own so the count is known."""
    server.cli("project", "create", unique)
    server.cli("user", "create", unique, "--password", "pw-" + unique, "--project", unique)
    import json

    k = json.loads(server.cli("credential", "create", unique, unique, "--json").stdout)
    s3 = boto3.client("s3", endpoint_url=server.url, aws_access_key_id=k["access"],
                      aws_secret_access_key=k["secret"], region_name="us-east-1")
    assert s3.list_buckets(MaxBuckets=1)["Buckets"] == []
    for suffix in ("a", "b", "c"):
        s3.create_bucket(Bucket=f"{unique}-{suffix}")
    r = s3.list_buckets(MaxBuckets=2)
    assert [b["Name"] for b in r["Buckets"]] == [f"{unique}-a", f"{unique}-b"]
    r = s3.list_buckets(MaxBuckets=2, ContinuationToken=r["ContinuationToken"])
    assert [b["Name"] for b in r["Buckets"]] == [f"{unique}-c"] and "ContinuationToken" not in r
    assert [b["Name"] for b in s3.list_buckets(Prefix=f"{unique}-b")["Buckets"]] == [f"{unique}-b"]
    assert len(s3.list_buckets()["Buckets"]) == 3
    import requests
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    for query in ("max-buckets=0", "max-buckets=10001", "max-buckets=x", "continuation-token=%21%21"):
        req = AWSRequest(method="GET", url=f"{server.url}/?{query}")
        S3SigV4Auth(Credentials(k["access"], k["secret"]), "s3", "us-east-1").add_auth(req)
        r = requests.get(req.url, headers=dict(req.headers.items()), timeout=30)
        assert r.status_code == 400 and "<Code>InvalidArgument</Code>" in r.text, (query, r.text)


def test_expected_bucket_owner(server, s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    s3.put_bucket_acl(Bucket=unique, ACL="public-read-write")
    owner_id = s3.get_bucket_acl(Bucket=unique)["Owner"]["ID"]
    s3.put_object(Bucket=unique, Key="k", Body=b"x", ExpectedBucketOwner=owner_id)
    assert s3.list_objects(Bucket=unique, ExpectedBucketOwner=owner_id)["Contents"][0]["Key"] == "k"
    anon = boto3.client("s3", endpoint_url=server.url, region_name="us-east-1",
                        config=Config(signature_version=__import__("botocore").UNSIGNED))
    for call in (lambda o: anon.list_objects(Bucket=unique, ExpectedBucketOwner=o),
                 lambda o: anon.put_object(Bucket=unique, Key="k2", Body=b"y", ExpectedBucketOwner=o),
                 lambda o: s3.get_object(Bucket=unique, Key="k", ExpectedBucketOwner=o)):
        with pytest.raises(ClientError) as e:
            call(owner_id + "foo")
        assert code(e) == (403, "AccessDenied")
    assert [o["Key"] for o in s3.list_objects(Bucket=unique)["Contents"]] == ["k"]


def test_info_advertises_s3api(server, swift_conn) -> None:  # noqa: ANN001
    """Swift's /info names the S3 API and its limits, as Swift's s3api middleware does
    (``swift capabilities``; Swift's s3api functional tests skip without it)."""
    caps = swift_conn.get_capabilities()
    assert caps["s3api"] == {"max_bucket_listing": 1000, "max_parts_listing": 1000, "max_upload_part_num": 10000,
                             "max_multi_delete_objects": 1000, "allow_multipart_uploads": True,
                             "min_segment_size": 5 * 1024 * 1024, "s3_acl": True}
    assert "slo" in caps and "swift" in caps
