"""Issue 3 audit: the items of the S3 issue no other test file covered — public links
answered as S3, Swift DLOs through S3 (listing size, copies), a Swift COPY not carrying
an S3 object ACL, LocationConstraint, copy-source conditionals, encoding-type and
fetch-owner, a deleted key on every worker, a reader-role key, replayed signatures,
and 501 NotImplemented naming the operation."""

from __future__ import annotations

import datetime
import hashlib
import json
import subprocess
import time
import uuid
from unittest import mock
from urllib.parse import unquote

import pytest
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.functional.test_s3_acl import admin_project_id
from tests.functional.test_s3_api import client, code
from tests.functional.test_s3_features import DOMAIN, signed_request, vserver, xml_code  # noqa: F401

EMPTY_MD5 = hashlib.md5(b"").hexdigest()


def _s3_headers_only(r: requests.Response) -> None:
    """An S3 answer: request ids, no Swift object headers."""
    assert r.headers["x-amz-request-id"] and r.headers["x-amz-id-2"], r.headers
    assert not any(k.lower().startswith(("x-object-meta-", "x-timestamp", "x-static-large")) for k in r.headers), \
        r.headers


# -- public links answered as S3 -------------------------------------------------------


def test_public_link_answers_as_s3(server, s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique, ACL="public-read")
    body = b"public data\n"
    etag = hashlib.md5(body).hexdigest()
    s3.put_object(Bucket=unique, Key="dir/a b.txt", Body=body, ContentType="text/plain",
                  Metadata={"color": "blue"}, ContentDisposition="inline", ACL="public-read")
    url = f"{server.url}/{unique}/dir/a%20b.txt"
    for r in (requests.get(url, timeout=10), requests.head(url, timeout=10)):
        assert r.status_code == 200
        assert r.headers["x-amz-meta-color"] == "blue" and r.headers["ETag"] == f'"{etag}"'
        assert r.headers["Content-Type"] == "text/plain" and r.headers["Content-Disposition"] == "inline"
        assert r.headers["Content-Length"] == str(len(body))
        _s3_headers_only(r)
    assert requests.get(url, timeout=10).content == body
    # curl, as Allas's public links are used
    assert subprocess.run(["curl", "-sf", url], capture_output=True, check=True, timeout=30).stdout == body
    # ranges and conditionals, S3 style
    r = requests.get(url, headers={"Range": "bytes=0-5"}, timeout=10)
    assert r.status_code == 206 and r.content == body[:6] and r.headers["Content-Range"] == f"bytes 0-5/{len(body)}"
    r = requests.get(url, headers={"If-None-Match": f'"{etag}"'}, timeout=10)
    assert r.status_code == 304 and r.headers["x-amz-id-2"]
    # a missing key of a public bucket: S3's NoSuchKey; response-* overrides need a signature
    r = requests.get(f"{server.url}/{unique}/nope", timeout=10)
    assert r.status_code == 404 and xml_code(r) == "NoSuchKey" and r.headers["x-amz-id-2"]
    r = requests.get(url + "?response-content-type=text/html", timeout=10)
    assert r.status_code == 400 and xml_code(r) == "InvalidRequest" and "anonymous" in r.text
    signed = s3.get_object(Bucket=unique, Key="dir/a b.txt", ResponseContentType="text/html")
    assert signed["ContentType"] == "text/html"


