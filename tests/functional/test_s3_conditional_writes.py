"""S3 conditional writes (issue 12): ``If-None-Match`` / ``If-Match`` on PutObject,
CopyObject and CompleteMultipartUpload answer 412 (404 for If-Match on a missing
object) and never overwrite; checked in the transaction that commits the write, so of
many racing ``If-None-Match: *`` writers exactly one wins. Also: a retried
CompleteMultipartUpload answers 200 again, and GetObject ``partNumber`` beyond the
parts is 400 InvalidPart."""

from __future__ import annotations

import json
import shutil
import threading

import pytest
from botocore.exceptions import ClientError

from tests.functional.test_s3_clients import aws_env, run


def code(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    e = exc.value.response
    return e["ResponseMetadata"]["HTTPStatusCode"], e["Error"]["Code"]


def test_put_object_if_none_match_and_if_match(s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    etag = s3.put_object(Bucket=unique, Key="k", Body=b"first", IfNoneMatch="*")["ETag"]
    for kw in ({"IfNoneMatch": "*"}, {"IfNoneMatch": etag}, {"IfMatch": '"0123456789abcdef0123456789abcdef"'}):
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=unique, Key="k", Body=b"lost", **kw)
        assert code(exc) == (412, "PreconditionFailed"), kw
    assert s3.get_object(Bucket=unique, Key="k")["Body"].read() == b"first"  # never overwritten
    etag2 = s3.put_object(Bucket=unique, Key="k", Body=b"second", IfMatch=etag)["ETag"]
    s3.put_object(Bucket=unique, Key="k", Body=b"third", IfNoneMatch='"other"')  # another ETag: passes
    assert s3.get_object(Bucket=unique, Key="k")["Body"].read() == b"third" and etag2 != etag
    s3.delete_object(Bucket=unique, Key="k")
    for im in ("*", etag):  # If-Match on a missing object: 404, as AWS
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=unique, Key="k", Body=b"x", IfMatch=im)
        assert code(exc) == (404, "NoSuchKey")
    s3.put_object(Bucket=unique, Key="k", Body=b"again", IfNoneMatch="*")
    # in a versioned bucket the condition is on the current version; a delete marker is no object
    s3.put_bucket_versioning(Bucket=unique, VersioningConfiguration={"Status": "Enabled"})
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=unique, Key="k", Body=b"x", IfNoneMatch="*")
    assert code(exc) == (412, "PreconditionFailed")
    s3.delete_object(Bucket=unique, Key="k")
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=unique, Key="k", Body=b"x", IfMatch="*")
    assert code(exc) == (404, "NoSuchKey")
    s3.put_object(Bucket=unique, Key="k", Body=b"x", IfNoneMatch="*")
    assert len(s3.list_object_versions(Bucket=unique)["Versions"]) == 2  # refused writes left no version


def test_if_none_match_is_race_free(s3, unique) -> None:  # noqa: ANN001
    """Many writers with If-None-Match: * at once: exactly one is stored, the others get
    412 (the check and the commit are one metadata transaction)."""
    s3.create_bucket(Bucket=unique)
    results: list[object] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def writer(i: int) -> None:
        start.wait(timeout=60)
        try:
            s3.put_object(Bucket=unique, Key="once", Body=f"writer-{i}".encode(), IfNoneMatch="*")
            out: object = i
        except ClientError as e:
            out = e.response["ResponseMetadata"]["HTTPStatusCode"]
        with lock:
            results.append(out)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    winners = [r for r in results if r != 412]
    assert len(results) == 8 and len(winners) == 1, results
    assert s3.get_object(Bucket=unique, Key="once")["Body"].read() == f"writer-{winners[0]}".encode()


