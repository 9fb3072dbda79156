"""S3 ACLs in one namespace with Swift's container ACLs: canned ACLs and grants on buckets
and objects (boto3, s3cmd), anonymous access (curl/requests), cross-API views
(swift post -r ↔ GetBucketAcl, s3cmd setacl → public links), S3's semantics for objects
(a private object in a public-read bucket stays private, through Swift too), another
project's keys denied then allowed by a grant, and bad input changing nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import requests
from botocore.exceptions import ClientError

from tests.functional.test_s3_api import client, code
from tests.functional.test_s3_clients import S3CMD, run, s3cmd_config
from tests.functional.test_s3_features import signed_request, xml_code

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTH_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"


def new_project_keys(server):  # noqa: ANN001, ANN201
    """A project with a member user and an S3 key: (project id, name, boto3 client, keys)."""
    name = "p" + uuid.uuid4().hex[:10]
    pid = server.cli("project", "create", name).stdout.strip()
    server.cli("user", "create", name, "--password", "pw-" + name, "--project", name)
    keys = json.loads(server.cli("credential", "create", name, name, "--json").stdout)
    return pid, name, client(server, keys["access"], keys["secret"]), keys


@pytest.fixture(scope="module")
def other(server):  # noqa: ANN001, ANN201
    return new_project_keys(server)


def admin_project_id(swift_conn) -> str:  # noqa: ANN001
    return swift_conn.get_auth()[0].rsplit("AUTH_", 1)[1]


def grants(acl: dict) -> set[tuple[str, str]]:
    out = set()
    for g in acl["Grants"]:
        who = g["Grantee"].get("URI") or g["Grantee"].get("ID")
        out.add((who, g["Permission"]))
    return out


def test_canned_bucket_acls_one_namespace(server, s3, swift_conn, other, unique) -> None:  # noqa: ANN001
    """S3's bucket READ lists the bucket and only lists it (its objects need their own
    ACLs), through S3 and through Swift alike; WRITE is Swift's write ACL."""
    pid = admin_project_id(swift_conn)
    storage = swift_conn.get_auth()[0]
    s3.create_bucket(Bucket=unique, ACL="public-read")
    s3.put_object(Bucket=unique, Key="dir/a.txt", Body=b"hello")
    s3.put_object(Bucket=unique, Key="pub.txt", Body=b"public", ACL="public-read")
    acl = s3.get_bucket_acl(Bucket=unique)
    assert acl["Owner"] == {"ID": pid, "DisplayName": "admin"}
    assert grants(acl) == {(pid, "FULL_CONTROL"), (ALL_USERS, "READ")}
    assert acl["Grants"][0]["Grantee"].get("URI") == ALL_USERS  # group grants first, as S3 and RGW
    assert "x-container-read" not in swift_conn.head_container(unique)  # Swift's read ACL would read objects
    # anonymous: the listing (S3 XML, as Allas's a-publish index reads it; Swift JSON)
    for path in (f"/{unique}/", f"/{unique}?list-type=2", f"/{unique}"):
        r = requests.get(server.url + path, timeout=10)
        assert r.status_code == 200, (path, r.text)
        assert "<Key>dir/a.txt</Key>" in r.text and "<Size>5</Size>" in r.text and "<LastModified>" in r.text
    r = requests.get(f"{storage}/{unique}?format=json", timeout=10)
    assert r.status_code == 200 and [o["name"] for o in r.json()] == ["dir/a.txt", "pub.txt"]
    assert requests.head(f"{server.url}/{unique}", timeout=10).status_code == 200
    # ... but a private object stays private at every URL; a public-read one is public at every URL
    assert xml_code(requests.get(f"{server.url}/{unique}/dir/a.txt", timeout=10)) == "AccessDenied"
    assert requests.get(f"{storage}/{unique}/dir/a.txt", timeout=10).status_code == 401
    for url in (f"{server.url}/{unique}/pub.txt", f"{storage}/{unique}/pub.txt"):
        assert requests.get(url, timeout=10).content == b"public", url
    with pytest.raises(ClientError) as exc:
        other[2].get_object(Bucket=unique, Key="dir/a.txt")
    assert code(exc) == (403, "AccessDenied")
    assert other[2].get_object(Bucket=unique, Key="pub.txt")["Body"].read() == b"public"
    # anonymous writes and config reads stay refused, nothing changed
    assert xml_code(requests.put(f"{server.url}/{unique}/x", data=b"x", timeout=10)) == "AccessDenied"
    assert requests.delete(f"{server.url}/{unique}/dir/a.txt", timeout=10).status_code == 403
    assert xml_code(requests.get(f"{server.url}/{unique}?acl", timeout=10)) == "AccessDenied"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=unique)["Contents"]] == ["dir/a.txt", "pub.txt"]

    s3.put_bucket_acl(Bucket=unique, ACL="authenticated-read")
    assert grants(s3.get_bucket_acl(Bucket=unique)) == {(pid, "FULL_CONTROL"), (AUTH_USERS, "READ")}
    assert [o["Key"] for o in other[2].list_objects_v2(Bucket=unique)["Contents"]] == ["dir/a.txt", "pub.txt"]
    assert requests.get(f"{server.url}/{unique}/", timeout=10).status_code == 403
    assert requests.get(f"{storage}/{unique}", timeout=10).status_code == 401

    s3.put_bucket_acl(Bucket=unique, ACL="public-read-write")
    h = swift_conn.head_container(unique)
    assert "x-container-read" not in h and h["x-container-write"] == "*:*"
    assert [g["Permission"] for g in s3.get_bucket_acl(Bucket=unique)["Grants"]] == ["READ", "WRITE", "FULL_CONTROL"]

    s3.put_bucket_acl(Bucket=unique, ACL="private")
    h = swift_conn.head_container(unique)
    assert "x-container-read" not in h and "x-container-write" not in h
    assert grants(s3.get_bucket_acl(Bucket=unique)) == {(pid, "FULL_CONTROL")}
    r = requests.get(f"{server.url}/{unique}/dir/a.txt", timeout=10)
    assert r.status_code == 403 and xml_code(r) == "AccessDenied"
    assert requests.get(f"{server.url}/{unique}/", timeout=10).status_code == 403
    assert requests.get(f"{storage}/{unique}", timeout=10).status_code == 401
    assert requests.get(f"{server.url}/{unique}/pub.txt", timeout=10).content == b"public"  # its own ACL


