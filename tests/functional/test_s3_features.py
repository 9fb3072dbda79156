"""S3 second slice: object tagging, stored checksums, versioning answers of unversioned buckets, virtual-hosted
style, the S3-only port, trusted proxies, routing of bucket names that look like other
APIs, 100-continue after the signature check, and XML 500s."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import boto3
import pytest
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from .conftest import LampiServer, free_port

DOMAIN = "s3.test"


def code(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    e = exc.value.response
    return e["ResponseMetadata"]["HTTPStatusCode"], e["Error"]["Code"]


def signed_request(method: str, url: str, keys: dict[str, str], host: str | None = None, body: bytes = b"",
                   headers: dict[str, str] | None = None, extra: dict[str, str] | None = None) -> requests.Response:
    """Sign with botocore's SigV4 for ``host`` (default: the URL's), send to ``url``;
    ``extra`` headers are added after signing (unsigned, e.g. X-Forwarded-Host)."""
    h = dict(headers or {})
    if host:
        h["Host"] = host
    req = AWSRequest(method=method, url=url, data=body, headers=h)
    S3SigV4Auth(Credentials(keys["access"], keys["secret"]), "s3", "us-east-1").add_auth(req)
    out = dict(req.headers.items())
    out.update(extra or {})
    return requests.request(method, url, data=body, headers=out, timeout=10)


def xml_code(r: requests.Response) -> str:
    return r.text.split("<Code>", 1)[1].split("</Code>", 1)[0] if "<Code>" in r.text else ""


# -- tagging ----------------------------------------------------------------------------


def test_object_tagging(s3, unique, swift_conn) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    s3.put_object(Bucket=unique, Key="k", Body=b"data", Tagging="project=alpha&owner=me%20too&empty=")
    g = s3.get_object(Bucket=unique, Key="k")
    assert g["TagCount"] == 3
    assert s3.head_object(Bucket=unique, Key="k")["ResponseMetadata"]["HTTPHeaders"]["x-amz-tagging-count"] == "3"
    tags = s3.get_object_tagging(Bucket=unique, Key="k")["TagSet"]
    assert tags == [{"Key": "empty", "Value": ""}, {"Key": "owner", "Value": "me too"},
                    {"Key": "project", "Value": "alpha"}]  # by key, as RGW lists them
    lm = s3.head_object(Bucket=unique, Key="k")["LastModified"]
    time.sleep(1.1)
    s3.put_object_tagging(Bucket=unique, Key="k", Tagging={"TagSet": [{"Key": "x", "Value": "1"}]})
    assert s3.get_object_tagging(Bucket=unique, Key="k")["TagSet"] == [{"Key": "x", "Value": "1"}]
    h = s3.head_object(Bucket=unique, Key="k")
    assert h["LastModified"] == lm  # tags are not a new version of the object
    # Swift sees the object as before, without S3's internal sysmeta; a Swift POST keeps the tags
    sh = swift_conn.head_object(unique, "k")
    assert not any(k.startswith("s3-") for k in sh)
    swift_conn.post_object(unique, "k", headers={"X-Object-Meta-Color": "red"})
    assert s3.get_object_tagging(Bucket=unique, Key="k")["TagSet"] == [{"Key": "x", "Value": "1"}]
    # copy: tags copied by default, replaced with TaggingDirective=REPLACE
    s3.copy_object(Bucket=unique, Key="c1", CopySource={"Bucket": unique, "Key": "k"})
    assert s3.get_object_tagging(Bucket=unique, Key="c1")["TagSet"] == [{"Key": "x", "Value": "1"}]
    s3.copy_object(Bucket=unique, Key="c2", CopySource={"Bucket": unique, "Key": "k"},
                   TaggingDirective="REPLACE", Tagging="y=2")
    assert s3.get_object_tagging(Bucket=unique, Key="c2")["TagSet"] == [{"Key": "y", "Value": "2"}]
    s3.copy_object(Bucket=unique, Key="c3", CopySource={"Bucket": unique, "Key": "k"},
                   MetadataDirective="REPLACE", Metadata={"a": "b"})
    assert s3.get_object_tagging(Bucket=unique, Key="c3")["TagSet"] == [{"Key": "x", "Value": "1"}]
    s3.delete_object_tagging(Bucket=unique, Key="k")
    assert s3.get_object_tagging(Bucket=unique, Key="k")["TagSet"] == []
    assert "TagCount" not in s3.get_object(Bucket=unique, Key="k")
    assert s3.get_object(Bucket=unique, Key="k")["Body"].read() == b"data"
    # a new PUT without tags drops them
    s3.put_object(Bucket=unique, Key="c2", Body=b"new")
    assert s3.get_object_tagging(Bucket=unique, Key="c2")["TagSet"] == []


def test_object_tagging_bad_input(s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    s3.put_object(Bucket=unique, Key="k", Body=b"keep", Tagging="a=1")

    def tagset(*pairs: tuple[str, str]) -> dict:
        return {"TagSet": [{"Key": k, "Value": v} for k, v in pairs]}

    bad = [
        (tagset(*[(f"k{i}", "v") for i in range(11)]), "InvalidTag"),  # as RGW
        (tagset(("k" * 129, "v")), "InvalidTag"),
        (tagset(("k", "v" * 257)), "InvalidTag"),
        (tagset(("dup", "1"), ("dup", "2")), "InvalidTag"),
        (tagset(("aws:reserved", "1")), "InvalidTag"),
        (tagset(("bad<char>", "1")), "InvalidTag"),
    ]
    for tagging, want in bad:
        with pytest.raises(ClientError) as exc:
            s3.put_object_tagging(Bucket=unique, Key="k", Tagging=tagging)
        assert code(exc) == (400, want), tagging
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=unique, Key="k", Body=b"replaced", Tagging="&".join(f"k{i}=v" for i in range(11)))
    assert code(exc) == (400, "InvalidTag")  # as RGW (Allas)
    for header in ("a=1&a=2", "=1", "a=%ZZ%", "a=%FF"):  # ("novalue" is the tag novalue="", as RGW reads it)
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=unique, Key="k", Body=b"replaced", Tagging=header)
        assert code(exc) == (400, "InvalidTag"), header
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=unique, Key="k2", CopySource={"Bucket": unique, "Key": "k"},
                       TaggingDirective="REPLACE", Tagging="k" * 200 + "=v")
    assert code(exc) == (400, "InvalidTag")
    with pytest.raises(ClientError) as exc:
        s3.get_object_tagging(Bucket=unique, Key="missing")
    assert code(exc) == (404, "NoSuchKey")
    with pytest.raises(ClientError) as exc:
        s3.put_object_tagging(Bucket=unique, Key="missing", Tagging=tagset(("a", "b")))
    assert code(exc) == (404, "NoSuchKey")
    # nothing changed
    assert s3.get_object(Bucket=unique, Key="k")["Body"].read() == b"keep"
    assert s3.get_object_tagging(Bucket=unique, Key="k")["TagSet"] == [{"Key": "a", "Value": "1"}]
    with pytest.raises(ClientError):
        s3.head_object(Bucket=unique, Key="k2")


def test_object_tagging_malformed_xml(server, ec2_keys, s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    s3.put_object(Bucket=unique, Key="k", Body=b"x", Tagging="a=1")
    url = f"{server.url}/{unique}/k?tagging"
    for body in (b"<Tagging><TagSet><Tag><Key>a</Key></Tag></TagSet></Tagging>",  # no Value
                 b"<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag>",  # not well-formed
                 b"<Other/>",
                 b'<?xml version="1.0"?><!DOCTYPE t [<!ENTITY e "x">]><Tagging><TagSet><Tag><Key>&e;</Key>'
                 b"<Value>v</Value></Tag></TagSet></Tagging>",
                 b"<Tagging><TagSet>" + b"<Tag><Key>a</Key><Value>b</Value></Tag>" * 3000 + b"</TagSet></Tagging>"):
        r = signed_request("PUT", url, ec2_keys, body=body)
        assert r.status_code == 400, r.text
        assert xml_code(r) in ("MalformedXML", "MaxMessageLengthExceeded"), r.text
    assert s3.get_object_tagging(Bucket=unique, Key="k")["TagSet"] == [{"Key": "a", "Value": "1"}]


# -- checksums and versioning answers ---------------------------------------------------


def test_checksum_stored_and_returned(s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    put = s3.put_object(Bucket=unique, Key="c", Body=b"hello", ChecksumAlgorithm="SHA256")
    assert put["ChecksumSHA256"] == "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="
    h = s3.head_object(Bucket=unique, Key="c", ChecksumMode="ENABLED")
    assert h["ChecksumSHA256"] == put["ChecksumSHA256"]
    g = s3.get_object(Bucket=unique, Key="c", ChecksumMode="ENABLED")
    assert g["ChecksumSHA256"] == put["ChecksumSHA256"] and g["Body"].read() == b"hello"
    assert "ChecksumSHA256" not in s3.head_object(Bucket=unique, Key="c")  # only when asked
    # boto3's default CRC32 (a trailer of an aws-chunked body or a header) is kept too
    s3.put_object(Bucket=unique, Key="d", Body=b"hello")
    assert s3.head_object(Bucket=unique, Key="d", ChecksumMode="ENABLED")["ChecksumCRC32"] == "NhCmhg=="
    # a copy keeps the checksum (same bytes)
    s3.copy_object(Bucket=unique, Key="e", CopySource={"Bucket": unique, "Key": "c"},
                   MetadataDirective="REPLACE", ContentType="text/plain")
    assert s3.head_object(Bucket=unique, Key="e", ChecksumMode="ENABLED")["ChecksumSHA256"] == put["ChecksumSHA256"]
    # a wrong checksum is refused and keeps the previous object and its checksum
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=unique, Key="c", Body=b"other", ChecksumSHA256="LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=")
    assert code(exc) == (400, "BadDigest")
    g = s3.get_object(Bucket=unique, Key="c", ChecksumMode="ENABLED")
    assert g["Body"].read() == b"hello" and g["ChecksumSHA256"] == put["ChecksumSHA256"]


def test_versioning_answers(s3, unique, server, ec2_keys) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    v = s3.get_bucket_versioning(Bucket=unique)
    assert "Status" not in v
    for k in ("a", "b/1", "b/2", "c"):
        s3.put_object(Bucket=unique, Key=k, Body=k.encode())
    r = s3.list_object_versions(Bucket=unique, Delimiter="/")
    assert [(x["Key"], x["VersionId"], x["IsLatest"], x["Size"]) for x in r["Versions"]] == \
        [("a", "null", True, 1), ("c", "null", True, 1)]
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["b/"]
    r = s3.list_object_versions(Bucket=unique, MaxKeys=2)
    assert r["IsTruncated"] and r["NextKeyMarker"] == "b/1" and r["NextVersionIdMarker"] == "null"
    r = s3.list_object_versions(Bucket=unique, KeyMarker=r["NextKeyMarker"], VersionIdMarker="null")
    assert [x["Key"] for x in r["Versions"]] == ["b/2", "c"] and not r["IsTruncated"]
    with pytest.raises(ClientError) as exc:
        s3.list_object_versions(Bucket=unique, KeyMarker="a", VersionIdMarker="v123")
    assert code(exc) == (400, "InvalidArgument")
    with pytest.raises(ClientError) as exc:
        s3.list_object_versions(Bucket=unique + "-none")
    assert code(exc) == (404, "NoSuchBucket")
    # versioning itself: tests/functional/test_s3_versioning.py
    s3.put_bucket_versioning(Bucket=unique, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=unique)["Status"] == "Enabled"
    r = s3.list_object_versions(Bucket=unique, Prefix="a")  # objects from before: their null version
    assert [(x["Key"], x["VersionId"], x["IsLatest"]) for x in r["Versions"]] == [("a", "null", True)]


# -- routing on the shared listener, 100-continue, 500s ---------------------------------


def test_expect_100_continue_after_signature(server, ec2_keys, s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    body = b"payload-bytes"

    def raw_put(keys: dict[str, str]) -> bytes:
        url = f"{server.url}/{unique}/obj"
        req = AWSRequest(method="PUT", url=url, data=body,
                         headers={"Expect": "100-continue", "Content-Length": str(len(body))})
        S3SigV4Auth(Credentials(keys["access"], keys["secret"]), "s3", "us-east-1").add_auth(req)
        lines = [f"PUT /{unique}/obj HTTP/1.1", f"Host: 127.0.0.1:{server.port}"]
        lines += [f"{k}: {v}" for k, v in req.headers.items() if k.lower() != "host"]
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            first = s.recv(65536)  # before sending any body
            if first.startswith(b"HTTP/1.1 100"):
                s.sendall(body)
                time.sleep(0.2)
                first += s.recv(65536)
            return first

    bad = raw_put({"access": ec2_keys["access"], "secret": "0" * 32})
    assert bad.startswith(b"HTTP/1.1 403") and b"<Code>SignatureDoesNotMatch</Code>" in bad
    with pytest.raises(ClientError):
        s3.head_object(Bucket=unique, Key="obj")
    good = raw_put(ec2_keys)
    assert good.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200"), good[:200]
    assert s3.get_object(Bucket=unique, Key="obj")["Body"].read() == body


def test_internal_error_is_s3_xml(server, ec2_keys, s3, unique) -> None:  # noqa: ANN001
    """An unexpected failure (here: a blob that turned into a directory on disk) gives
    S3's XML InternalError with its RequestId, not a plain-text 500."""
    s3.create_bucket(Bucket=unique)
    blobs = server.data_dir / "blobs"
    before = {p for p in blobs.rglob("*") if p.is_file()}
    s3.put_object(Bucket=unique, Key="src", Body=b"source bytes" * 6000)  # past inline_max: a blob file
    new = [p for p in blobs.rglob("*") if p.is_file() and p not in before]
    assert len(new) == 1
    blob = new[0]
    saved = blob.read_bytes()
    blob.unlink()
    blob.mkdir()
    try:
        c = boto3.client("s3", endpoint_url=server.url, aws_access_key_id=ec2_keys["access"],
                         aws_secret_access_key=ec2_keys["secret"], region_name="us-east-1",
                         config=Config(retries={"max_attempts": 1}))
        with pytest.raises(ClientError) as exc:
            c.copy_object(Bucket=unique, Key="dst", CopySource={"Bucket": unique, "Key": "src"})
        assert code(exc) == (500, "InternalError")
        e = exc.value.response
        assert e["Error"]["Message"] and e["ResponseMetadata"]["RequestId"]
        assert e["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "application/xml"
    finally:
        blob.rmdir()
        blob.write_bytes(saved)
    assert s3.get_object(Bucket=unique, Key="src")["Body"].read() == b"source bytes" * 6000
    with pytest.raises(ClientError):
        s3.head_object(Bucket=unique, Key="dst")


def test_create_own_bucket_again(server, s3, unique) -> None:  # noqa: ANN001
    """As Allas (Ceph RGW 16) answers: the owner's re-create asking for the bucket's
    current ACL is 200 and changes nothing (objects and ACL stay); one asking for another
    ACL is 409 BucketAlreadyExists, as is anyone else's (docs/s3-api.md)."""
    s3.create_bucket(Bucket=unique)
    s3.put_object(Bucket=unique, Key="keep", Body=b"k")
    assert s3.create_bucket(Bucket=unique)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.create_bucket(Bucket=unique, ACL="private")["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=unique)["Contents"]] == ["keep"]
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=unique, ACL="public-read")
    assert code(exc) == (409, "BucketAlreadyExists")
    assert len(s3.get_bucket_acl(Bucket=unique)["Grants"]) == 1  # unchanged
    s3.put_bucket_acl(Bucket=unique, ACL="public-read")
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=unique)  # the bucket is public-read now: "private" differs
    assert code(exc) == (409, "BucketAlreadyExists")
    assert s3.create_bucket(Bucket=unique, ACL="public-read")["ResponseMetadata"]["HTTPStatusCode"] == 200
    from tests.functional.test_s3_acl import new_project_keys

    other_s3 = new_project_keys(server)[2]
    with pytest.raises(ClientError) as exc:
        other_s3.create_bucket(Bucket=unique)
    assert code(exc) == (409, "BucketAlreadyExists")


