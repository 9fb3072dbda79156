"""PublicAccessBlock, OwnershipControls, GetObjectAttributes, and the finer points of S3
ACLs: group grants listed first, exact grant lists (header grants, revoke-all),
``bucket-owner-*`` canned ACLs, object owners, one Owner ID/DisplayName in every
response, the owner's bucket re-create, RGW's ``<tenant>:<bucket>`` paths. boto3 and
raw HTTP; Swift clients for the one-namespace cases (a PublicAccessBlock holds for
Swift's ACLs too)."""

from __future__ import annotations

import hashlib

import pytest
import requests
import swiftclient
from botocore.exceptions import ClientError

from tests.functional.test_s3_acl import ALL_USERS, AUTH_USERS, admin_project_id, new_project_keys
from tests.functional.test_s3_api import code
from tests.functional.test_s3_features import signed_request, xml_code


@pytest.fixture(scope="module")
def alt(server):  # noqa: ANN001, ANN201
    return new_project_keys(server)


def who(grant: dict) -> str:
    return grant["Grantee"].get("URI") or grant["Grantee"]["ID"]


PAB_ALL_OFF = {"BlockPublicAcls": False, "IgnorePublicAcls": False, "BlockPublicPolicy": False,
               "RestrictPublicBuckets": False}


def test_public_access_block(server, s3, swift_conn, alt, unique) -> None:  # noqa: ANN001
    storage = swift_conn.get_auth()[0]
    s3.create_bucket(Bucket=unique)
    with pytest.raises(ClientError) as exc:
        s3.get_public_access_block(Bucket=unique)
    assert code(exc) == (404, "NoSuchPublicAccessBlockConfiguration")
    s3.put_object(Bucket=unique, Key="pub", Body=b"p", ACL="public-read")
    swift_conn.post_container(unique, {"X-Container-Read": ".r:*,.rlistings"})  # Swift-public too
    assert requests.get(f"{storage}/{unique}/pub", timeout=10).content == b"p"
    # IgnorePublicAcls: every public grant counts for nothing, at every URL
    s3.put_public_access_block(Bucket=unique, PublicAccessBlockConfiguration={**PAB_ALL_OFF,
                                                                              "IgnorePublicAcls": True})
    assert s3.get_public_access_block(Bucket=unique)["PublicAccessBlockConfiguration"] == {
        **PAB_ALL_OFF, "IgnorePublicAcls": True}
    for url in (f"{storage}/{unique}/pub", f"{server.url}/{unique}/pub", f"{storage}/{unique}",
                f"{server.url}/{unique}/"):
        assert requests.get(url, timeout=10).status_code in (401, 403), url
    with pytest.raises(ClientError) as exc:
        alt[2].get_object(Bucket=unique, Key="pub")
    assert code(exc) == (403, "AccessDenied")
    assert s3.get_object(Bucket=unique, Key="pub")["Body"].read() == b"p"  # the owner is not public
    # BlockPublicAcls: new public ACLs refused (S3 and Swift), private ones fine
    s3.put_public_access_block(Bucket=unique, PublicAccessBlockConfiguration={**PAB_ALL_OFF,
                                                                              "BlockPublicAcls": True})
    assert requests.get(f"{storage}/{unique}/pub", timeout=10).content == b"p"  # not ignored now
    for call in (lambda: s3.put_bucket_acl(Bucket=unique, ACL="public-read"),
                 lambda: s3.put_bucket_acl(Bucket=unique, GrantRead=f'uri="{AUTH_USERS}"'),
                 lambda: s3.put_object(Bucket=unique, Key="new", Body=b"n", ACL="public-read"),
                 lambda: s3.put_object_acl(Bucket=unique, Key="pub", ACL="authenticated-read"),
                 lambda: s3.create_multipart_upload(Bucket=unique, Key="m", ACL="public-read-write"),
                 lambda: s3.copy_object(Bucket=unique, Key="c", CopySource={"Bucket": unique, "Key": "pub"},
                                        ACL="public-read")):
        with pytest.raises(ClientError) as exc:
            call()
        assert code(exc) == (403, "AccessDenied")
    s3.put_object(Bucket=unique, Key="new", Body=b"n", ACL="private")
    for acl in (".r:*", "*:*"):
        with pytest.raises(swiftclient.ClientException) as sexc:
            swift_conn.post_container(unique, {"X-Container-Read": acl})
        assert sexc.value.http_status == 403
    with pytest.raises(swiftclient.ClientException) as sexc:
        swift_conn.put_container(unique, {"X-Container-Write": "*:*"})
    assert sexc.value.http_status == 403
    swift_conn.post_container(unique, {"X-Container-Read": f"{alt[0]}:*"})  # not public: fine
    assert alt[2].get_object(Bucket=unique, Key="new")["Body"].read() == b"n"
    s3.delete_public_access_block(Bucket=unique)
    with pytest.raises(ClientError) as exc:
        s3.get_public_access_block(Bucket=unique)
    assert code(exc) == (404, "NoSuchPublicAccessBlockConfiguration")
    # RestrictPublicBuckets: a public policy serves the owner's project only
    s3.put_bucket_policy(Bucket=unique, Policy='{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
                         f'"Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::{unique}/*"}}]}}')
    assert requests.get(f"{server.url}/{unique}/new", timeout=10).content == b"n"
    s3.put_public_access_block(Bucket=unique, PublicAccessBlockConfiguration={**PAB_ALL_OFF,
                                                                              "RestrictPublicBuckets": True})
    assert requests.get(f"{server.url}/{unique}/new", timeout=10).status_code == 403
    assert requests.get(f"{storage}/{unique}/new", timeout=10).status_code == 401
    assert s3.get_object(Bucket=unique, Key="new")["Body"].read() == b"n"