def test_swift_read_acl_shows_in_get_bucket_acl(server, s3, swift_conn, unique) -> None:  # noqa: ANN001
    swift_conn.put_container(unique)
    swift_conn.put_object(unique, "o", b"swift")
    swift_conn.post_container(unique, {"X-Container-Read": ".r:*"})
    assert (ALL_USERS, "READ") in grants(s3.get_bucket_acl(Bucket=unique))
    assert requests.get(f"{server.url}/{unique}/o", timeout=10).content == b"swift"
    assert requests.get(f"{server.url}/{unique}/", timeout=10).status_code == 403  # no .rlistings: no listing
    swift_conn.post_container(unique, {"X-Container-Read": ".r:*,.rlistings", "X-Container-Write": "*:*"})
    got = grants(s3.get_bucket_acl(Bucket=unique))
    assert (ALL_USERS, "READ") in got and (AUTH_USERS, "WRITE") in got
    assert "<Key>o</Key>" in requests.get(f"{server.url}/{unique}/", timeout=10).text
    swift_conn.post_container(unique, {"X-Remove-Container-Read": "x", "X-Remove-Container-Write": "x"})
    assert len(s3.get_bucket_acl(Bucket=unique)["Grants"]) == 1


@pytest.mark.skipif(not shutil.which("s3cmd") and not Path(S3CMD).exists(), reason="s3cmd not installed")
def test_s3cmd_setacl_public(server, ec2_keys, swift_conn, unique, tmp_path) -> None:  # noqa: ANN001
    """s3cmd: ``setacl --acl-public`` of a bucket publishes its listing, ``--recursive``
    (what Allas's a-publish runs in S3 mode) its objects too — at the S3 link and the
    Swift storage URL alike."""
    cfg = s3cmd_config(tmp_path, server, ec2_keys, v2=True)
    s3c = [S3CMD, "-c", str(cfg), "--no-progress"]
    run([*s3c, "mb", f"s3://{unique}"])
    src = tmp_path / "f.txt"
    src.write_bytes(b"published\n")
    run([*s3c, "put", str(src), f"s3://{unique}/f.txt"])
    storage = swift_conn.get_auth()[0]
    assert requests.get(f"{server.url}/{unique}/f.txt", timeout=10).status_code == 403
    run([*s3c, "setacl", "--acl-public", f"s3://{unique}"])
    info = run([*s3c, "info", f"s3://{unique}"]).stdout
    assert "*anon*: READ" in info and "FULL_CONTROL" in info, info
    assert "none" in info.split("Policy:")[1].split("\n")[0].lower(), info  # NoSuchBucketPolicy
    assert requests.get(f"{server.url}/{unique}/", timeout=10).status_code == 200
    assert requests.get(f"{server.url}/{unique}/f.txt", timeout=10).status_code == 403
    assert requests.get(f"{storage}/{unique}/f.txt", timeout=10).status_code == 401
    run([*s3c, "setacl", "--acl-public", "--recursive", f"s3://{unique}"])
    for url in (f"{server.url}/{unique}/f.txt", f"{storage}/{unique}/f.txt"):
        got = subprocess.run(["curl", "-sf", url], capture_output=True, check=True, timeout=30).stdout
        assert got == b"published\n", url
    assert "*anon*: READ" in run([*s3c, "info", f"s3://{unique}/f.txt"]).stdout
    # one object private again
    run([*s3c, "put", str(src), f"s3://{unique}/g.txt"])
    run([*s3c, "setacl", "--acl-private", f"s3://{unique}/f.txt"])
    assert requests.get(f"{server.url}/{unique}/f.txt", timeout=10).status_code == 403
    assert requests.get(f"{server.url}/{unique}/g.txt", timeout=10).status_code == 403
    run([*s3c, "setacl", "--acl-public", f"s3://{unique}/g.txt"])
    assert requests.get(f"{storage}/{unique}/g.txt", timeout=10).content == b"published\n"