# -- a server with a virtual-host domain, an S3-only port and a trusted proxy -----------


@pytest.fixture(scope="module")
def vserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LampiServer]:
    base = tmp_path_factory.mktemp("lampi-vhost")
    srv = LampiServer(data_dir=base / "data", port=free_port())
    srv.s3_port = free_port()  # type: ignore[attr-defined]
    srv.extra_args = ["--s3-domain", DOMAIN, "--s3-port", str(srv.s3_port),  # type: ignore[attr-defined]
                      "--trusted-proxies", "127.0.0.0/8", "--public-url", "https://objects.example.org"]
    srv.start()
    made = json.loads(srv.cli("credential", "create", "admin", "admin", "--json").stdout)
    srv.keys = {"access": made["access"], "secret": made["secret"]}  # type: ignore[attr-defined]
    yield srv
    srv.stop()


def _loopback(port: int):  # noqa: ANN202
    def to_loopback(request, **kwargs) -> None:  # noqa: ANN001, ANN003
        parts = urlsplit(request.url)
        request.headers["Host"] = parts.netloc
        request.url = urlunsplit(parts._replace(netloc=f"127.0.0.1:{port}"))
    return to_loopback


def vhost_client(srv: LampiServer, port: int):  # noqa: ANN201
    """boto3 in virtual-hosted style for http://<bucket>.s3.test:<port>; the connection
    goes to 127.0.0.1 with the virtual Host header (s3.test does not resolve)."""
    c = boto3.client("s3", endpoint_url=f"http://{DOMAIN}:{port}", aws_access_key_id=srv.keys["access"],  # type: ignore[attr-defined]
                     aws_secret_access_key=srv.keys["secret"], region_name="us-east-1",  # type: ignore[attr-defined]
                     config=Config(s3={"addressing_style": "virtual"}, retries={"max_attempts": 1}))
    c.meta.events.register_first("before-send.s3", _loopback(port))
    seen: list[str] = []
    c.meta.events.register("before-send.s3", lambda request, **kw: seen.append(request.headers["Host"]))
    c.hosts_seen = seen  # type: ignore[attr-defined]
    return c