def test_public_access_block_bad_input(server, s3, ec2_keys, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    url = f"{server.url}/{unique}?publicAccessBlock"
    for body in (b"", b"<nope", b"<Other/>", b"<PublicAccessBlockConfiguration><BlockPublicAcls>maybe"
                 b"</BlockPublicAcls></PublicAccessBlockConfiguration>"):
        r = signed_request("PUT", url, ec2_keys, body=body)
        assert r.status_code == 400 and xml_code(r) == "MalformedXML", (body, r.text)
    assert signed_request("GET", url, ec2_keys).status_code == 404
    url = f"{server.url}/{unique}?ownershipControls"
    r = signed_request("PUT", url, ec2_keys, body=b"<OwnershipControls><Rule><ObjectOwnership>Mine"
                       b"</ObjectOwnership></Rule></OwnershipControls>")
    assert r.status_code == 400 and xml_code(r) == "InvalidArgument"
    assert signed_request("PUT", url, ec2_keys, body=b"<x").status_code == 400
    assert xml_code(signed_request("GET", url, ec2_keys)) == "OwnershipControlsNotFoundError"


def test_object_owners_and_ownership_controls(server, s3, alt, unique) -> None:  # noqa: ANN001
    """ObjectWriter (the default): objects another project writes are its own — in its
    ACL, the listings and uploads; the bucket owner keeps the data but not their ACL.
    BucketOwnerPreferred, BucketOwnerEnforced (ACLs off)."""
    pid, (apid, aname, a, _) = admin_project_id_from(s3), alt
    s3.create_bucket(Bucket=unique)
    s3.put_bucket_acl(Bucket=unique, GrantWrite=f'id="{apid}"', GrantRead=f'id="{apid}"',
                      GrantFullControl=f'id="{pid}"')
    a.put_object(Bucket=unique, Key="theirs", Body=b"t")
    s3.put_object(Bucket=unique, Key="mine", Body=b"m")
    owner_of = {o["Key"]: o["Owner"] for o in s3.list_objects(Bucket=unique)["Contents"]}
    assert owner_of == {"mine": {"ID": pid, "DisplayName": "admin"}, "theirs": {"ID": apid, "DisplayName": aname}}
    v2 = s3.list_objects_v2(Bucket=unique, FetchOwner=True)["Contents"]
    assert {o["Key"]: o["Owner"]["ID"] for o in v2} == {"mine": pid, "theirs": apid}
    acl = a.get_object_acl(Bucket=unique, Key="theirs")
    assert acl["Owner"] == {"ID": apid, "DisplayName": aname}
    assert [(who(g), g["Permission"]) for g in acl["Grants"]] == [(apid, "FULL_CONTROL")]
    assert a.get_object(Bucket=unique, Key="theirs")["Body"].read() == b"t"  # its owner reads it
    assert s3.get_object(Bucket=unique, Key="theirs")["Body"].read() == b"t"  # the bucket's project too
    # the bucket owner's admin key is the cloud admin here; a member of the bucket's
    # project is refused the ACL of an object it does not own, as S3 and RGW refuse it
    mpid, mname, member, _ = new_project_keys(server)
    member.create_bucket(Bucket=unique + "-m")
    member.put_bucket_acl(Bucket=unique + "-m", GrantWrite=f'id="{apid}"')
    a.put_object(Bucket=unique + "-m", Key="theirs", Body=b"t")
    with pytest.raises(ClientError) as exc:
        member.get_object_acl(Bucket=unique + "-m", Key="theirs")
    assert code(exc) == (403, "AccessDenied")
    assert member.get_object(Bucket=unique + "-m", Key="theirs")["Body"].read() == b"t"
    a.put_object(Bucket=unique + "-m", Key="given", Body=b"g", ACL="bucket-owner-full-control")
    assert {(who(g), g["Permission"]) for g in member.get_object_acl(Bucket=unique + "-m", Key="given")["Grants"]} \
        == {(apid, "FULL_CONTROL"), (mpid, "FULL_CONTROL")}
    a.put_object(Bucket=unique + "-m", Key="read", Body=b"r", ACL="bucket-owner-read")
    assert {(who(g), g["Permission"]) for g in a.get_object_acl(Bucket=unique + "-m", Key="read")["Grants"]} \
        == {(apid, "FULL_CONTROL"), (mpid, "READ")}
    # uploads: Initiator and Owner are the project the object will belong to
    up = a.create_multipart_upload(Bucket=unique + "-m", Key="mp")["UploadId"]
    mine = member.create_multipart_upload(Bucket=unique + "-m", Key="mp2")["UploadId"]
    ups = {u["Key"]: u for u in member.list_multipart_uploads(Bucket=unique + "-m")["Uploads"]}
    assert ups["mp"]["Initiator"] == ups["mp"]["Owner"] == {"ID": apid, "DisplayName": aname}
    assert ups["mp2"]["Owner"] == {"ID": mpid, "DisplayName": mname}
    assert member.list_parts(Bucket=unique + "-m", Key="mp", UploadId=up)["Owner"]["ID"] == apid
    for key, uid in (("mp", up), ("mp2", mine)):
        member.abort_multipart_upload(Bucket=unique + "-m", Key=key, UploadId=uid)
    # BucketOwnerPreferred: bucket-owner-full-control hands the object to the bucket owner
    member.put_bucket_ownership_controls(Bucket=unique + "-m", OwnershipControls={
        "Rules": [{"ObjectOwnership": "BucketOwnerPreferred"}]})
    a.put_object(Bucket=unique + "-m", Key="handed", Body=b"h", ACL="bucket-owner-full-control")
    assert member.get_object_acl(Bucket=unique + "-m", Key="handed")["Owner"]["ID"] == mpid
    # BucketOwnerEnforced: refused while the bucket ACL grants others; then ACLs are off
    with pytest.raises(ClientError) as exc:
        member.put_bucket_ownership_controls(Bucket=unique + "-m", OwnershipControls={
            "Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]})
    assert code(exc) == (400, "InvalidBucketAclWithObjectOwnership")
    member.put_bucket_acl(Bucket=unique + "-m", ACL="private")
    member.put_bucket_ownership_controls(Bucket=unique + "-m", OwnershipControls={
        "Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]})
    assert member.get_bucket_ownership_controls(Bucket=unique + "-m")["OwnershipControls"]["Rules"] == [
        {"ObjectOwnership": "BucketOwnerEnforced"}]
    member.put_object(Bucket=unique + "-m", Key="e", Body=b"e", ACL="bucket-owner-full-control")
    for call in (lambda: member.put_object(Bucket=unique + "-m", Key="e2", Body=b"e", ACL="public-read"),
                 lambda: member.put_bucket_acl(Bucket=unique + "-m", ACL="private"),
                 lambda: member.put_object_acl(Bucket=unique + "-m", Key="e", ACL="private")):
        with pytest.raises(ClientError) as exc:
            call()
        assert code(exc) == (400, "AccessControlListNotSupported")
    member.delete_bucket_ownership_controls(Bucket=unique + "-m")
    with pytest.raises(ClientError) as exc:
        member.get_bucket_ownership_controls(Bucket=unique + "-m")
    assert code(exc) == (404, "OwnershipControlsNotFoundError")


def admin_project_id_from(s3) -> str:  # noqa: ANN001
    return s3.list_buckets()["Owner"]["ID"]


def test_acl_grant_lists(s3, swift_conn, alt, unique) -> None:  # noqa: ANN001
    """Groups before canonical users; canned ACLs add the owner's FULL_CONTROL, header
    grants and an AccessControlPolicy body list exactly their grants; a body without
    grants revokes them all; one header may name several grantees."""
    pid, apid = admin_project_id(swift_conn), alt[0]
    s3.create_bucket(Bucket=unique, ACL="public-read-write")
    got = s3.get_bucket_acl(Bucket=unique)["Grants"]
    assert [(who(g), g["Permission"]) for g in got] == [(ALL_USERS, "READ"), (ALL_USERS, "WRITE"),
                                                        (pid, "FULL_CONTROL")]
    s3.put_bucket_acl(Bucket=unique, GrantRead=f'id="{apid}", uri="{AUTH_USERS}"', GrantWriteACP=f'id="{apid}"')
    assert [(who(g), g["Permission"]) for g in s3.get_bucket_acl(Bucket=unique)["Grants"]] == [
        (AUTH_USERS, "READ"), (apid, "READ"), (apid, "WRITE_ACP")]
    owner = s3.get_bucket_acl(Bucket=unique)["Owner"]
    s3.put_bucket_acl(Bucket=unique, AccessControlPolicy={"Owner": owner, "Grants": []})
    assert s3.get_bucket_acl(Bucket=unique)["Grants"] == []
    assert s3.list_objects_v2(Bucket=unique)["KeyCount"] == 0  # the owner keeps its rights
    with pytest.raises(ClientError) as exc:
        alt[2].list_objects_v2(Bucket=unique)
    assert code(exc) == (403, "AccessDenied")
    s3.put_object(Bucket=unique, Key="o", Body=b"o", GrantRead=f'id="{apid}"')
    assert [(who(g), g["Permission"]) for g in s3.get_object_acl(Bucket=unique, Key="o")["Grants"]] == [
        (apid, "READ")]
    assert alt[2].get_object(Bucket=unique, Key="o")["Body"].read() == b"o"
    s3.put_object_acl(Bucket=unique, Key="o", ACL="authenticated-read")
    assert [(who(g), g["Permission"]) for g in s3.get_object_acl(Bucket=unique, Key="o")["Grants"]] == [
        (AUTH_USERS, "READ"), (pid, "FULL_CONTROL")]


def test_owner_ids_everywhere(server, s3, swift_conn, unique) -> None:  # noqa: ANN001
    """ID = project id, DisplayName = project name: ListBuckets, ListObjects (v1, v2 with
    fetch-owner), ListObjectVersions, GetBucketAcl, GetObjectAcl, ListParts,
    ListMultipartUploads (tests/functional/test_conformance_setup.py checks the same
    against what the s3-tests runner tells the suite)."""
    pid = admin_project_id(swift_conn)
    want = {"ID": pid, "DisplayName": "admin"}
    s3.create_bucket(Bucket=unique)
    s3.put_object(Bucket=unique, Key="k", Body=b"k")
    up = s3.create_multipart_upload(Bucket=unique, Key="m")["UploadId"]
    assert s3.list_buckets()["Owner"] == want
    assert s3.list_objects(Bucket=unique)["Contents"][0]["Owner"] == want
    # and the listing's LastModified is HEAD's (whole seconds, as AWS and RGW list them)
    head = s3.head_object(Bucket=unique, Key="k")["LastModified"]
    assert s3.list_objects(Bucket=unique)["Contents"][0]["LastModified"] == head
    assert s3.list_object_versions(Bucket=unique)["Versions"][0]["LastModified"] == head
    assert s3.list_objects_v2(Bucket=unique, FetchOwner=True)["Contents"][0]["Owner"] == want
    assert s3.list_object_versions(Bucket=unique)["Versions"][0]["Owner"] == want
    assert s3.get_bucket_acl(Bucket=unique)["Owner"] == want
    assert s3.get_object_acl(Bucket=unique, Key="k")["Owner"] == want
    parts = s3.list_parts(Bucket=unique, Key="m", UploadId=up)
    assert parts["Owner"] == parts["Initiator"] == want
    u = s3.list_multipart_uploads(Bucket=unique)["Uploads"][0]
    assert u["Owner"] == u["Initiator"] == want
    s3.abort_multipart_upload(Bucket=unique, Key="m", UploadId=up)


def test_get_object_attributes(server, s3, ec2_keys, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    body = b"x" * 1024
    s3.put_object(Bucket=unique, Key="plain", Body=body, ChecksumAlgorithm="SHA256")
    got = s3.get_object_attributes(Bucket=unique, Key="plain",
                                   ObjectAttributes=["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"])
    assert got["ETag"] == hashlib.md5(body).hexdigest() and got["ObjectSize"] == 1024
    assert got["StorageClass"] == "STANDARD" and "ObjectParts" not in got and got["Checksum"]["ChecksumSHA256"]
    part = 5 * 1024 * 1024
    up = s3.create_multipart_upload(Bucket=unique, Key="mp")["UploadId"]
    parts = [{"PartNumber": n, "ETag": s3.upload_part(Bucket=unique, Key="mp", UploadId=up, PartNumber=n,
                                                      Body=bytes([n]) * (part if n < 3 else 10))["ETag"]}
             for n in (1, 2, 3)]
    etag = s3.complete_multipart_upload(Bucket=unique, Key="mp", UploadId=up,
                                        MultipartUpload={"Parts": parts})["ETag"].strip('"')
    got = s3.get_object_attributes(Bucket=unique, Key="mp", ObjectAttributes=["ETag", "ObjectParts", "ObjectSize"],
                                   MaxParts=1, PartNumberMarker=1)
    assert got["ETag"] == etag and got["ObjectSize"] == 2 * part + 10
    op = got["ObjectParts"]
    assert (op["TotalPartsCount"], op["MaxParts"], op["PartNumberMarker"], op["IsTruncated"], op["NextPartNumberMarker"]) \
        == (3, 1, 1, True, 2)
    assert [(p["PartNumber"], p["Size"]) for p in op["Parts"]] == [(2, part)]
    r = signed_request("GET", f"{server.url}/{unique}/plain?attributes", ec2_keys)
    assert r.status_code == 400 and xml_code(r) == "InvalidArgument"  # no x-amz-object-attributes
    r = signed_request("GET", f"{server.url}/{unique}/plain?attributes", ec2_keys,
                       headers={"x-amz-object-attributes": "ETag,Everything"})
    assert r.status_code == 400 and xml_code(r) == "InvalidArgument"
    with pytest.raises(ClientError) as exc:
        s3.get_object_attributes(Bucket=unique, Key="missing", ObjectAttributes=["ETag"])
    assert code(exc) == (404, "NoSuchKey")


def test_tenant_bucket_paths(server, alt, unique) -> None:  # noqa: ANN001
    """RGW's ``<tenant>:<bucket>`` path names a bucket of that project (id or name)."""
    from botocore.handlers import validate_bucket_name

    apid, aname, a, _ = alt
    a.create_bucket(Bucket=unique)
    a.put_object(Bucket=unique, Key="k", Body=b"k")
    a.meta.events.unregister("before-parameter-build.s3", validate_bucket_name)
    for name in (f"{aname}:{unique}", f"{apid}:{unique}", f":{unique}"):
        assert [o["Key"] for o in a.list_objects(Bucket=name)["Contents"]] == ["k"], name
    with pytest.raises(ClientError) as exc:
        a.list_objects(Bucket=f"someone-else:{unique}")
    assert code(exc) == (404, "NoSuchBucket")
