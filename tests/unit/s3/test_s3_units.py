"""Pure functions of the S3 adapter: checksums, XML safety, bucket names, routing."""

from __future__ import annotations

import pytest

from lampi.s3 import checksums
from lampi.s3.bucket import check_bucket_name
from lampi.s3.errors import S3Error
from lampi.s3.router import resolve
from lampi.s3.xml import XMLError, parse

# check values of "123456789" for each algorithm (CRC catalogue; FIPS 180 for SHA)
CHECK = {
    "crc32": "cbf43926", "crc32c": "e3069283", "crc64nvme": "ae8b14860a799888",
    "sha1": "f7c3bc1d808e04732adf679965ccc34ca7ae3441",
    "sha256": "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225",
}


@pytest.mark.parametrize("alg", checksums.ALGORITHMS)
def test_checksum_check_values_streamed(alg: str) -> None:
    h = checksums.new(alg)
    for b in (b"1234", b"", b"56789"):
        h.update(b)
    assert h.digest().hex() == CHECK[alg]
    assert checksums.valid_value(alg, checksums.encode(h.digest()))
    assert not checksums.valid_value(alg, "not base64!")


def test_xml_refuses_entities_and_strips_namespaces() -> None:
    with pytest.raises(XMLError):
        parse(b'<!DOCTYPE x [<!ENTITY a "b">]><Delete>&a;</Delete>')
    with pytest.raises(XMLError):
        parse(b"<Delete><Object>")
    root = parse(b'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>k</Key></Object></Delete>')
    assert root.tag == "Delete" and root.find("Object/Key").text == "k"
    # with the root element an operation takes: another root is refused (→ MalformedXML)
    assert parse(b'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>', "Delete").tag == "Delete"
    with pytest.raises(XMLError):
        parse(b"<Tagging><TagSet/></Tagging>", "Delete")


@pytest.mark.parametrize("name", ["abc", "a.b-c", "x" * 63, "1bucket"])
def test_valid_bucket_names(name: str) -> None:
    check_bucket_name(name)


@pytest.mark.parametrize("name", ["ab", "x" * 64, "Abc", "a_b", "-ab", "ab-", "a..b", "10.0.0.1", "a.-b"])
def test_invalid_bucket_names(name: str) -> None:
    with pytest.raises(S3Error) as exc:
        check_bucket_name(name)
    assert exc.value.code == "InvalidBucketName"


@pytest.mark.parametrize("method,bucket,key,query,headers,op", [
    ("GET", "", "", {}, {}, "ListBuckets"),
    ("GET", "b", "", {}, {}, "ListObjects"),
    ("GET", "b", "", {"list-type": "2"}, {}, "ListObjectsV2"),
    ("GET", "b", "", {"location": ""}, {}, "GetBucketLocation"),
    ("PUT", "b", "", {}, {}, "CreateBucket"),
    ("PUT", "b", "", {"acl": ""}, {}, "PutBucketAcl"),
    ("POST", "b", "", {"delete": ""}, {}, "DeleteObjects"),
    ("PUT", "b", "k", {}, {"x-amz-copy-source": "a/b"}, "CopyObject"),
    ("PUT", "b", "k", {"partNumber": "1", "uploadId": "u"}, {}, "UploadPart"),
    ("POST", "b", "k", {"uploads": ""}, {}, "CreateMultipartUpload"),
    ("GET", "b", "k", {"tagging": ""}, {}, "GetObjectTagging"),
    ("HEAD", "b", "k", {}, {}, "HeadObject"),
    ("GET", "b", "k", {}, {}, "GetObject"),
    ("DELETE", "b", "k", {}, {}, "DeleteObject"),
    ("PUT", "b", "k", {}, {}, "PutObject"),
    ("GET", "b", "k", {"uploadId": "u"}, {}, "ListParts"),
    ("DELETE", "b", "k", {"uploadId": "u"}, {}, "AbortMultipartUpload"),
    ("HEAD", "b", "k", {"tagging": ""}, {}, "HeadObject"),
    ("GET", "b", "", {"versioning": ""}, {}, "GetBucketVersioning"),
    ("PUT", "b", "", {"versioning": ""}, {}, "PutBucketVersioning"),
    ("DELETE", "b", "", {"versioning": ""}, {}, "DeleteBucketVersioning"),  # not DeleteBucket
    ("GET", "b", "", {"versions": ""}, {}, "ListObjectVersions"),
    ("GET", "b", "", {"object-lock": ""}, {}, "GetObjectLockConfiguration"),
    ("PUT", "b", "", {"object-lock": ""}, {}, "PutObjectLockConfiguration"),
    ("GET", "b", "k", {"retention": ""}, {}, "GetObjectRetention"),
    ("PUT", "b", "k", {"retention": "", "versionId": "1"}, {}, "PutObjectRetention"),
    ("GET", "b", "k", {"legal-hold": ""}, {}, "GetObjectLegalHold"),
    ("PUT", "b", "k", {"legal-hold": ""}, {}, "PutObjectLegalHold"),
])
def test_routing(method: str, bucket: str, key: str, query: dict, headers: dict, op: str) -> None:
    assert resolve(method, bucket, key, query, headers).operation == op


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE", "PUT", "POST"])
def test_routing_without_a_query_is_the_general_routing(method: str) -> None:
    """An object request without a query string is resolved at once (the common case);
    the operation and handler are the ones the general routing gives (an unrelated
    query parameter takes that path)."""
    fast = resolve(method, "b", "k", {}, {})
    general = resolve(method, "b", "k", {"x-id": "x"}, {})
    assert (fast.operation, fast.handler) == (general.operation, general.handler)