def test_virtual_hosted_style(vserver, unique) -> None:  # noqa: ANN001
    c = vhost_client(vserver, vserver.port)
    c.create_bucket(Bucket=unique)
    c.put_object(Bucket=unique, Key="v1/AUTH_x/obj", Body=b"vhost", Tagging="t=1")  # path looks like Swift
    assert c.get_object(Bucket=unique, Key="v1/AUTH_x/obj")["Body"].read() == b"vhost"
    assert [o["Key"] for o in c.list_objects_v2(Bucket=unique)["Contents"]] == ["v1/AUTH_x/obj"]
    assert c.get_object_tagging(Bucket=unique, Key="v1/AUTH_x/obj")["TagSet"] == [{"Key": "t", "Value": "1"}]
    assert unique in [b["Name"] for b in c.list_buckets()["Buckets"]]
    assert f"{unique}.{DOMAIN}:{vserver.port}" in c.hosts_seen  # really virtual-hosted
    # the same bucket path style
    p = boto3.client("s3", endpoint_url=vserver.url, aws_access_key_id=vserver.keys["access"],
                     aws_secret_access_key=vserver.keys["secret"], region_name="us-east-1")
    assert p.get_object(Bucket=unique, Key="v1/AUTH_x/obj")["Body"].read() == b"vhost"
    # SigV2 (as s3cmd with signature_v2) signs "/<bucket>/<key>" for a virtual host too
    v2 = boto3.client("s3", endpoint_url=f"http://{DOMAIN}:{vserver.port}", aws_access_key_id=vserver.keys["access"],
                      aws_secret_access_key=vserver.keys["secret"], region_name="us-east-1",
                      config=Config(s3={"addressing_style": "virtual"}, signature_version="s3"))
    v2.meta.events.register_first("before-send.s3", _loopback(vserver.port))
    assert v2.get_object(Bucket=unique, Key="v1/AUTH_x/obj")["Body"].read() == b"vhost"
    assert v2.list_objects(Bucket=unique)["Contents"][0]["Key"] == "v1/AUTH_x/obj"
    c.delete_object(Bucket=unique, Key="v1/AUTH_x/obj")
    c.delete_bucket(Bucket=unique)