def test_copy_and_complete_conditions(s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    s3.put_object(Bucket=unique, Key="src", Body=b"source")
    etag = s3.put_object(Bucket=unique, Key="dst", Body=b"dest")["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=unique, Key="dst", CopySource={"Bucket": unique, "Key": "src"}, IfNoneMatch="*")
    assert code(exc) == (412, "PreconditionFailed")
    s3.copy_object(Bucket=unique, Key="dst", CopySource={"Bucket": unique, "Key": "src"}, IfMatch=etag)
    assert s3.get_object(Bucket=unique, Key="dst")["Body"].read() == b"source"

    def upload(key: str, data: bytes) -> tuple[str, list[dict]]:
        up = s3.create_multipart_upload(Bucket=unique, Key=key)["UploadId"]
        e = s3.upload_part(Bucket=unique, Key=key, UploadId=up, PartNumber=1, Body=data)["ETag"]
        return up, [{"PartNumber": 1, "ETag": e}]

    up, parts = upload("dst", b"multipart")
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=unique, Key="dst", UploadId=up, MultipartUpload={"Parts": parts},
                                     IfNoneMatch="*")
    assert code(exc) == (412, "PreconditionFailed")
    assert s3.get_object(Bucket=unique, Key="dst")["Body"].read() == b"source"
    # the upload is still there: the same Complete with a condition that holds succeeds
    cur = s3.head_object(Bucket=unique, Key="dst")["ETag"]
    done = s3.complete_multipart_upload(Bucket=unique, Key="dst", UploadId=up, MultipartUpload={"Parts": parts},
                                        IfMatch=cur)
    assert s3.get_object(Bucket=unique, Key="dst")["Body"].read() == b"multipart"
    up2, parts2 = upload("new", b"n")
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=unique, Key="new", UploadId=up2, MultipartUpload={"Parts": parts2},
                                     IfMatch="*")
    assert code(exc) == (404, "NoSuchKey")
    s3.complete_multipart_upload(Bucket=unique, Key="new", UploadId=up2, MultipartUpload={"Parts": parts2},
                                 IfNoneMatch="*")
    # a retried Complete of a completed upload: 200 with the same answer (clients retry it)
    again = s3.complete_multipart_upload(Bucket=unique, Key="dst", UploadId=up, MultipartUpload={"Parts": parts})
    assert again["ETag"] == done["ETag"] and again["Key"] == "dst"
    # ... but not once the object was replaced, nor for another key
    s3.put_object(Bucket=unique, Key="dst", Body=b"replaced")
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=unique, Key="dst", UploadId=up, MultipartUpload={"Parts": parts})
    assert code(exc) == (404, "NoSuchUpload")
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=unique, Key="new", UploadId=up, MultipartUpload={"Parts": parts})
    assert code(exc) == (404, "NoSuchUpload")


def test_part_number_beyond_the_parts(s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    s3.put_object(Bucket=unique, Key="plain", Body=b"body")
    assert s3.get_object(Bucket=unique, Key="plain", PartNumber=1)["Body"].read() == b"body"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=unique, Key="plain", PartNumber=2)
    assert code(exc) == (400, "InvalidPart")  # as Ceph RGW; AWS: 416 InvalidPartNumber


def test_aws_cli_conditional_put(server, ec2_keys, unique, tmp_path) -> None:  # noqa: ANN001
    aws = [shutil.which("aws") or "aws", "--endpoint-url", server.url, "--output", "json"]
    env = aws_env(ec2_keys, tmp_path)
    run([*aws, "s3api", "create-bucket", "--bucket", unique], env)
    src = tmp_path / "f"
    src.write_bytes(b"one")
    run([*aws, "s3api", "put-object", "--bucket", unique, "--key", "f", "--body", str(src), "--if-none-match", "*"],
        env)
    src.write_bytes(b"two")
    p = run([*aws, "s3api", "put-object", "--bucket", unique, "--key", "f", "--body", str(src),
             "--if-none-match", "*"], env, check=False)
    assert p.returncode != 0 and "PreconditionFailed" in p.stderr
    out = json.loads(run([*aws, "s3api", "head-object", "--bucket", unique, "--key", "f"], env).stdout)
    assert out["ContentLength"] == 3