def test_public_object_acl_link_and_private(server, s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    s3.put_object(Bucket=unique, Key="pub", Body=b"p", ACL="public-read", Metadata={"k": "v"})
    s3.put_object(Bucket=unique, Key="priv", Body=b"q")
    r = requests.get(f"{server.url}/{unique}/pub", timeout=10)
    assert r.status_code == 200 and r.content == b"p" and r.headers["x-amz-meta-k"] == "v"
    _s3_headers_only(r)
    for key in ("priv", "missing"):  # a private bucket: no difference between private and missing
        r = requests.get(f"{server.url}/{unique}/{key}", timeout=10)
        assert r.status_code == 403 and xml_code(r) == "AccessDenied", key
        assert requests.head(f"{server.url}/{unique}/{key}", timeout=10).status_code == 403


def test_public_link_virtual_hosted(vserver, unique) -> None:  # noqa: ANN001, F811
    c = client(vserver, vserver.keys["access"], vserver.keys["secret"])
    c.create_bucket(Bucket=unique, ACL="public-read")
    c.put_object(Bucket=unique, Key="x.txt", Body=b"vhost", Metadata={"color": "red"}, ACL="public-read")
    r = requests.get(f"{vserver.url}/x.txt", headers={"Host": f"{unique}.{DOMAIN}"}, timeout=10)
    assert r.status_code == 200 and r.content == b"vhost" and r.headers["x-amz-meta-color"] == "red"
    assert r.headers["ETag"] == f'"{hashlib.md5(b"vhost").hexdigest()}"'
    _s3_headers_only(r)


def _swift_dlo(s3, swift_conn, bucket: str, segs: str, name: str, parts: list[bytes]) -> bytes:  # noqa: ANN001
    """Segments ``<name>/000``... in container ``segs``, bucket ``bucket`` made with S3 and
    the DLO ``<name>`` in it made with Swift; returns the large object's bytes."""
    swift_conn.put_container(segs)
    for i, p in enumerate(parts):
        swift_conn.put_object(segs, f"{name}/{i:03d}", p)
    s3.create_bucket(Bucket=bucket)
    swift_conn.put_object(bucket, name, b"", headers={"X-Object-Manifest": f"{segs}/{name}/"})
    return b"".join(parts)


def test_public_large_objects_over_private_segments(server, s3, swift_conn, unique) -> None:  # noqa: ANN001
    """At the public link (now S3), segments are read with the caller's authority, as in
    Swift: a public SLO/DLO over a private segment container leaks nothing."""
    segs = unique + "-segs"
    data = _swift_dlo(s3, swift_conn, unique, segs, "dlo", [b"a" * 1000, b"b" * 1000, b"c" * 7])
    manifest = [{"path": f"/{segs}/dlo/{i:03d}"} for i in range(3)]
    swift_conn.put_object(unique, "slo", json.dumps(manifest), query_string="multipart-manifest=put")
    swift_conn.post_container(unique, {"X-Container-Read": ".r:*,.rlistings"})
    for name in ("slo", "dlo"):
        r = requests.get(f"{server.url}/{unique}/{name}", timeout=10)
        assert r.status_code == 403 and b"aaaa" not in r.content and xml_code(r) == "AccessDenied", name
    swift_conn.post_container(segs, {"X-Container-Read": ".r:*,.rlistings"})
    for name in ("slo", "dlo"):
        r = requests.get(f"{server.url}/{unique}/{name}", timeout=10)
        assert r.status_code == 200 and r.content == data, name
        r = requests.get(f"{server.url}/{unique}/{name}", headers={"Range": "bytes=998-1001"}, timeout=10)
        assert r.status_code == 206 and r.content == b"aabb"


# -- Swift DLOs through S3 -------------------------------------------------------------


def test_dlo_lists_with_real_size_and_copies_as_data(s3, swift_conn, unique) -> None:  # noqa: ANN001
    segs = unique + "_segments"
    parts = [b"1" * 300, b"2" * 300, b"3" * 11]
    data = _swift_dlo(s3, swift_conn, unique, segs, "big", parts)
    s3.put_object(Bucket=unique, Key="empty", Body=b"")  # a plain 0-byte object stays 0
    head = s3.head_object(Bucket=unique, Key="big")
    assert head["ContentLength"] == len(data)
    v2 = {o["Key"]: o for o in s3.list_objects_v2(Bucket=unique)["Contents"]}
    v1 = {o["Key"]: o for o in s3.list_objects(Bucket=unique)["Contents"]}
    versions = {o["Key"]: o for o in s3.list_object_versions(Bucket=unique)["Versions"]}
    for listing in (v2, v1, versions):
        assert listing["big"]["Size"] == len(data), listing
        assert listing["big"]["ETag"] == head["ETag"] and head["ETag"].endswith('-N"')
        assert listing["empty"]["Size"] == 0 and listing["empty"]["ETag"] == f'"{EMPTY_MD5}"'
    # CopyObject copies the data: a plain object, not another manifest
    s3.copy_object(Bucket=unique, Key="copy", CopySource={"Bucket": unique, "Key": "big"})
    assert s3.get_object(Bucket=unique, Key="copy")["Body"].read() == data
    h = swift_conn.head_object(unique, "copy")
    assert "x-object-manifest" not in h and int(h["content-length"]) == len(data)
    assert h["etag"] == hashlib.md5(data).hexdigest()
    # the segments can change: the copy does not
    swift_conn.delete_object(segs, "big/002")
    assert s3.get_object(Bucket=unique, Key="copy")["Body"].read() == data
    # UploadPartCopy with a range from a DLO
    swift_conn.put_object(segs, "big/002", parts[2])
    up = s3.create_multipart_upload(Bucket=unique, Key="mp")["UploadId"]
    pc = s3.upload_part_copy(Bucket=unique, Key="mp", UploadId=up, PartNumber=1,
                             CopySource={"Bucket": unique, "Key": "big"}, CopySourceRange="bytes=290-310")
    s3.complete_multipart_upload(Bucket=unique, Key="mp", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": pc["CopyPartResult"]["ETag"]}]})
    assert s3.get_object(Bucket=unique, Key="mp")["Body"].read() == data[290:311]


def test_swift_copy_does_not_carry_object_acl(server, s3, swift_conn, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    s3.put_object(Bucket=unique, Key="pub", Body=b"public", ACL="public-read")
    assert requests.get(f"{server.url}/{unique}/pub", timeout=10).status_code == 200
    swift_conn.copy_object(unique, "pub", f"/{unique}/copied")  # COPY
    swift_conn.put_object(unique, "put-copied", b"", headers={"X-Copy-From": f"/{unique}/pub"})  # PUT + X-Copy-From
    storage = swift_conn.get_auth()[0]
    for name in ("copied", "put-copied"):
        assert swift_conn.get_object(unique, name)[1] == b"public"
        assert requests.get(f"{server.url}/{unique}/{name}", timeout=10).status_code == 403, name
        assert requests.get(f"{storage}/{unique}/{name}", timeout=10).status_code == 401, name
        grants = s3.get_object_acl(Bucket=unique, Key=name)["Grants"]
        assert [g["Permission"] for g in grants] == ["FULL_CONTROL"], grants
    assert requests.get(f"{server.url}/{unique}/pub", timeout=10).status_code == 200  # the source keeps its ACL


# -- buckets, listings, copies ---------------------------------------------------------


def test_create_bucket_location_constraint(s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique + "-a", CreateBucketConfiguration={"LocationConstraint": "regionOne"})
    s3.create_bucket(Bucket=unique + "-b")  # no constraint (us-east-1)
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=unique + "-c", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert code(exc) == (400, "IllegalLocationConstraintException")
    assert "eu-west-1" in exc.value.response["Error"]["Message"]
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert unique + "-a" in names and unique + "-b" in names and unique + "-c" not in names


def test_copy_source_conditionals(s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    etag = s3.put_object(Bucket=unique, Key="src", Body=b"data")["ETag"]
    past = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
    future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    modified = s3.head_object(Bucket=unique, Key="src")["LastModified"]
    time.sleep(1.1)  # "not modified since <its Last-Modified>", a date not in the future
    src = {"Bucket": unique, "Key": "src"}
    failing = [{"CopySourceIfMatch": '"0123"'}, {"CopySourceIfNoneMatch": etag},
               {"CopySourceIfModifiedSince": modified}, {"CopySourceIfUnmodifiedSince": past}]
    for cond in failing:
        with pytest.raises(ClientError) as exc:
            s3.copy_object(Bucket=unique, Key="dst", CopySource=src, **cond)
        assert code(exc) == (412, "PreconditionFailed"), cond
    assert "Contents" not in s3.list_objects_v2(Bucket=unique, Prefix="dst")
    passing = [{"CopySourceIfMatch": etag}, {"CopySourceIfNoneMatch": '"0123"'},
               {"CopySourceIfModifiedSince": past}, {"CopySourceIfUnmodifiedSince": future},
               {"CopySourceIfMatch": etag, "CopySourceIfUnmodifiedSince": past}]  # If-Match wins, as S3
    for i, cond in enumerate(passing):
        s3.copy_object(Bucket=unique, Key=f"dst{i}", CopySource=src, **cond)
        assert s3.get_object(Bucket=unique, Key=f"dst{i}")["Body"].read() == b"data"


def test_listing_encoding_type_and_fetch_owner(server, s3, ec2_keys, swift_conn, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    keys = ["a b/x", "a b/ü+%&<.txt", "plain"]  # in UTF-8 byte order
    for k in keys:
        s3.put_object(Bucket=unique, Key=k, Body=b"x")
    # boto3 asks for encoding-type=url and decodes: the keys come back as stored
    assert [o["Key"] for o in s3.list_objects(Bucket=unique)["Contents"]] == keys
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=unique)["Contents"]] == keys
    # asked for explicitly, boto3 leaves the decoding to the caller
    r = s3.list_objects_v2(Bucket=unique, EncodingType="url")
    assert [unquote(o["Key"]) for o in r["Contents"]] == keys and r["Contents"][0]["Key"] == "a%20b/x"
    r = s3.list_objects(Bucket=unique, Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["a b/"]
    # on the wire: percent-encoded
    raw = signed_request("GET", f"{server.url}/{unique}?list-type=2&encoding-type=url", ec2_keys)
    assert "<Key>a%20b/%C3%BC%2B%25%26%3C.txt</Key>" in raw.text and "<EncodingType>url</EncodingType>" in raw.text
    # without encoding-type: the key XML-escaped, the ETag and size of each key its own
    raw = signed_request("GET", f"{server.url}/{unique}?list-type=2", ec2_keys)
    assert "<Key>a b/ü+%&amp;&lt;.txt</Key>" in raw.text and raw.text.count("<Size>1</Size>") == 3
    assert raw.text.count('<ETag>"9dd4e461268c8034f5c8564e155c67a6"</ETag>') == 3  # md5(b"x")
    raw = signed_request("GET", f"{server.url}/{unique}?encoding-type=bogus", ec2_keys)
    assert raw.status_code == 400 and xml_code(raw) == "InvalidArgument"
    # fetch-owner: V2 shows owners only when asked; V1 always
    assert all("Owner" not in o for o in s3.list_objects_v2(Bucket=unique)["Contents"])
    pid = admin_project_id(swift_conn)
    for o in s3.list_objects_v2(Bucket=unique, FetchOwner=True)["Contents"]:
        assert o["Owner"]["ID"] == pid
    assert all(o["Owner"]["ID"] == pid for o in s3.list_objects(Bucket=unique)["Contents"])


# -- keys ------------------------------------------------------------------------------


def test_deleted_key_stops_on_every_worker(fresh_server) -> None:  # noqa: ANN001
    import os

    fresh_server.workers = 2
    fresh_server.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(fresh_server.openrc())
    made = json.loads(subprocess.run(["openstack", "ec2", "credentials", "create", "-f", "json"], env=env,
                                     capture_output=True, text=True, check=True, timeout=60).stdout)
    keys = {"access": made["access"], "secret": made["secret"]}
    c = client(fresh_server, keys["access"], keys["secret"])
    c.create_bucket(Bucket="bucket-" + uuid.uuid4().hex[:8])
    # each request on a new connection: both workers see (and may cache) the key
    for _ in range(20):
        assert signed_request("GET", fresh_server.url + "/", keys).status_code == 200
    listed = json.loads(subprocess.run(["openstack", "ec2", "credentials", "list", "-f", "json"], env=env,
                                       capture_output=True, text=True, check=True, timeout=60).stdout)
    assert keys["access"] in [row["Access"] for row in listed]
    subprocess.run(["openstack", "ec2", "credentials", "delete", keys["access"]], env=env, check=True, timeout=60)
    answers = [signed_request("GET", fresh_server.url + "/", keys) for _ in range(40)]
    assert {(r.status_code, xml_code(r)) for r in answers} == {(403, "InvalidAccessKeyId")}


def test_reader_role_key_reads_but_cannot_write(server, unique) -> None:  # noqa: ANN001
    name = "p" + uuid.uuid4().hex[:10]
    server.cli("project", "create", name)
    server.cli("user", "create", name + "-w", "--password", "pw1", "--project", name)
    server.cli("user", "create", name + "-r", "--password", "pw2", "--project", name, "--role", "reader")
    wk = json.loads(server.cli("credential", "create", name + "-w", name, "--json").stdout)
    rk = json.loads(server.cli("credential", "create", name + "-r", name, "--json").stdout)
    writer, reader = client(server, wk["access"], wk["secret"]), client(server, rk["access"], rk["secret"])
    writer.create_bucket(Bucket=unique)
    writer.put_object(Bucket=unique, Key="k", Body=b"original")
    assert reader.get_object(Bucket=unique, Key="k")["Body"].read() == b"original"
    assert [o["Key"] for o in reader.list_objects_v2(Bucket=unique)["Contents"]] == ["k"]
    assert [b["Name"] for b in reader.list_buckets()["Buckets"]] == [unique]
    denied = [
        lambda: reader.put_object(Bucket=unique, Key="k", Body=b"changed"),
        lambda: reader.put_object(Bucket=unique, Key="new", Body=b"x"),
        lambda: reader.delete_object(Bucket=unique, Key="k"),
        lambda: reader.delete_objects(Bucket=unique, Delete={"Objects": [{"Key": "k"}]}),
        lambda: reader.copy_object(Bucket=unique, Key="c", CopySource={"Bucket": unique, "Key": "k"}),
        lambda: reader.create_bucket(Bucket=unique + "-r"),
        lambda: reader.put_bucket_acl(Bucket=unique, ACL="public-read"),
        lambda: reader.delete_bucket(Bucket=unique),
        lambda: reader.create_multipart_upload(Bucket=unique, Key="m"),
    ]
    for call in denied:
        try:
            out = call()
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "AccessDenied", exc.response
        else:  # DeleteObjects reports per key
            assert [e["Code"] for e in out.get("Errors", [])] == ["AccessDenied"], out
    assert writer.get_object(Bucket=unique, Key="k")["Body"].read() == b"original"
    assert [o["Key"] for o in writer.list_objects_v2(Bucket=unique)["Contents"]] == ["k"]
    assert not writer.list_multipart_uploads(Bucket=unique).get("Uploads")


# -- replayed signatures ---------------------------------------------------------------


def _signed_headers(method: str, url: str, keys: dict[str, str], body: bytes = b"", when: float | None = None) -> dict:
    req = AWSRequest(method=method, url=url, data=body)
    auth = S3SigV4Auth(Credentials(keys["access"], keys["secret"]), "s3", "us-east-1")
    if when is None:
        auth.add_auth(req)
    else:  # the request as signed ``when`` (a capture replayed later)
        then = datetime.datetime.fromtimestamp(when, datetime.timezone.utc).replace(tzinfo=None)
        with mock.patch("botocore.auth.get_current_datetime", return_value=then):
            auth.add_auth(req)
    return dict(req.headers.items())


def test_replayed_signatures(server, s3, ec2_keys, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    s3.put_object(Bucket=unique, Key="k", Body=b"original")
    s3.put_object(Bucket=unique, Key="other", Body=b"other")
    url = f"{server.url}/{unique}/k"
    h = _signed_headers("GET", url, ec2_keys)
    assert requests.get(url, headers=h, timeout=10).content == b"original"
    assert requests.get(url, headers=h, timeout=10).status_code == 200  # within the window: AWS accepts it too
    # another path, method, query: the signature does not match
    for method, target in (("GET", f"{server.url}/{unique}/other"), ("DELETE", url), ("GET", url + "?acl"),
                           ("PUT", url), ("GET", f"{server.url}/{unique}")):
        r = requests.request(method, target, headers=h, data=b"changed" if method == "PUT" else None, timeout=10)
        assert r.status_code == 403 and xml_code(r) == "SignatureDoesNotMatch", (method, target, r.text)
    # a PUT's headers replayed with another body: the signed payload hash does not match
    ph = _signed_headers("PUT", url, ec2_keys, body=b"mine")
    r = requests.put(url, headers=ph, data=b"evil", timeout=10)
    assert r.status_code == 400 and xml_code(r) == "XAmzContentSHA256Mismatch"
    # the same request replayed after more than 15 minutes
    old = _signed_headers("GET", url, ec2_keys, when=time.time() - 16 * 60)
    r = requests.get(url, headers=old, timeout=10)
    assert r.status_code == 403 and xml_code(r) == "RequestTimeTooSkewed"
    # a presigned GET used for a PUT or DELETE
    presigned = s3.generate_presigned_url("get_object", Params={"Bucket": unique, "Key": "k"}, ExpiresIn=300)
    assert requests.put(presigned, data=b"changed", timeout=10).status_code == 403
    assert requests.delete(presigned, timeout=10).status_code == 403
    assert s3.get_object(Bucket=unique, Key="k")["Body"].read() == b"original"
    assert s3.get_object(Bucket=unique, Key="other")["Body"].read() == b"other"


# -- not built -------------------------------------------------------------------------


def test_not_implemented_names_the_operation(s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    calls = {
        "GetBucketLogging": lambda: s3.get_bucket_logging(Bucket=unique),
        "GetBucketWebsite": lambda: s3.get_bucket_website(Bucket=unique),
        "GetBucketReplication": lambda: s3.get_bucket_replication(Bucket=unique),
        "GetBucketNotificationConfiguration": lambda: s3.get_bucket_notification_configuration(Bucket=unique),
        "GetBucketAccelerateConfiguration": lambda: s3.get_bucket_accelerate_configuration(Bucket=unique),
    }
    for op, call in calls.items():
        with pytest.raises(ClientError) as exc:
            call()
        assert code(exc) == (501, "NotImplemented"), op
        assert op in exc.value.response["Error"]["Message"], (op, exc.value.response)
        assert exc.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-id-2"]
    assert s3.get_bucket_versioning(Bucket=unique).get("Status") is None


def test_public_read_write_bucket(server, s3, swift_conn, unique) -> None:  # noqa: ANN001
    """AllUsers WRITE: any project's key may write (Swift's write ACL ``*:*``) and, as
    AWS and Ceph RGW, so may S3 requests without credentials — objects, parts and
    deletes, under the quotas; Swift keeps refusing anonymous writes."""
    from tests.functional.test_s3_acl import ALL_USERS, AUTH_USERS, grants, new_project_keys

    pid = admin_project_id(swift_conn)
    _, _, other, _ = new_project_keys(server)
    s3.create_bucket(Bucket=unique, ACL="public-read-write")
    assert grants(s3.get_bucket_acl(Bucket=unique)) == {(pid, "FULL_CONTROL"), (ALL_USERS, "READ"),
                                                        (ALL_USERS, "WRITE")}
    other.put_object(Bucket=unique, Key="by-other", Body=b"o")
    assert s3.get_object(Bucket=unique, Key="by-other")["Body"].read() == b"o"
    r = requests.put(f"{server.url}/{unique}/anon", data=b"anonymous bytes", timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["ETag"] == '"%s"' % hashlib.md5(b"anonymous bytes").hexdigest()
    got = s3.get_object(Bucket=unique, Key="anon")
    assert got["Body"].read() == b"anonymous bytes" and got["ContentLength"] == 15
    # multipart without credentials
    r = requests.post(f"{server.url}/{unique}/mp?uploads", timeout=10)
    assert r.status_code == 200, r.text
    uid = r.text.split("<UploadId>")[1].split("</UploadId>")[0]
    r = requests.put(f"{server.url}/{unique}/mp", params={"partNumber": "1", "uploadId": uid}, data=b"part",
                     timeout=10)
    assert r.status_code == 200, r.text
    done = (f"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{r.headers['ETag']}</ETag>"
            "</Part></CompleteMultipartUpload>")
    r = requests.post(f"{server.url}/{unique}/mp", params={"uploadId": uid}, data=done, timeout=10)
    assert r.status_code == 200 and "<CompleteMultipartUploadResult" in r.text, r.text
    assert s3.get_object(Bucket=unique, Key="mp")["Body"].read() == b"part"
    # delete without credentials; bucket operations and copies stay the owner's
    r = requests.delete(f"{server.url}/{unique}/by-other", timeout=10)
    assert r.status_code == 204, r.text
    for method, path, headers in (("PUT", f"/{unique}/copy", {"x-amz-copy-source": f"/{unique}/anon"}),
                                  ("DELETE", f"/{unique}", {}), ("PUT", f"/{unique}?acl", {}),
                                  ("POST", f"/{unique}?delete", {})):
        r = requests.request(method, server.url + path, headers=headers, timeout=10)
        assert r.status_code == 403 and xml_code(r) == "AccessDenied", (method, path, r.text)
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=unique)["Contents"]) == ["anon", "mp"]
    # the bucket's public READ lists it; its objects are private unless their ACL says
    assert "<Key>anon</Key>" in requests.get(f"{server.url}/{unique}/", timeout=10).text
    assert requests.get(f"{server.url}/{unique}/anon", timeout=10).status_code == 403
    r = requests.put(f"{server.url}/{unique}/anon-pub", data=b"shared", headers={"x-amz-acl": "public-read"},
                     timeout=10)
    assert r.status_code == 200, r.text
    assert requests.get(f"{server.url}/{unique}/anon-pub", timeout=10).content == b"shared"
    r = requests.delete(f"{server.url}/{unique}/anon-pub", timeout=10)
    assert r.status_code == 204, r.text
    # quotas apply to anonymous writes too
    swift_conn.post_container(unique, {"X-Container-Meta-Quota-Bytes": "40"})
    r = requests.put(f"{server.url}/{unique}/big", data=b"x" * 100, timeout=10)
    assert r.status_code == 403 and xml_code(r) == "QuotaExceeded", r.text
    with pytest.raises(ClientError) as exc:  # signed PutObject and CopyObject too
        s3.put_object(Bucket=unique, Key="big", Body=b"x" * 100)
    assert code(exc) == (403, "QuotaExceeded")
    swift_conn.post_container(unique, {"X-Container-Meta-Quota-Bytes": "20"})
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=unique, Key="copy", CopySource={"Bucket": unique, "Key": "anon"})
    assert code(exc) == (403, "QuotaExceeded")
    # Swift: no anonymous form of its write ACL
    url = swift_conn.get_auth()[0]
    assert requests.put(f"{url}/{unique}/swift-anon", data=b"s", timeout=10).status_code == 401
    # removing Swift's *:* ends public writes; AuthenticatedUsers shows no AllUsers WRITE
    swift_conn.post_container(unique, {"X-Container-Write": "*:*"})
    swift_conn.post_container(unique, {"X-Remove-Container-Write": "x"})
    r = requests.put(f"{server.url}/{unique}/anon2", data=b"a", timeout=10)
    assert r.status_code == 403 and xml_code(r) == "AccessDenied"
    assert (ALL_USERS, "WRITE") not in grants(s3.get_bucket_acl(Bucket=unique))
    s3.put_bucket_acl(Bucket=unique, ACL="authenticated-read")
    swift_conn.post_container(unique, {"X-Container-Write": "*:*"})
    assert (AUTH_USERS, "WRITE") in grants(s3.get_bucket_acl(Bucket=unique))
    r = requests.put(f"{server.url}/{unique}/anon3", data=b"a", timeout=10)
    assert r.status_code == 403 and xml_code(r) == "AccessDenied"
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=unique)["Contents"]) == ["anon", "mp"]


def test_public_read_bucket_refuses_anonymous_writes(server, s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique, ACL="public-read")
    s3.put_object(Bucket=unique, Key="keep", Body=b"k")
    r = requests.put(f"{server.url}/{unique}/anon", data=b"a", timeout=10)
    assert r.status_code == 403 and xml_code(r) == "AccessDenied"
    r = requests.post(f"{server.url}/{unique}/anon?uploads", timeout=10)
    assert r.status_code == 403 and xml_code(r) == "AccessDenied"
    r = requests.delete(f"{server.url}/{unique}/keep", timeout=10)
    assert r.status_code == 403 and xml_code(r) == "AccessDenied"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=unique)["Contents"]] == ["keep"]
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=unique)