def test_virtual_host_bad_input(vserver, unique) -> None:  # noqa: ANN001
    url = f"http://127.0.0.1:{vserver.port}/key"
    for host, status, want in ((f"bad_name.{DOMAIN}", 400, "InvalidBucketName"),
                               (f"-dash.{DOMAIN}", 400, "InvalidBucketName"),
                               (f"{unique}.{DOMAIN}", 404, "NoSuchBucket")):
        r = signed_request("GET", url, vserver.keys, host=f"{host}:{vserver.port}")
        assert r.status_code == status and xml_code(r) == want, (host, r.text)
        assert r.headers["x-amz-request-id"]
    # anonymous on a virtual host: S3's AccessDenied, not Keystone or Swift
    r = requests.get(url, headers={"Host": f"{unique}.{DOMAIN}"}, timeout=10)
    assert r.status_code in (403, 404) and "<Error>" in r.text


def test_s3_port_and_reserved_looking_names(vserver) -> None:  # noqa: ANN001
    """Buckets named like other APIs' paths are reachable with S3 credentials on the main
    port and on the S3-only port; without them those paths keep their own meaning."""
    main = boto3.client("s3", endpoint_url=vserver.url, aws_access_key_id=vserver.keys["access"],
                        aws_secret_access_key=vserver.keys["secret"], region_name="us-east-1")
    s3port = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{vserver.s3_port}",
                          aws_access_key_id=vserver.keys["access"], aws_secret_access_key=vserver.keys["secret"],
                          region_name="us-east-1")
    import swiftclient

    rc = vserver.openrc()  # its URLs name the public URL (no such host): connect to the port itself
    sw = swiftclient.Connection(authurl=vserver.auth_url, user=rc["OS_USERNAME"], key=rc["OS_PASSWORD"],
                                os_options={"project_name": rc["OS_PROJECT_NAME"], "user_domain_name": "Default",
                                            "project_domain_name": "Default"}, auth_version="3", retries=0)
    sw.url = vserver.url + urlsplit(sw.get_auth()[0]).path
    names = ["v1", "v3", "info", "auth", "healthcheck", "swift"]
    for n in names:
        if len(n) < 3:
            sw.put_container(n)  # too short for an S3 name, but an existing Swift container is reachable
        else:
            main.create_bucket(Bucket=n)
        main.put_object(Bucket=n, Key="auth/tokens", Body=n.encode())
        assert s3port.get_object(Bucket=n, Key="auth/tokens")["Body"].read() == n.encode()
    assert set(names) <= {b["Name"] for b in s3port.list_buckets()["Buckets"]}
    # anonymous requests on the main port: Keystone, Swift info, health as before
    assert requests.get(vserver.url + "/healthcheck", timeout=10).text == "OK"
    assert "swift" in requests.get(vserver.url + "/info", timeout=10).json()
    assert requests.get(vserver.url + "/v3", timeout=10).json()["version"]["id"].startswith("v3")
    # on the S3-only port every path is S3
    r = requests.get(f"http://127.0.0.1:{vserver.s3_port}/v3", timeout=10)
    assert r.status_code == 403 and xml_code(r) == "AccessDenied"
    r = requests.get(f"http://127.0.0.1:{vserver.s3_port}/", timeout=10)
    assert r.status_code == 403 and xml_code(r) == "AccessDenied"
    for n in names:
        main.delete_object(Bucket=n, Key="auth/tokens")
        s3port.delete_bucket(Bucket=n)


