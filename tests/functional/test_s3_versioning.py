"""S3 bucket versioning (issue 12) with boto3, the aws CLI and s3cmd, and the one
namespace it shares with Swift's object versioning (python-swiftclient): a version
written through either API is listed and read through the other."""

from __future__ import annotations

import json
import shutil
import time

import pytest
import requests
from botocore.exceptions import ClientError

from tests.functional.conftest import LampiServer
from tests.functional.test_s3_clients import aws_env, run, s3cmd_config
from tests.functional.test_s3_features import signed_request, xml_code


def code(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    e = exc.value.response
    return e["ResponseMetadata"]["HTTPStatusCode"], e["Error"]["Code"]


def hdrs(resp: dict) -> dict[str, str]:
    return resp["ResponseMetadata"]["HTTPHeaders"]


def versions(s3, bucket: str, **kw) -> list[tuple[str, str, bool, str]]:  # noqa: ANN001
    """(key, version id, is latest, "v" or "<marker>") of every version, in the order the
    server lists them (newest first per key). boto3 splits versions and delete markers into
    two lists, and LastModified has whole seconds (as HEAD's, as AWS lists them), so the
    order is read from the XML itself."""
    import xml.etree.ElementTree as ET

    raw: dict[str, bytes] = {}

    def grab(http_response, **_kw) -> None:  # noqa: ANN001
        raw["body"] = http_response.content

    s3.meta.events.register("after-call.s3.ListObjectVersions", grab)
    try:
        s3.list_object_versions(Bucket=bucket, **kw)
    finally:
        s3.meta.events.unregister("after-call.s3.ListObjectVersions", grab)
    out = []
    for el in ET.fromstring(raw["body"]):
        tag = el.tag.rpartition("}")[2]
        if tag in ("Version", "DeleteMarker"):
            f = {c.tag.rpartition("}")[2]: c.text for c in el}
            out.append((f["Key"], f["VersionId"], f["IsLatest"] == "true", "v" if tag == "Version" else "<marker>"))
    return out


def body(s3, bucket: str, key: str, vid: str | None = None) -> bytes:  # noqa: ANN001
    kw = {"VersionId": vid} if vid else {}
    return s3.get_object(Bucket=bucket, Key=key, **kw)["Body"].read()


def test_versioning_states_are_swifts_x_versions_enabled(s3, swift_conn, unique, server, ec2_keys) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    assert "Status" not in s3.get_bucket_versioning(Bucket=unique)
    assert "x-versions-enabled" not in swift_conn.head_container(unique)
    s3.put_bucket_versioning(Bucket=unique, VersioningConfiguration={"Status": "Enabled", "MFADelete": "Disabled"})
    assert s3.get_bucket_versioning(Bucket=unique)["Status"] == "Enabled"
    assert swift_conn.head_container(unique)["x-versions-enabled"] == "True"
    s3.put_bucket_versioning(Bucket=unique, VersioningConfiguration={"Status": "Suspended"})
    assert s3.get_bucket_versioning(Bucket=unique)["Status"] == "Suspended"
    assert swift_conn.head_container(unique)["x-versions-enabled"] == "False"
    swift_conn.post_container(unique, {"X-Versions-Enabled": "true"})  # and back, through Swift
    assert s3.get_bucket_versioning(Bucket=unique)["Status"] == "Enabled"
    # bad input: S3's 4xx, nothing changed
    url = f"{server.url}/{unique}?versioning"
    for doc, want in ((b"<VersioningConfiguration><Status>On</Status></VersioningConfiguration>", "MalformedXML"),
                      (b"<VersioningConfiguration><Status>Enabled</Status>", "MalformedXML"),
                      (b"<Other><Status>Enabled</Status></Other>", "MalformedXML"),
                      (b"<VersioningConfiguration><Status>Suspended</Status><MfaDelete>Maybe</MfaDelete>"
                       b"</VersioningConfiguration>", "MalformedXML")):
        r = signed_request("PUT", url, ec2_keys, body=doc)
        assert r.status_code == 400 and xml_code(r) == want, (doc, r.text)
    with pytest.raises(ClientError) as exc:  # MFA delete needs MFA devices: not offered
        s3.put_bucket_versioning(Bucket=unique, VersioningConfiguration={"Status": "Enabled", "MFADelete": "Enabled"},
                                 MFA="serial 123456")
    assert code(exc) == (501, "NotImplemented")
    assert s3.get_bucket_versioning(Bucket=unique)["Status"] == "Enabled"
    # a bucket with Swift's legacy versioned writes cannot also use object versioning
    swift_conn.put_container(unique + "-arch")
    swift_conn.put_container(unique + "-legacy", headers={"X-Versions-Location": unique + "-arch"})
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_versioning(Bucket=unique + "-legacy", VersioningConfiguration={"Status": "Enabled"})
    assert code(exc) == (409, "InvalidBucketState")


def test_versions_read_delete_markers_and_promotion(s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    s3.put_bucket_versioning(Bucket=unique, VersioningConfiguration={"Status": "Enabled"})
    ids = [s3.put_object(Bucket=unique, Key="k", Body=f"body-{i}".encode())["VersionId"] for i in range(3)]
    assert len(set(ids)) == 3 and ids == sorted(ids)
    assert versions(s3, unique) == [("k", ids[2], True, "v"), ("k", ids[1], False, "v"), ("k", ids[0], False, "v")]
    for i, vid in enumerate(ids):
        g = s3.get_object(Bucket=unique, Key="k", VersionId=vid)
        assert g["Body"].read() == f"body-{i}".encode() and g["VersionId"] == vid
        assert s3.head_object(Bucket=unique, Key="k", VersionId=vid)["ContentLength"] == 6
    assert s3.head_object(Bucket=unique, Key="k")["VersionId"] == ids[2]
    # ranges and conditionals work on a version too
    g = s3.get_object(Bucket=unique, Key="k", VersionId=ids[0], Range="bytes=0-3")
    assert g["Body"].read() == b"body" and g["ContentRange"] == "bytes 0-3/6"
    # deleting the current version by id makes the previous one current (S3's rule)
    d = s3.delete_object(Bucket=unique, Key="k", VersionId=ids[2])
    assert d["VersionId"] == ids[2] and "DeleteMarker" not in d
    assert body(s3, unique, "k") == b"body-1"
    assert versions(s3, unique) == [("k", ids[1], True, "v"), ("k", ids[0], False, "v")]
    # a DELETE without a version id writes a delete marker; the versions stay
    d = s3.delete_object(Bucket=unique, Key="k")
    marker = d["VersionId"]
    assert d["DeleteMarker"] is True and marker not in ids
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=unique, Key="k")
    assert code(exc) == (404, "NoSuchKey")
    h = hdrs(exc.value.response)
    assert h["x-amz-delete-marker"] == "true" and h["x-amz-version-id"] == marker
    with pytest.raises(ClientError) as exc:  # HEAD too (the header is what clients read)
        s3.head_object(Bucket=unique, Key="k")
    assert hdrs(exc.value.response)["x-amz-delete-marker"] == "true"
    with pytest.raises(ClientError) as exc:  # the marker itself has no data: 405
        s3.get_object(Bucket=unique, Key="k", VersionId=marker)
    assert code(exc) == (405, "MethodNotAllowed") and hdrs(exc.value.response)["x-amz-delete-marker"] == "true"
    assert "Contents" not in s3.list_objects_v2(Bucket=unique)
    assert versions(s3, unique) == [("k", marker, True, "<marker>"), ("k", ids[1], False, "v"),
                                    ("k", ids[0], False, "v")]
    s3.delete_object(Bucket=unique, Key="k")  # markers stack
    assert len(s3.list_object_versions(Bucket=unique)["DeleteMarkers"]) == 2
    # removing the markers brings the object back
    for dm in s3.list_object_versions(Bucket=unique)["DeleteMarkers"]:
        d = s3.delete_object(Bucket=unique, Key="k", VersionId=dm["VersionId"])
        assert d["DeleteMarker"] is True and d["VersionId"] == dm["VersionId"]
    assert body(s3, unique, "k") == b"body-1"
    # unknown and invalid version ids
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=unique, Key="k", VersionId="1000000000.00000")
    assert code(exc) == (404, "NoSuchVersion")
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=unique, Key="k", VersionId="not-a-version")
    assert code(exc) == (400, "InvalidArgument")
    with pytest.raises(ClientError) as exc:
        s3.delete_object(Bucket=unique, Key="k", VersionId="not-a-version")
    assert code(exc) == (400, "InvalidArgument")
    s3.delete_object(Bucket=unique, Key="k", VersionId="1000000000.00000")  # no such version: 204, idempotent
    # a bucket with versions left cannot go; without any it can
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=unique)
    assert code(exc) == (409, "BucketNotEmpty")
    for vid in ids[:2]:
        s3.delete_object(Bucket=unique, Key="k", VersionId=vid)
    assert versions(s3, unique) == []
    s3.delete_bucket(Bucket=unique)