def test_crc64nvme_checksum(server, s3, ec2_keys, unique) -> None:  # noqa: ANN001
    """x-amz-checksum-crc64nvme (no awscrt here, so boto3 cannot send it): the check
    value of "123456789" from the CRC-64/NVME catalogue."""
    import base64

    s3.create_bucket(Bucket=unique)
    good = base64.b64encode(bytes.fromhex("ae8b14860a799888")).decode()
    bad = base64.b64encode(bytes.fromhex("ae8b14860a799889")).decode()
    r = signed_request("PUT", f"{server.url}/{unique}/bad", ec2_keys, body=b"123456789",
                       headers={"x-amz-checksum-crc64nvme": bad})
    assert r.status_code == 400 and xml_code(r) == "BadDigest"
    assert "Contents" not in s3.list_objects_v2(Bucket=unique)
    r = signed_request("PUT", f"{server.url}/{unique}/good", ec2_keys, body=b"123456789",
                       headers={"x-amz-checksum-crc64nvme": good})
    assert r.status_code == 200 and r.headers["x-amz-checksum-crc64nvme"] == good
    h = s3.head_object(Bucket=unique, Key="good", ChecksumMode="ENABLED")
    assert h["ResponseMetadata"]["HTTPHeaders"]["x-amz-checksum-crc64nvme"] == good