def test_trusted_proxy_and_public_url(vserver, server, ec2_keys, s3, unique) -> None:  # noqa: ANN001
    """Behind a proxy that rewrites Host: X-Forwarded-Host (from a trusted proxy) or the
    public URL's host is what the client signed."""
    c = boto3.client("s3", endpoint_url=vserver.url, aws_access_key_id=vserver.keys["access"],
                     aws_secret_access_key=vserver.keys["secret"], region_name="us-east-1")
    c.create_bucket(Bucket=unique)
    url = f"{vserver.url}/{unique}"
    backend = f"127.0.0.1:{vserver.port}"
    # signed for the proxy's name; the proxy passes it in X-Forwarded-Host
    r = signed_request("GET", url, vserver.keys, host="proxy.example.net",
                       extra={"Host": backend, "X-Forwarded-Host": "proxy.example.net"})
    assert r.status_code == 200, r.text
    # virtual host through the proxy
    r = signed_request("GET", f"{vserver.url}/", vserver.keys, host=f"{unique}.{DOMAIN}",
                       extra={"Host": backend, "X-Forwarded-Host": f"{unique}.{DOMAIN}"})
    assert r.status_code == 200 and "<ListBucketResult" in r.text, r.text
    # signed for the public URL's host, Host rewritten, no X-Forwarded-Host
    r = signed_request("GET", url, vserver.keys, host="objects.example.org", extra={"Host": backend})
    assert r.status_code == 200, r.text
    # a host nobody configured: refused, and the error shows what was checked
    r = signed_request("GET", url, vserver.keys, host="elsewhere.example.com", extra={"Host": backend})
    assert r.status_code == 403 and xml_code(r) == "SignatureDoesNotMatch"
    assert f"host:{backend}" in r.text
    # the shared server trusts no proxy: X-Forwarded-Host is ignored there
    s3.create_bucket(Bucket=unique)
    r = signed_request("GET", f"{server.url}/{unique}", ec2_keys, host="proxy.example.net",
                       extra={"Host": f"127.0.0.1:{server.port}", "X-Forwarded-Host": "proxy.example.net"})
    assert r.status_code == 403 and xml_code(r) == "SignatureDoesNotMatch"
    c.delete_bucket(Bucket=unique)
