"""Multipart checksums as S3 and RGW keep them: FULL_OBJECT CRCs combined from the
parts', COMPOSITE checksums of the parts' checksums, the object's checksum claimed at
CompleteMultipartUpload checked (BadDigest), part checksums on GET ?partNumber, retried
completions answered 200, a part number listed twice."""

from __future__ import annotations

import base64
import hashlib
import zlib

import pytest
from botocore.exceptions import ClientError

MIB = 1024 * 1024
PART1 = b"A" * (5 * MIB)
PART2 = b"B" * 1000


def code(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    e = exc.value.response
    return e["ResponseMetadata"]["HTTPStatusCode"], e["Error"]["Code"]


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def crc32(data: bytes) -> str:
    return b64(zlib.crc32(data).to_bytes(4, "big"))


def _upload_two(s3, bucket: str, key: str, alg: str, ctype: str) -> tuple[str, list[dict]]:  # noqa: ANN001
    up = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm=alg, ChecksumType=ctype)
    assert up["ChecksumAlgorithm"] == alg and up["ChecksumType"] == ctype
    parts = []
    for n, body in ((1, PART1), (2, PART2)):
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=up["UploadId"], PartNumber=n, Body=body,
                           ChecksumAlgorithm=alg)
        parts.append({"PartNumber": n, "ETag": r["ETag"], f"Checksum{alg}": r[f"Checksum{alg}"]})
    return up["UploadId"], parts


def test_full_object_crc32(s3, swift_conn, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    upload_id, parts = _upload_two(s3, unique, "k", "CRC32", "FULL_OBJECT")
    assert parts[0]["ChecksumCRC32"] == crc32(PART1)
    whole = crc32(PART1 + PART2)
    done = s3.complete_multipart_upload(Bucket=unique, Key="k", UploadId=upload_id, ChecksumCRC32=whole,
                                        MultipartUpload={"Parts": parts})
    assert done["ChecksumCRC32"] == whole and done["ChecksumType"] == "FULL_OBJECT"
    h = s3.head_object(Bucket=unique, Key="k")
    assert "ChecksumCRC32" not in h
    h = s3.head_object(Bucket=unique, Key="k", ChecksumMode="ENABLED")
    assert h["ChecksumCRC32"] == whole and h["ChecksumType"] == "FULL_OBJECT"
    # boto3 validates the body against the checksum it is given
    g = s3.get_object(Bucket=unique, Key="k", ChecksumMode="ENABLED")
    assert g["ChecksumCRC32"] == whole and g["Body"].read() == PART1 + PART2
    p2 = s3.get_object(Bucket=unique, Key="k", PartNumber=2, ChecksumMode="ENABLED")
    assert p2["ChecksumCRC32"] == crc32(PART2) and p2["ChecksumType"] == "FULL_OBJECT"
    assert p2["Body"].read() == PART2
    assert swift_conn.get_object(unique, "k")[1] == PART1 + PART2
    # a retried completion answers as the first did
    again = s3.complete_multipart_upload(Bucket=unique, Key="k", UploadId=upload_id, ChecksumCRC32=whole,
                                         MultipartUpload={"Parts": parts})
    assert (again["ETag"], again["ChecksumCRC32"]) == (done["ETag"], done["ChecksumCRC32"])


def test_composite_sha256_and_retry(s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    upload_id, parts = _upload_two(s3, unique, "k", "SHA256", "COMPOSITE")
    digests = [hashlib.sha256(PART1).digest(), hashlib.sha256(PART2).digest()]
    composite = b64(hashlib.sha256(b"".join(digests)).digest()) + "-2"
    done = s3.complete_multipart_upload(Bucket=unique, Key="k", UploadId=upload_id, ChecksumSHA256=composite,
                                        MultipartUpload={"Parts": parts})
    assert done["ChecksumSHA256"] == composite and done["ChecksumType"] == "COMPOSITE"
    p1 = s3.get_object(Bucket=unique, Key="k", PartNumber=1, ChecksumMode="ENABLED")
    assert p1["ChecksumSHA256"] == b64(digests[0]) and p1["ChecksumType"] == "COMPOSITE"
    again = s3.complete_multipart_upload(Bucket=unique, Key="k", UploadId=upload_id,
                                         MultipartUpload={"Parts": parts})
    assert again["ETag"] == done["ETag"] and again["ChecksumSHA256"] == composite
    # once another object took the key, the old upload id is gone for good
    s3.put_object(Bucket=unique, Key="k", Body=b"new")
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=unique, Key="k", UploadId=upload_id, MultipartUpload={"Parts": parts})
    assert code(e) == (404, "NoSuchUpload")
    assert s3.get_object(Bucket=unique, Key="k")["Body"].read() == b"new"


def test_wrong_claimed_checksum_is_bad_digest(s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    upload_id, parts = _upload_two(s3, unique, "k", "CRC32", "FULL_OBJECT")
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=unique, Key="k", UploadId=upload_id, ChecksumCRC32=crc32(b"other"),
                                     MultipartUpload={"Parts": parts})
    assert code(e) == (400, "BadDigest")
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=unique, Key="k")
    assert code(e)[0] == 404
    with pytest.raises(ClientError) as e:  # a checksum of another algorithm than the upload's
        s3.complete_multipart_upload(Bucket=unique, Key="k", UploadId=upload_id,
                                     ChecksumSHA256=b64(hashlib.sha256(b"x").digest()),
                                     MultipartUpload={"Parts": parts})
    assert code(e) == (400, "InvalidRequest")
    # the upload is intact: completing it right still works
    done = s3.complete_multipart_upload(Bucket=unique, Key="k", UploadId=upload_id,
                                        MultipartUpload={"Parts": parts})
    assert done["ChecksumCRC32"] == crc32(PART1 + PART2)