def test_null_version_before_versioning_and_suspended(s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    s3.put_object(Bucket=unique, Key="k", Body=b"old")
    assert "VersionId" not in s3.put_object(Bucket=unique, Key="plain", Body=b"x")  # unversioned: no id
    s3.put_bucket_versioning(Bucket=unique, VersioningConfiguration={"Status": "Enabled"})
    assert s3.head_object(Bucket=unique, Key="k")["VersionId"] == "null"
    v1 = s3.put_object(Bucket=unique, Key="k", Body=b"v1")["VersionId"]
    # the object from before versioning stays, as the null version
    assert versions(s3, unique, Prefix="k") == [("k", v1, True, "v"), ("k", "null", False, "v")]
    assert body(s3, unique, "k", "null") == b"old"
    # suspended: a write is the null version and replaces the earlier null version
    s3.put_bucket_versioning(Bucket=unique, VersioningConfiguration={"Status": "Suspended"})
    p = s3.put_object(Bucket=unique, Key="k", Body=b"new-null")
    assert "VersionId" not in p  # as S3: no id for a write while suspended
    assert versions(s3, unique, Prefix="k") == [("k", "null", True, "v"), ("k", v1, False, "v")]
    assert body(s3, unique, "k", "null") == b"new-null"
    assert s3.get_object(Bucket=unique, Key="k")["VersionId"] == "null"
    # a DELETE while suspended: the null version goes, a null delete marker takes its place
    d = s3.delete_object(Bucket=unique, Key="k")
    assert d["DeleteMarker"] is True and d["VersionId"] == "null"
    assert versions(s3, unique, Prefix="k") == [("k", "null", True, "<marker>"), ("k", v1, False, "v")]
    # deleting the null marker by id: the newest version is current again
    s3.delete_object(Bucket=unique, Key="k", VersionId="null")
    assert body(s3, unique, "k") == b"v1"
    # enabled again: the next DELETE VersionId=null finds no null version (204, nothing changes)
    s3.put_bucket_versioning(Bucket=unique, VersioningConfiguration={"Status": "Enabled"})
    s3.delete_object(Bucket=unique, Key="k", VersionId="null")
    assert versions(s3, unique, Prefix="k") == [("k", v1, True, "v")]
    # a null version kept as a noncurrent version and deleted by "null"
    s3.put_object(Bucket=unique, Key="plain", Body=b"y")
    s3.delete_object(Bucket=unique, Key="plain", VersionId="null")
    assert body(s3, unique, "plain") == b"y" and [v[1] for v in versions(s3, unique, Prefix="plain")] != ["null"]


def test_list_object_versions_paging_prefix_delimiter(s3, unique, server, ec2_keys) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    s3.put_object(Bucket=unique, Key="a", Body=b"null-a")
    s3.put_bucket_versioning(Bucket=unique, VersioningConfiguration={"Status": "Enabled"})
    for key in ("a", "b/1", "b/2", "c", "c", "c", "d&<x>"):
        s3.put_object(Bucket=unique, Key=key, Body=key.encode())
    s3.delete_object(Bucket=unique, Key="c")
    r = s3.list_object_versions(Bucket=unique)
    assert [(v["Key"], v["IsLatest"]) for v in r["Versions"]] == [
        ("a", True), ("a", False), ("b/1", True), ("b/2", True), ("c", False), ("c", False), ("c", False),
        ("d&<x>", True)]
    assert [m["Key"] for m in r["DeleteMarkers"]] == ["c"] and r["DeleteMarkers"][0]["IsLatest"]
    assert [v["VersionId"] for v in r["Versions"] if v["Key"] == "a"][1] == "null"
    want = [(v["Key"], v["VersionId"]) for v in r["Versions"]] + [(m["Key"], m["VersionId"]) for m in r["DeleteMarkers"]]
    # pages of 3: every version exactly once, whatever the page boundary (null ones included)
    got, kw = [], {}
    while True:
        page = s3.list_object_versions(Bucket=unique, MaxKeys=3, **kw)
        items = page.get("Versions", []) + page.get("DeleteMarkers", [])
        assert len(items) <= 3
        got += [(v["Key"], v["VersionId"]) for v in items]
        if not page["IsTruncated"]:
            break
        kw = {"KeyMarker": page["NextKeyMarker"], "VersionIdMarker": page["NextVersionIdMarker"]}
    assert sorted(got) == sorted(want) and len(got) == len(want)
    # prefix and delimiter
    r = s3.list_object_versions(Bucket=unique, Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["b/"]
    assert {v["Key"] for v in r["Versions"]} == {"a", "c", "d&<x>"}
    r = s3.list_object_versions(Bucket=unique, Prefix="b/")
    assert [v["Key"] for v in r["Versions"]] == ["b/1", "b/2"]
    # encoding-type=url
    r = signed_request("GET", f"{server.url}/{unique}?versions&encoding-type=url&prefix=d", ec2_keys)
    assert r.status_code == 200 and "<Key>d%26%3Cx%3E</Key>" in r.text
    # bad markers: S3's 400
    for q in ("versions&key-marker=a&version-id-marker=bogus", "versions&version-id-marker=null"):
        r = signed_request("GET", f"{server.url}/{unique}?{q}", ec2_keys)
        assert r.status_code == 400 and xml_code(r) == "InvalidArgument", q


def test_copy_multipart_and_delete_objects_with_versions(s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    s3.put_bucket_versioning(Bucket=unique, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=unique, Key="src", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=unique, Key="src", Body=b"two")["VersionId"]
    c = s3.copy_object(Bucket=unique, Key="dst", CopySource={"Bucket": unique, "Key": "src", "VersionId": v1})
    assert c["CopySourceVersionId"] == v1 and c["VersionId"] and body(s3, unique, "dst") == b"one"
    c = s3.copy_object(Bucket=unique, Key="dst", CopySource={"Bucket": unique, "Key": "src"})
    assert c["CopySourceVersionId"] == v2 and body(s3, unique, "dst") == b"two"
    # restoring an old version by copying it onto its own key (no REPLACE needed)
    s3.copy_object(Bucket=unique, Key="src", CopySource={"Bucket": unique, "Key": "src", "VersionId": v1})
    assert body(s3, unique, "src") == b"one" and len(versions(s3, unique, Prefix="src")) == 3
    marker = s3.delete_object(Bucket=unique, Key="gone")["VersionId"]
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=unique, Key="x", CopySource={"Bucket": unique, "Key": "gone", "VersionId": marker})
    assert code(exc) == (400, "InvalidRequest")
    # multipart complete into a versioned bucket: a new version, the previous one kept
    up = s3.create_multipart_upload(Bucket=unique, Key="src")["UploadId"]
    pc = s3.upload_part_copy(Bucket=unique, Key="src", UploadId=up, PartNumber=1,
                             CopySource={"Bucket": unique, "Key": "src", "VersionId": v2})
    assert hdrs(pc)["x-amz-copy-source-version-id"] == v2
    done = s3.complete_multipart_upload(Bucket=unique, Key="src", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": pc["CopyPartResult"]["ETag"]}]})
    assert done["VersionId"] and body(s3, unique, "src") == b"two"
    assert body(s3, unique, "src", v1) == b"one" and len(versions(s3, unique, Prefix="src")) == 4
    # DeleteObjects: versions by id, markers for plain keys, idempotent, quiet
    r = s3.delete_objects(Bucket=unique, Delete={"Objects": [{"Key": "src", "VersionId": v1}, {"Key": "dst"}]})
    got = {(d["Key"], d.get("VersionId"), d.get("DeleteMarker", False)) for d in r["Deleted"]}
    assert ("src", v1, False) in got and ("dst", None, True) in got and "Errors" not in r
    dm = next(d for d in r["Deleted"] if d["Key"] == "dst")["DeleteMarkerVersionId"]
    assert versions(s3, unique, Prefix="dst")[0] == ("dst", dm, True, "<marker>")
    r = s3.delete_objects(Bucket=unique, Delete={"Objects": [{"Key": "src", "VersionId": v1}], "Quiet": True})
    assert "Deleted" not in r and "Errors" not in r
    r = s3.delete_objects(Bucket=unique, Delete={"Objects": [{"Key": "dst", "VersionId": dm}]})
    assert r["Deleted"][0]["DeleteMarker"] is True and body(s3, unique, "dst") == b"two"


def test_delete_objects_without_key(server, ec2_keys, s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    doc = b"<Delete><Object><VersionId>null</VersionId></Object></Delete>"
    import base64
    import hashlib

    md5 = base64.b64encode(hashlib.md5(doc).digest()).decode()
    r = signed_request("POST", f"{server.url}/{unique}?delete", ec2_keys, body=doc, headers={"Content-MD5": md5})
    assert r.status_code == 400 and xml_code(r) == "UserKeyMustBeSpecified"


def test_object_acl_and_tags_per_version(s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    s3.put_bucket_versioning(Bucket=unique, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=unique, Key="k", Body=b"1", Tagging="a=1")["VersionId"]
    v2 = s3.put_object(Bucket=unique, Key="k", Body=b"2")["VersionId"]
    s3.put_object_acl(Bucket=unique, Key="k", VersionId=v1, ACL="public-read")
    uris = {g["Grantee"].get("URI") for g in s3.get_object_acl(Bucket=unique, Key="k", VersionId=v1)["Grants"]}
    assert "http://acs.amazonaws.com/groups/global/AllUsers" in uris
    uris = {g["Grantee"].get("URI") for g in s3.get_object_acl(Bucket=unique, Key="k")["Grants"]}
    assert "http://acs.amazonaws.com/groups/global/AllUsers" not in uris  # the current (v2) is private
    assert s3.get_object_tagging(Bucket=unique, Key="k", VersionId=v1)["TagSet"] == [{"Key": "a", "Value": "1"}]
    s3.put_object_tagging(Bucket=unique, Key="k", VersionId=v1, Tagging={"TagSet": [{"Key": "b", "Value": "2"}]})
    assert s3.get_object_tagging(Bucket=unique, Key="k", VersionId=v1)["TagSet"] == [{"Key": "b", "Value": "2"}]
    assert s3.get_object_tagging(Bucket=unique, Key="k")["TagSet"] == []
    assert s3.get_object_tagging(Bucket=unique, Key="k", VersionId=v2)["TagSet"] == []
    with pytest.raises(ClientError) as exc:
        s3.get_object_tagging(Bucket=unique, Key="k", VersionId="1000000000.00000")
    assert code(exc) == (404, "NoSuchVersion")


def _swift_versions(conn, container: str) -> list[dict]:  # noqa: ANN001
    return conn.get_container(container, query_string="versions")[1]


def test_one_namespace_with_swift_object_versioning(s3, swift_conn, unique) -> None:  # noqa: ANN001
    """A version written by S3 is listed and read through Swift's object versioning API;
    one written by Swift is read through S3 by its version id; each API's deletes and
    markers are seen by the other."""
    s3.create_bucket(Bucket=unique)
    s3.put_object(Bucket=unique, Key="o", Body=b"before")  # the null version
    s3.put_bucket_versioning(Bucket=unique, VersioningConfiguration={"Status": "Enabled"})
    v_s3 = s3.put_object(Bucket=unique, Key="o", Body=b"from-s3")["VersionId"]
    resp: dict = {}
    swift_conn.put_object(unique, "o", b"from-swift", response_dict=resp)
    v_swift = resp["headers"]["x-object-version-id"]
    listed = [(v["name"], v["version_id"], v["is_latest"], v["bytes"]) for v in _swift_versions(swift_conn, unique)]
    null_id = listed[2][1]  # Swift lists the null version under its timestamp id
    assert listed == [("o", v_swift, True, 10), ("o", v_s3, False, 7), ("o", null_id, False, 6)]
    assert versions(s3, unique) == [("o", v_swift, True, "v"), ("o", v_s3, False, "v"), ("o", "null", False, "v")]
    assert swift_conn.get_object(unique, "o", query_string=f"version-id={v_s3}")[1] == b"from-s3"
    assert swift_conn.get_object(unique, "o", query_string=f"version-id={null_id}")[1] == b"before"
    assert body(s3, unique, "o", v_swift) == b"from-swift" and body(s3, unique, "o", "null") == b"before"
    # a Swift DELETE writes a delete marker S3 lists; an S3 DELETE one Swift lists
    resp = {}
    swift_conn.delete_object(unique, "o", response_dict=resp)
    sw_marker = resp["headers"]["x-object-version-id"]
    r = s3.list_object_versions(Bucket=unique)
    assert [(m["VersionId"], m["IsLatest"]) for m in r["DeleteMarkers"]] == [(sw_marker, True)]
    s3.delete_object(Bucket=unique, Key="o", VersionId=sw_marker)  # S3 removes Swift's marker: v_swift current
    assert swift_conn.get_object(unique, "o")[1] == b"from-swift"
    s3_marker = s3.delete_object(Bucket=unique, Key="o")["VersionId"]
    top = _swift_versions(swift_conn, unique)[0]
    assert top["version_id"] == s3_marker and top["content_type"] == "application/x-deleted;swift_versions_deleted=1"
    # Swift deletes a version S3 wrote; S3 no longer lists it
    swift_conn.delete_object(unique, "o", query_string=f"version-id={v_s3}")
    assert v_s3 not in [v[1] for v in versions(s3, unique)]
    # bytes-used counts every version once
    assert int(swift_conn.head_container(unique)["x-container-bytes-used"]) == 6 + 10


def test_aws_cli_and_s3cmd(server, ec2_keys, unique, tmp_path, s3) -> None:  # noqa: ANN001
    aws = [shutil.which("aws") or "aws", "--endpoint-url", server.url, "--output", "json"]
    env = aws_env(ec2_keys, tmp_path)
    run([*aws, "s3api", "create-bucket", "--bucket", unique], env)
    run([*aws, "s3api", "put-bucket-versioning", "--bucket", unique, "--versioning-configuration",
         "Status=Enabled"], env)
    assert json.loads(run([*aws, "s3api", "get-bucket-versioning", "--bucket", unique], env).stdout)["Status"] \
        == "Enabled"
    src = tmp_path / "f.txt"
    ids = []
    for text in ("first", "second"):
        src.write_text(text)
        out = run([*aws, "s3api", "put-object", "--bucket", unique, "--key", "f.txt", "--body", str(src)], env)
        ids.append(json.loads(out.stdout)["VersionId"])
    listed = json.loads(run([*aws, "s3api", "list-object-versions", "--bucket", unique], env).stdout)
    assert [(v["VersionId"], v["IsLatest"]) for v in listed["Versions"]] == [(ids[1], True), (ids[0], False)]
    dest = tmp_path / "out.txt"
    run([*aws, "s3api", "get-object", "--bucket", unique, "--key", "f.txt", "--version-id", ids[0], str(dest)], env)
    assert dest.read_text() == "first"
    run([*aws, "s3api", "delete-object", "--bucket", unique, "--key", "f.txt", "--version-id", ids[1]], env)
    assert body(s3, unique, "f.txt") == b"first"
    # s3cmd (no versioning commands): its put and del work in a versioned bucket, the versions stay
    cfg = s3cmd_config(tmp_path, server, ec2_keys, v2=False)
    s3cmd = [shutil.which("s3cmd") or "s3cmd", "-c", str(cfg)]
    src.write_text("third")
    run([*s3cmd, "put", str(src), f"s3://{unique}/f.txt"])
    run([*s3cmd, "del", f"s3://{unique}/f.txt"])
    kinds = [kind for _k, _v, _l, kind in versions(s3, unique)]
    assert sorted(kinds) == ["<marker>", "v", "v"]


def test_lifecycle_in_a_versioned_bucket(fresh_server: LampiServer, monkeypatch) -> None:  # noqa: ANN001
    """Expiration writes a delete marker (the object stays a noncurrent version);
    NoncurrentVersionExpiration deletes versions noncurrent for NoncurrentDays."""
    import boto3
    from botocore.config import Config

    monkeypatch.setenv("LAMPI_LIFECYCLE_DAY_SECONDS", "2")
    monkeypatch.setenv("LAMPI_EXPIRER_INTERVAL", "0.5")
    fresh_server.start()
    made = json.loads(fresh_server.cli("credential", "create", "admin", "admin", "--json").stdout)
    s3 = boto3.client("s3", endpoint_url=fresh_server.url, aws_access_key_id=made["access"],
                      aws_secret_access_key=made["secret"], region_name="us-east-1",
                      config=Config(retries={"max_attempts": 1}))
    s3.create_bucket(Bucket="life")
    s3.put_bucket_versioning(Bucket="life", VersioningConfiguration={"Status": "Enabled"})
    old = s3.put_object(Bucket="life", Key="old/a", Body=b"1")["VersionId"]
    s3.put_object(Bucket="life", Key="old/a", Body=b"2")  # old/a's first version is noncurrent from now
    s3.put_object(Bucket="life", Key="exp/b", Body=b"b")
    s3.put_bucket_lifecycle_configuration(Bucket="life", LifecycleConfiguration={"Rules": [
        {"ID": "nc", "Filter": {"Prefix": "old/"}, "Status": "Enabled",
         "NoncurrentVersionExpiration": {"NoncurrentDays": 1}},
        {"ID": "exp", "Filter": {"Prefix": "exp/"}, "Status": "Enabled", "Expiration": {"Days": 1}},
    ]})
    deadline = time.time() + 30
    while time.time() < deadline:
        vs = versions(s3, "life")
        if old not in [v[1] for v in vs] and ("exp/b", True, "<marker>") in [(k, latest, kind) for k, _v, latest, kind
                                                                             in vs]:
            break
        time.sleep(0.5)
    vs = versions(s3, "life")
    assert old not in [v[1] for v in vs]
    assert [(k, latest, kind) for k, _v, latest, kind in vs if k == "exp/b"] == [
        ("exp/b", True, "<marker>"), ("exp/b", False, "v")]
    assert body(s3, "life", "old/a") == b"2"


def test_swift_listing_of_versions_written_by_s3_in_json(s3, swift_conn, unique, server) -> None:  # noqa: ANN001
    """swiftclient's own ``?versions`` paging sees S3's versions with the same ids."""
    s3.create_bucket(Bucket=unique)
    s3.put_bucket_versioning(Bucket=unique, VersioningConfiguration={"Status": "Enabled"})
    ids = [s3.put_object(Bucket=unique, Key=f"k{i % 2}", Body=b"x" * i)["VersionId"] for i in range(4)]
    token = swift_conn.get_auth()[1]
    r = requests.get(f"{swift_conn.url}/{unique}?versions&format=json", headers={"X-Auth-Token": token}, timeout=10)
    got = sorted(v["version_id"] for v in r.json())
    assert got == sorted(ids)


def test_versions_of_keys_that_need_quoting(s3, unique) -> None:  # noqa: ANN001
    """Keys with characters that need quoting keep their versions apart."""
    s3.create_bucket(Bucket=unique)
    s3.put_bucket_versioning(Bucket=unique, VersioningConfiguration={"Status": "Enabled"})
    for key in ("_", ":", " ", "a b/ü?x=1"):
        ids = [s3.put_object(Bucket=unique, Key=key, Body=f"{key}-{i}".encode())["VersionId"] for i in range(2)]
        assert body(s3, unique, key, ids[0]) == f"{key}-0".encode()
        s3.delete_object(Bucket=unique, Key=key, VersionId=ids[1])
        assert body(s3, unique, key) == f"{key}-0".encode()
        c = s3.copy_object(Bucket=unique, Key=key + "-copy", CopySource={"Bucket": unique, "Key": key,
                                                                          "VersionId": ids[0]})
        assert c["CopySourceVersionId"] == ids[0]