def test_object_acls(server, s3, swift_conn, other, unique) -> None:  # noqa: ANN001
    other_pid, other_name, o, _ = other
    s3.create_bucket(Bucket=unique)
    s3.put_object(Bucket=unique, Key="pub", Body=b"public", ACL="public-read")
    s3.put_object(Bucket=unique, Key="priv", Body=b"private")
    storage = swift_conn.get_auth()[0]
    # anonymous: at the S3 URL (public link) and at the Swift storage URL
    for url in (f"{server.url}/{unique}/pub", f"{storage}/{unique}/pub"):
        r = requests.get(url, timeout=10)
        assert r.status_code == 200 and r.content == b"public", url
        assert requests.head(url, timeout=10).status_code == 200
    assert requests.get(f"{server.url}/{unique}/priv", timeout=10).status_code == 403
    assert requests.get(f"{storage}/{unique}/priv", timeout=10).status_code == 401
    assert requests.get(f"{server.url}/{unique}/", timeout=10).status_code == 403  # the bucket stays private
    assert (ALL_USERS, "READ") in grants(s3.get_object_acl(Bucket=unique, Key="pub"))
    # hidden from Swift, kept by a Swift POST
    h = swift_conn.head_object(unique, "pub")
    assert not any("acl" in k for k in h), h
    swift_conn.post_object(unique, "pub", {"X-Object-Meta-Color": "blue"})
    assert requests.get(f"{server.url}/{unique}/pub", timeout=10).status_code == 200
    # another project: reads the public object, not the private one
    assert o.get_object(Bucket=unique, Key="pub")["Body"].read() == b"public"
    with pytest.raises(ClientError) as exc:
        o.get_object(Bucket=unique, Key="priv")
    assert code(exc) == (403, "AccessDenied")
    # a grant to the other project (Allas's way of sharing), by header
    s3.put_object_acl(Bucket=unique, Key="priv", GrantRead=f'id="{other_pid}"')
    assert o.get_object(Bucket=unique, Key="priv")["Body"].read() == b"private"
    got = s3.get_object_acl(Bucket=unique, Key="priv")["Grants"]
    assert {"ID": other_pid, "DisplayName": other_name, "Type": "CanonicalUser"} in [g["Grantee"] for g in got]
    assert requests.get(f"{server.url}/{unique}/priv", timeout=10).status_code == 403  # still not anonymous
    # presigned URLs: the other project's presigned GET honours the object ACL
    url = o.generate_presigned_url("get_object", Params={"Bucket": unique, "Key": "priv"}, ExpiresIn=60)
    assert requests.get(url, timeout=10).content == b"private"
    s3.put_object_acl(Bucket=unique, Key="priv", ACL="private")
    assert requests.get(url, timeout=10).status_code == 403
    with pytest.raises(ClientError) as exc:
        o.get_object_acl(Bucket=unique, Key="pub")
    assert code(exc) == (403, "AccessDenied")
    # presigned PUT by the owner, then a new PUT resets the ACL to private
    put = s3.generate_presigned_url("put_object", Params={"Bucket": unique, "Key": "pub"}, ExpiresIn=60)
    assert requests.put(put, data=b"new", timeout=10).status_code == 200
    assert requests.get(f"{server.url}/{unique}/pub", timeout=10).status_code == 403
    # CopyObject: the copy is private unless the request says otherwise
    s3.put_object_acl(Bucket=unique, Key="pub", ACL="public-read")
    s3.copy_object(Bucket=unique, Key="copy", CopySource={"Bucket": unique, "Key": "pub"})
    assert requests.get(f"{server.url}/{unique}/copy", timeout=10).status_code == 403
    s3.copy_object(Bucket=unique, Key="copy2", CopySource={"Bucket": unique, "Key": "pub"}, ACL="public-read")
    assert requests.get(f"{server.url}/{unique}/copy2", timeout=10).content == b"new"
    # a multipart upload's x-amz-acl is the completed object's ACL
    up = s3.create_multipart_upload(Bucket=unique, Key="mpu", ACL="public-read")["UploadId"]
    etag = s3.upload_part(Bucket=unique, Key="mpu", UploadId=up, PartNumber=1, Body=b"multi")["ETag"]
    s3.complete_multipart_upload(Bucket=unique, Key="mpu", UploadId=up,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert requests.get(f"{server.url}/{unique}/mpu", timeout=10).content == b"multi"
    with pytest.raises(ClientError) as exc:
        s3.create_multipart_upload(Bucket=unique, Key="mpu2", ACL="nonsense")  # type: ignore[arg-type]
    assert code(exc) == (400, "InvalidArgument")


def test_other_project_denied_then_allowed_by_grant(server, s3, swift_conn, other, unique) -> None:  # noqa: ANN001
    other_pid, other_name, o, _ = other
    pid = admin_project_id(swift_conn)
    s3.create_bucket(Bucket=unique)
    s3.put_object(Bucket=unique, Key="k", Body=b"shared")
    for call in (lambda: o.list_objects_v2(Bucket=unique), lambda: o.get_object(Bucket=unique, Key="k"),
                 lambda: o.put_object(Bucket=unique, Key="x", Body=b"x"), lambda: o.get_bucket_acl(Bucket=unique),
                 lambda: o.put_bucket_acl(Bucket=unique, ACL="public-read")):
        with pytest.raises(ClientError) as exc:
            call()
        assert code(exc) == (403, "AccessDenied")
    owner = {"ID": pid, "DisplayName": "admin"}
    s3.put_bucket_acl(Bucket=unique, AccessControlPolicy={"Owner": owner, "Grants": [
        {"Grantee": {"Type": "CanonicalUser", "ID": pid}, "Permission": "FULL_CONTROL"},
        {"Grantee": {"Type": "CanonicalUser", "ID": other_pid}, "Permission": "READ"},
    ]})
    assert "x-container-read" not in swift_conn.head_container(unique)  # S3's READ: listing only
    acl = s3.get_bucket_acl(Bucket=unique)
    assert {"Grantee": {"ID": other_pid, "DisplayName": other_name, "Type": "CanonicalUser"},
            "Permission": "READ"} in acl["Grants"]
    assert [x["Key"] for x in o.list_objects_v2(Bucket=unique)["Contents"]] == ["k"]
    with pytest.raises(ClientError) as exc:
        o.get_object(Bucket=unique, Key="k")
    assert code(exc) == (403, "AccessDenied")
    s3.put_object_acl(Bucket=unique, Key="k", GrantRead=f'id="{other_pid}"')  # the object's own grant
    assert o.get_object(Bucket=unique, Key="k")["Body"].read() == b"shared"
    with pytest.raises(ClientError) as exc:
        o.put_object(Bucket=unique, Key="x", Body=b"x")
    assert code(exc) == (403, "AccessDenied")
    # WRITE (and READ_ACP) added by grant headers
    s3.put_bucket_acl(Bucket=unique, GrantRead=f'id="{other_pid}"', GrantWrite=f'id="{other_pid}"',
                      GrantReadACP=f'id="{other_pid}"')
    assert swift_conn.head_container(unique)["x-container-write"] == f"{other_pid}:*"
    o.put_object(Bucket=unique, Key="from-other", Body=b"theirs")
    assert swift_conn.get_object(unique, "from-other")[1] == b"theirs"
    o.delete_objects(Bucket=unique, Delete={"Objects": [{"Key": "from-other"}]})
    assert "from-other" not in [x["name"] for x in swift_conn.get_container(unique)[1]]
    assert (other_pid, "READ_ACP") in grants(o.get_bucket_acl(Bucket=unique))
    with pytest.raises(ClientError) as exc:
        o.put_bucket_acl(Bucket=unique, ACL="public-read")  # no WRITE_ACP
    assert code(exc) == (403, "AccessDenied")
    with pytest.raises(ClientError) as exc:
        o.delete_bucket(Bucket=unique)  # bucket operations stay the owner's
    assert code(exc) == (403, "AccessDenied")
    # the grant through the Swift API too: the other project's token reads the container
    # the same way (python-swiftclient with the other project's Swift login is tested
    # in test_swift_acl.py; here the decision is the same stored ACL)
    s3.put_bucket_acl(Bucket=unique, ACL="private")
    with pytest.raises(ClientError) as exc:
        o.list_objects_v2(Bucket=unique)
    assert code(exc) == (403, "AccessDenied")
    s3.put_object_acl(Bucket=unique, Key="k", ACL="private")
    with pytest.raises(ClientError) as exc:
        o.get_object(Bucket=unique, Key="k")
    assert code(exc) == (403, "AccessDenied")


def test_bad_acl_input_changes_nothing(server, s3, swift_conn, ec2_keys, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique, ACL="public-read")
    s3.put_object(Bucket=unique, Key="k", Body=b"x")
    url = f"{server.url}/{unique}?acl"

    def unchanged() -> None:
        assert "x-container-read" not in swift_conn.head_container(unique)
        assert len(s3.get_bucket_acl(Bucket=unique)["Grants"]) == 2
        assert requests.get(f"{server.url}/{unique}/", timeout=10).status_code == 200

    with pytest.raises(ClientError) as exc:
        s3.put_bucket_acl(Bucket=unique, ACL="world-writable")  # type: ignore[arg-type]
    assert code(exc) == (400, "InvalidArgument")
    unchanged()
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=unique + "-x", ACL="nonsense")  # type: ignore[arg-type]
    assert code(exc) == (400, "InvalidArgument")
    assert unique + "-x" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=unique, Key="new", Body=b"y", ACL="nonsense")  # type: ignore[arg-type]
    assert code(exc) == (400, "InvalidArgument")
    with pytest.raises(ClientError):
        s3.head_object(Bucket=unique, Key="new")
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_acl(Bucket=unique, GrantRead='id="no-such-project"')
    assert code(exc) == (400, "InvalidArgument")
    unchanged()
    bad = {
        b"<AccessControlPolicy><AccessControlList>": "MalformedXML",
        (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
         b"<AccessControlPolicy><AccessControlList><Grant><Grantee><ID>&b;</ID></Grantee>"
         b"<Permission>READ</Permission></Grant></AccessControlList></AccessControlPolicy>"): "MalformedXML",
        b"<AccessControlPolicy><AccessControlList><Grant><Grantee><URI>" + ALL_USERS.encode()
        + b"</URI></Grantee><Permission>EVERYTHING</Permission></Grant></AccessControlList>"
        b"</AccessControlPolicy>": "MalformedACLError",
        b"<Other/>": "MalformedACLError",
        b"<AccessControlPolicy><AccessControlList>" + b"<Grant/>" * 20000
        + b"</AccessControlList></AccessControlPolicy>": "MaxMessageLengthExceeded",
    }
    for body, want in bad.items():
        r = signed_request("PUT", url, ec2_keys, body=body)
        assert r.status_code == 400 and xml_code(r) == want, (body[:60], r.text)
        unchanged()
    r = signed_request("PUT", url, ec2_keys, body=b"<AccessControlPolicy/>", headers={"x-amz-acl": "private"})
    assert r.status_code == 400 and xml_code(r) == "UnexpectedContent"
    r = signed_request("PUT", url, ec2_keys, headers={"x-amz-acl": "private", "x-amz-grant-read": 'uri="x"'})
    assert r.status_code == 400 and xml_code(r) == "InvalidRequest"
    r = signed_request("PUT", f"{server.url}/{unique}/k?acl", ec2_keys, body=b"<nope")
    assert r.status_code == 400 and xml_code(r) == "MalformedXML"
    unchanged()
    assert s3.get_object(Bucket=unique, Key="k")["Body"].read() == b"x"