@pytest.mark.parametrize(("alg", "ctype"), [("SHA256", "FULL_OBJECT"), ("SHA1", "FULL_OBJECT"),
                                            ("CRC64NVME", "COMPOSITE")])
def test_checksum_type_the_algorithm_cannot_have(s3, unique, alg: str, ctype: str) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    with pytest.raises(ClientError) as e:
        s3.create_multipart_upload(Bucket=unique, Key="k", ChecksumAlgorithm=alg, ChecksumType=ctype)
    assert code(e) == (400, "InvalidRequest")


def test_part_listed_twice_last_entry_counts(s3, unique) -> None:  # noqa: ANN001
    """A client that re-sent part 1 (the first send finished last) lists both answers."""
    s3.create_bucket(Bucket=unique)
    up = s3.create_multipart_upload(Bucket=unique, Key="k")["UploadId"]
    first = s3.upload_part(Bucket=unique, Key="k", UploadId=up, PartNumber=1, Body=b"B" * 8)["ETag"]
    second = s3.upload_part(Bucket=unique, Key="k", UploadId=up, PartNumber=1, Body=b"A" * 8)["ETag"]
    s3.complete_multipart_upload(Bucket=unique, Key="k", UploadId=up, MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": first}, {"PartNumber": 1, "ETag": second}]})
    assert s3.get_object(Bucket=unique, Key="k")["Body"].read() == b"A" * 8
    up = s3.create_multipart_upload(Bucket=unique, Key="k2")["UploadId"]
    e1 = s3.upload_part(Bucket=unique, Key="k2", UploadId=up, PartNumber=1, Body=PART1)["ETag"]
    e2 = s3.upload_part(Bucket=unique, Key="k2", UploadId=up, PartNumber=2, Body=PART2)["ETag"]
    with pytest.raises(ClientError) as e:  # descending is still refused
        s3.complete_multipart_upload(Bucket=unique, Key="k2", UploadId=up, MultipartUpload={"Parts": [
            {"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]})
    assert code(e) == (400, "InvalidPartOrder")
