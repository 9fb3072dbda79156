"""S3 multipart uploads with real clients (boto3 at its defaults, aws cli, s3cmd, rclone),
read across APIs (S3 multipart through Swift, Swift SLO/DLO through S3), and bad input
that must get S3's errors and store nothing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from tests.functional.test_s3_clients import RCLONE, S3CMD, aws_env, rclone_env, run, s3cmd_config

MiB = 1024 * 1024


def code(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    e = exc.value.response
    return e["ResponseMetadata"]["HTTPStatusCode"], e["Error"]["Code"]


def md5_file(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def random_file(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 4 * MiB)
            f.write(os.urandom(n))
            left -= n
    return path


def composite(md5s: list[str]) -> str:
    return hashlib.md5(b"".join(bytes.fromhex(m) for m in md5s)).hexdigest() + f"-{len(md5s)}"


def signer(server, keys):  # noqa: ANN001, ANN201
    """send(method, path, body, headers): a raw SigV4-signed request (bad input boto3 won't send)."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    creds = Credentials(keys["access"], keys["secret"])

    def send(method: str, path: str, body: bytes = b"", headers: dict | None = None) -> requests.Response:
        req = AWSRequest(method=method, url=server.url + path, data=body, headers=dict(headers or {}))
        S3SigV4Auth(creds, "s3", "us-east-1").add_auth(req)
        return requests.request(method, server.url + path, data=body, headers=dict(req.headers.items()), timeout=60)

    return send


# -- boto3 -----------------------------------------------------------------------------


def test_boto3_upload_file_50mb_and_swift_reads_it(s3, swift_conn, unique, tmp_path) -> None:  # noqa: ANN001
    """upload_file at boto3's defaults: 8 MiB parts, CRC32 checksums in aws-chunked trailers."""
    s3.create_bucket(Bucket=unique)
    src = random_file(tmp_path / "big.bin", 50 * 1000 * 1000)
    s3.upload_file(str(src), unique, "big.bin", ExtraArgs={"Metadata": {"color": "blue"}, "ContentType": "x/big"})
    want = md5_file(src)
    head = s3.head_object(Bucket=unique, Key="big.bin", ChecksumMode="ENABLED")
    assert head["ContentLength"] == 50 * 1000 * 1000
    assert head["ETag"].strip('"').endswith("-6")  # 8 MiB parts: 5 full + 1 of 8,056,960 bytes
    assert head["Metadata"] == {"color": "blue"} and head["ContentType"] == "x/big"
    assert head.get("ChecksumCRC32", "").endswith("-6")  # S3's composite checksum
    dst = tmp_path / "back.bin"
    s3.download_file(unique, "big.bin", str(dst))
    assert md5_file(dst) == want
    # the listing shows the real size
    obj = s3.list_objects_v2(Bucket=unique)["Contents"][0]
    assert obj["Size"] == 50 * 1000 * 1000 and obj["ETag"] == head["ETag"]
    # one namespace: Swift reads it as a large object with its real size, bytes and S3 ETag
    hdrs = swift_conn.head_object(unique, "big.bin")
    assert int(hdrs["content-length"]) == 50 * 1000 * 1000
    assert hdrs["etag"].strip('"') == head["ETag"].strip('"')
    assert hdrs["x-object-meta-color"] == "blue" and hdrs["content-type"] == "x/big"
    h = hashlib.md5()
    _, body = swift_conn.get_object(unique, "big.bin", resp_chunk_size=1 << 20)
    for chunk in body:
        h.update(chunk)
    assert h.hexdigest() == want
    _, listing = swift_conn.get_container(unique)
    assert listing[0]["bytes"] == 50 * 1000 * 1000
    # a ranged Swift GET across a part boundary (8 MiB)
    hdrs, part = swift_conn.get_object(unique, "big.bin", headers={"Range": f"bytes={8 * MiB - 10}-{8 * MiB + 9}"})
    with open(src, "rb") as f:
        f.seek(8 * MiB - 10)
        assert part == f.read(20)
    # swift delete (it sees X-Static-Large-Object) removes it
    swift_conn.delete_object(unique, "big.bin", query_string="multipart-manifest=delete")
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=unique, Key="big.bin")
    assert code(exc)[0] == 404


def test_low_level_calls_ranges_and_part_numbers(s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    p1, p2, p3 = os.urandom(5 * MiB), os.urandom(5 * MiB), b"tail" * 100
    up = s3.create_multipart_upload(Bucket=unique, Key="k", ContentType="text/x-mine",
                                    Metadata={"a": "1"}, Tagging="t=v")
    uid = up["UploadId"]
    etags = [s3.upload_part(Bucket=unique, Key="k", UploadId=uid, PartNumber=n, Body=b)["ETag"]
             for n, b in ((1, p1), (2, p2), (3, p3))]
    # re-uploading a part replaces it
    etags[2] = s3.upload_part(Bucket=unique, Key="k", UploadId=uid, PartNumber=3, Body=p3)["ETag"]
    parts = s3.list_parts(Bucket=unique, Key="k", UploadId=uid, MaxParts=2)
    assert [p["PartNumber"] for p in parts["Parts"]] == [1, 2] and parts["IsTruncated"]
    assert parts["Parts"][0]["Size"] == 5 * MiB and parts["Parts"][0]["ETag"] == etags[0]
    rest = s3.list_parts(Bucket=unique, Key="k", UploadId=uid, PartNumberMarker=parts["NextPartNumberMarker"])
    assert [p["PartNumber"] for p in rest["Parts"]] == [3] and not rest["IsTruncated"]
    uploads = s3.list_multipart_uploads(Bucket=unique)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("k", uid)]
    # the object does not exist before Complete
    with pytest.raises(ClientError):
        s3.head_object(Bucket=unique, Key="k")
    done = s3.complete_multipart_upload(
        Bucket=unique, Key="k", UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": i + 1, "ETag": e} for i, e in enumerate(etags)]})
    want_etag = composite([hashlib.md5(b).hexdigest() for b in (p1, p2, p3)])
    assert done["ETag"] == f'"{want_etag}"'
    data = p1 + p2 + p3
    got = s3.get_object(Bucket=unique, Key="k")
    assert got["Body"].read() == data and got["ContentType"] == "text/x-mine" and got["Metadata"] == {"a": "1"}
    assert got["TagCount"] == 1
    # a range across the boundary of parts 1 and 2, and one across 2 and 3
    for a, b in ((5 * MiB - 7, 5 * MiB + 8), (10 * MiB - 3, 10 * MiB + 50)):
        r = s3.get_object(Bucket=unique, Key="k", Range=f"bytes={a}-{b}")
        assert r["Body"].read() == data[a:b + 1] and r["ContentRange"] == f"bytes {a}-{b}/{len(data)}"
    # partNumber
    r = s3.get_object(Bucket=unique, Key="k", PartNumber=2)
    assert r["Body"].read() == p2 and r["PartsCount"] == 3
    assert r["ContentRange"] == f"bytes {5 * MiB}-{10 * MiB - 1}/{len(data)}"
    h = s3.head_object(Bucket=unique, Key="k", PartNumber=3)
    assert h["ContentLength"] == len(p3) and h["PartsCount"] == 3
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=unique, Key="k", PartNumber=4)
    assert code(exc) == (400, "InvalidPart")  # as Ceph RGW (AWS: 416 InvalidPartNumber)
    assert s3.list_multipart_uploads(Bucket=unique).get("Uploads", []) == []
    # UploadPartCopy with a range, reading through the multipart object just made
    up2 = s3.create_multipart_upload(Bucket=unique, Key="copy")["UploadId"]
    c1 = s3.upload_part_copy(Bucket=unique, Key="copy", UploadId=up2, PartNumber=1,
                             CopySource={"Bucket": unique, "Key": "k"}, CopySourceRange=f"bytes=1-{5 * MiB}")
    c2 = s3.upload_part_copy(Bucket=unique, Key="copy", UploadId=up2, PartNumber=2,
                             CopySource={"Bucket": unique, "Key": "k"}, CopySourceRange=f"bytes={10 * MiB}-{10 * MiB + 99}")
    s3.complete_multipart_upload(Bucket=unique, Key="copy", UploadId=up2, MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": c1["CopyPartResult"]["ETag"]}, {"PartNumber": 2, "ETag": c2["CopyPartResult"]["ETag"]}]})
    assert s3.get_object(Bucket=unique, Key="copy")["Body"].read() == data[1:5 * MiB + 1] + data[10 * MiB:10 * MiB + 100]
    with pytest.raises(ClientError) as exc:
        s3.upload_part_copy(Bucket=unique, Key="copy", UploadId=up2, PartNumber=1,
                            CopySource={"Bucket": unique, "Key": "k"}, CopySourceRange=f"bytes=0-{len(data)}")
    assert code(exc)[1] == "NoSuchUpload"  # completed: the upload is gone
    # CopyObject of a multipart object gives the data
    s3.copy_object(Bucket=unique, Key="plain", CopySource={"Bucket": unique, "Key": "k"})
    assert s3.get_object(Bucket=unique, Key="plain")["Body"].read() == data


def test_list_multipart_uploads_paging_and_delimiter(s3, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    keys = ["a/1", "a/2", "b", "c/x/1", "c/y", "d"]
    ids = {}
    for k in keys:
        ids[k] = s3.create_multipart_upload(Bucket=unique, Key=k)["UploadId"]
    second_b = s3.create_multipart_upload(Bucket=unique, Key="b")["UploadId"]
    r = s3.list_multipart_uploads(Bucket=unique, Delimiter="/")
    assert [u["Key"] for u in r["Uploads"]] == ["b", "b", "d"]
    assert [u["UploadId"] for u in r["Uploads"]][:2] == [ids["b"], second_b]  # oldest first
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["a/", "c/"]
    r = s3.list_multipart_uploads(Bucket=unique, Prefix="c/", Delimiter="/")
    assert "Uploads" not in r and [p["Prefix"] for p in r["CommonPrefixes"]] == ["c/x/"] or \
        [u["Key"] for u in r.get("Uploads", [])] == ["c/y"]
    # paging by key-marker / upload-id-marker
    seen = []
    kw: dict = {}
    while True:
        r = s3.list_multipart_uploads(Bucket=unique, MaxUploads=2, **kw)
        seen += [(u["Key"], u["UploadId"]) for u in r.get("Uploads", [])]
        if not r["IsTruncated"]:
            break
        kw = {"KeyMarker": r["NextKeyMarker"], "UploadIdMarker": r["NextUploadIdMarker"]}
    assert seen == sorted([(k, i) for k, i in ids.items()] + [("b", second_b)])
    for k, i in [*ids.items(), ("b", second_b)]:
        s3.abort_multipart_upload(Bucket=unique, Key=k, UploadId=i)
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=unique)
    s3.delete_bucket(Bucket=unique)


# -- bad input --------------------------------------------------------------------------


def test_bad_completes_store_nothing(server, s3, ec2_keys, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    uid = s3.create_multipart_upload(Bucket=unique, Key="k")["UploadId"]
    small = [s3.upload_part(Bucket=unique, Key="k", UploadId=uid, PartNumber=n, Body=b"x" * 1000)["ETag"]
             for n in (1, 2)]

    def complete(parts):  # noqa: ANN001, ANN202
        return s3.complete_multipart_upload(Bucket=unique, Key="k", UploadId=uid, MultipartUpload={"Parts": parts})

    with pytest.raises(ClientError) as exc:  # a part < 5 MiB that is not the last
        complete([{"PartNumber": 1, "ETag": small[0]}, {"PartNumber": 2, "ETag": small[1]}])
    assert code(exc) == (400, "EntityTooSmall")
    with pytest.raises(ClientError) as exc:
        complete([{"PartNumber": 1, "ETag": '"0123456789abcdef0123456789abcdef"'}])
    assert code(exc) == (400, "InvalidPart")
    with pytest.raises(ClientError) as exc:
        complete([{"PartNumber": 3, "ETag": small[0]}])
    assert code(exc) == (400, "InvalidPart")
    with pytest.raises(ClientError) as exc:
        complete([{"PartNumber": 2, "ETag": small[1]}, {"PartNumber": 1, "ETag": small[0]}])
    assert code(exc) == (400, "InvalidPartOrder")
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=unique, Key="k", UploadId="nope",
                                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": small[0]}]})
    assert code(exc) == (404, "NoSuchUpload")
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket=unique, Key="k", UploadId="nope", PartNumber=1, Body=b"x")
    assert code(exc) == (404, "NoSuchUpload")
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket=unique, Key="other", UploadId=uid, PartNumber=1, Body=b"x")  # id of another key
    assert code(exc) == (404, "NoSuchUpload")
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket=unique, Key="k", UploadId="nope")
    assert code(exc) == (404, "NoSuchUpload")
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket=unique, Key="k", UploadId=uid, PartNumber=10001, Body=b"x")
    assert code(exc) == (400, "InvalidArgument")
    with pytest.raises(ClientError) as exc:  # a wrong Content-MD5 on a part: nothing replaced
        s3.upload_part(Bucket=unique, Key="k", UploadId=uid, PartNumber=1, Body=b"y" * 1000,
                       ContentMD5="1B2M2Y8AsgTpgAmY7PhCfg==")
    assert code(exc) == (400, "BadDigest")
    send = signer(server, ec2_keys)
    path = f"/{unique}/k?uploadId={uid}"
    r = send("POST", path, b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>")
    assert r.status_code == 400 and "<Code>MalformedXML</Code>" in r.text
    r = send("POST", path, b"<CompleteMultipartUpload><Part><PartNumber>x</PartNumber><ETag>a</ETag></Part>"
                           b"</CompleteMultipartUpload>")
    assert r.status_code == 400 and "<Code>MalformedXML</Code>" in r.text
    bomb = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
            b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&b;</ETag></Part>"
            b"</CompleteMultipartUpload>")
    r = send("POST", path, bomb)
    assert r.status_code == 400 and "<Code>MalformedXML</Code>" in r.text
    big = b"<CompleteMultipartUpload>" + b"<!-- pad -->" * (5 * MiB // 12) + b"</CompleteMultipartUpload>"
    r = send("POST", path, big)
    assert r.status_code == 400 and "<Code>MaxMessageLengthExceeded</Code>" in r.text
    # nothing was stored, the upload and its parts are intact
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=unique, Key="k")
    assert code(exc)[0] == 404
    parts = s3.list_parts(Bucket=unique, Key="k", UploadId=uid)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in parts] == [(1, small[0], 1000), (2, small[1], 1000)]
    # the last part may be small: a single small part completes
    done = complete([{"PartNumber": 2, "ETag": small[1]}])
    assert done["ETag"] == f'"{composite([small[1].strip(chr(34))])}"'
    assert s3.get_object(Bucket=unique, Key="k")["Body"].read() == b"x" * 1000
    # abort of a completed (gone) upload
    with pytest.raises(ClientError) as exc:
        s3.abort_multipart_upload(Bucket=unique, Key="k", UploadId=uid)
    assert code(exc) == (404, "NoSuchUpload")


def test_quota_exceeded_on_upload_part(s3, swift_conn, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    swift_conn.post_container(unique, {"X-Container-Meta-Quota-Bytes": "3000"})
    uid = s3.create_multipart_upload(Bucket=unique, Key="q")["UploadId"]
    s3.upload_part(Bucket=unique, Key="q", UploadId=uid, PartNumber=1, Body=b"x" * 2000)
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket=unique, Key="q", UploadId=uid, PartNumber=2, Body=b"x" * 4000)
    assert code(exc) == (403, "QuotaExceeded")
    assert [p["PartNumber"] for p in s3.list_parts(Bucket=unique, Key="q", UploadId=uid)["Parts"]] == [1]
    s3.abort_multipart_upload(Bucket=unique, Key="q", UploadId=uid)


def test_parts_of_uploads_in_progress_count_against_quotas(s3, swift_conn, unique) -> None:  # noqa: ANN001
    """Parts uploaded and never completed use the quota (else abandoned uploads could
    store any amount): each part fits alone, not with the parts already there, in this
    upload or another one; aborting gives the room back; completing keeps it used."""
    s3.create_bucket(Bucket=unique)
    swift_conn.post_container(unique, {"X-Container-Meta-Quota-Bytes": str(10 * 1024 * 1024 + 1024)})
    s3.put_object(Bucket=unique, Key="src", Body=b"s" * 1024)
    five = b"x" * (5 * 1024 * 1024)
    a = s3.create_multipart_upload(Bucket=unique, Key="a")["UploadId"]
    b = s3.create_multipart_upload(Bucket=unique, Key="b")["UploadId"]
    e1 = s3.upload_part(Bucket=unique, Key="a", UploadId=a, PartNumber=1, Body=five)["ETag"]
    s3.upload_part(Bucket=unique, Key="b", UploadId=b, PartNumber=1, Body=five)
    for key, uid in (("a", a), ("b", b)):  # 10 MiB of parts in progress: no room for a third
        with pytest.raises(ClientError) as exc:
            s3.upload_part(Bucket=unique, Key=key, UploadId=uid, PartNumber=2, Body=b"x" * 1024)
        assert code(exc) == (403, "QuotaExceeded")
    with pytest.raises(ClientError) as exc:  # copied parts too
        s3.upload_part_copy(Bucket=unique, Key="a", UploadId=a, PartNumber=2,
                            CopySource={"Bucket": unique, "Key": "src"})
    assert code(exc) == (403, "QuotaExceeded")
    s3.abort_multipart_upload(Bucket=unique, Key="b", UploadId=b)  # gives 5 MiB back
    s3.upload_part(Bucket=unique, Key="a", UploadId=a, PartNumber=2, Body=b"y" * 1024)
    e2 = s3.list_parts(Bucket=unique, Key="a", UploadId=a)["Parts"][1]["ETag"]
    s3.complete_multipart_upload(Bucket=unique, Key="a", UploadId=a, MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    assert s3.head_object(Bucket=unique, Key="a")["ContentLength"] == len(five) + 1024
    assert int(swift_conn.head_container(unique)["x-container-bytes-used"]) == len(five) + 2048
    with pytest.raises(ClientError) as exc:  # the object now holds its room: 5 MiB - 1 KiB left
        s3.put_object(Bucket=unique, Key="c", Body=five)
    assert code(exc) == (403, "QuotaExceeded")
    s3.put_object(Bucket=unique, Key="c", Body=five[:-1024])


# -- one namespace: Swift large objects through S3 -----------------------------------------


def test_swift_slo_and_dlo_read_by_boto3(s3, swift_conn, unique) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    segs = [os.urandom(300_000), os.urandom(200_000)]
    for i, d in enumerate(segs):
        swift_conn.put_object(unique, f"seg/{i}", d)
    manifest = [{"path": f"/{unique}/seg/{i}", "etag": hashlib.md5(d).hexdigest(), "size_bytes": len(d)}
                for i, d in enumerate(segs)]
    swift_conn.put_object(unique, "slo", json.dumps(manifest), query_string="multipart-manifest=put")
    swift_conn.put_object(unique, "dlo", b"", headers={"X-Object-Manifest": f"{unique}/seg/"})
    data = b"".join(segs)
    for key in ("slo", "dlo"):
        got = s3.get_object(Bucket=unique, Key=key)
        assert got["ContentLength"] == len(data) and got["Body"].read() == data
        assert "-" in got["ETag"]  # not an MD5 of the bytes: clients must not check it as one
        r = s3.get_object(Bucket=unique, Key=key, Range="bytes=299990-300009")
        assert r["Body"].read() == data[299990:300010]
        assert s3.head_object(Bucket=unique, Key=key)["ContentLength"] == len(data)
    listed = {o["Key"]: o for o in s3.list_objects_v2(Bucket=unique)["Contents"]}
    assert listed["slo"]["Size"] == len(data) and listed["slo"]["ETag"].endswith('-2"')
    dst_key = "copied"
    s3.copy_object(Bucket=unique, Key=dst_key, CopySource={"Bucket": unique, "Key": "slo"})
    assert s3.get_object(Bucket=unique, Key=dst_key)["Body"].read() == data


@pytest.mark.skipif(not shutil.which("swift"), reason="swift CLI not installed")
def test_swift_cli_slo_read_by_boto3(server, s3, unique, tmp_path, openrc_env) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    src = random_file(tmp_path / "f.bin", 11 * MiB)
    env = {**os.environ, **openrc_env}
    subprocess.run(["swift", "upload", "--use-slo", "-S", str(5 * MiB), "--object-name", "f.bin", unique, str(src)],
                   env=env, check=True, capture_output=True, timeout=120)
    got = s3.get_object(Bucket=unique, Key="f.bin")
    assert got["ContentLength"] == 11 * MiB
    h = hashlib.md5()
    for chunk in got["Body"].iter_chunks(1 << 20):
        h.update(chunk)
    assert h.hexdigest() == md5_file(src)


# -- command-line clients --------------------------------------------------------------------


def test_aws_cli_multipart(server, ec2_keys, unique, tmp_path, s3, swift_conn) -> None:  # noqa: ANN001
    aws = [shutil.which("aws") or "aws", "--endpoint-url", server.url]
    env = aws_env(ec2_keys, tmp_path)
    s3.create_bucket(Bucket=unique)
    src = random_file(tmp_path / "twenty.bin", 20 * MiB)
    run([*aws, "s3", "cp", str(src), f"s3://{unique}/twenty.bin"], env)
    etag = s3.head_object(Bucket=unique, Key="twenty.bin")["ETag"]
    assert etag.endswith('-3"')  # aws cli: 8 MiB parts
    back = tmp_path / "back.bin"
    run([*aws, "s3", "cp", f"s3://{unique}/twenty.bin", str(back)], env)
    assert md5_file(back) == md5_file(src)
    # s3api, step by step
    api = [*aws, "s3api", "--output", "json"]
    uid = json.loads(run([*api, "create-multipart-upload", "--bucket", unique, "--key", "api"], env).stdout)["UploadId"]
    part1, part2 = tmp_path / "p1", tmp_path / "p2"
    part1.write_bytes(b"1" * (5 * MiB))
    part2.write_bytes(b"2" * 1234)
    e1 = json.loads(run([*api, "upload-part", "--bucket", unique, "--key", "api", "--upload-id", uid,
                         "--part-number", "1", "--body", str(part1)], env).stdout)["ETag"]
    e2 = json.loads(run([*api, "upload-part", "--bucket", unique, "--key", "api", "--upload-id", uid,
                         "--part-number", "2", "--body", str(part2)], env).stdout)["ETag"]
    listed = json.loads(run([*api, "list-parts", "--bucket", unique, "--key", "api", "--upload-id", uid], env).stdout)
    assert [(p["PartNumber"], p["ETag"]) for p in listed["Parts"]] == [(1, e1), (2, e2)]
    ups = json.loads(run([*api, "list-multipart-uploads", "--bucket", unique], env).stdout)
    assert [u["UploadId"] for u in ups["Uploads"]] == [uid]
    mpu = tmp_path / "mpu.json"
    mpu.write_text(json.dumps({"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]}))
    out = json.loads(run([*api, "complete-multipart-upload", "--bucket", unique, "--key", "api", "--upload-id", uid,
                          "--multipart-upload", f"file://{mpu}"], env).stdout)
    assert out["ETag"] == f'"{composite([e1.strip(chr(34)), e2.strip(chr(34))])}"'
    assert swift_conn.get_object(unique, "api")[1] == b"1" * (5 * MiB) + b"2" * 1234
    uid2 = json.loads(run([*api, "create-multipart-upload", "--bucket", unique, "--key", "gone"], env).stdout)["UploadId"]
    run([*api, "upload-part", "--bucket", unique, "--key", "gone", "--upload-id", uid2, "--part-number", "1",
         "--body", str(part2)], env)
    run([*api, "abort-multipart-upload", "--bucket", unique, "--key", "gone", "--upload-id", uid2], env)
    ups = json.loads(run([*api, "list-multipart-uploads", "--bucket", unique], env).stdout or "{}")
    assert not ups.get("Uploads")


@pytest.mark.skipif(not shutil.which("s3cmd") and not Path(S3CMD).exists(), reason="s3cmd not installed")
def test_s3cmd_multipart(server, ec2_keys, unique, tmp_path, s3) -> None:  # noqa: ANN001
    cfg = s3cmd_config(tmp_path, server, ec2_keys, v2=False)
    s3c = [S3CMD, "-c", str(cfg), "--no-progress"]
    run([*s3c, "mb", f"s3://{unique}"])
    src = random_file(tmp_path / "twelve.bin", 12 * MiB)
    run([*s3c, "put", "--multipart-chunk-size-mb=5", str(src), f"s3://{unique}/twelve.bin"])
    head = s3.head_object(Bucket=unique, Key="twelve.bin")
    assert head["ContentLength"] == 12 * MiB and head["ETag"].endswith('-3"')
    back = tmp_path / "back.bin"
    run([*s3c, "get", f"s3://{unique}/twelve.bin", str(back)])
    assert md5_file(back) == md5_file(src)


@pytest.mark.skipif(not Path(RCLONE).exists(), reason="rclone not installed")
def test_rclone_multipart(server, ec2_keys, unique, tmp_path, s3) -> None:  # noqa: ANN001
    env = rclone_env(server, ec2_keys, tmp_path)
    s3.create_bucket(Bucket=unique)
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    src = random_file(src_dir / "big.bin", 12 * MiB + 5)
    rc = [RCLONE, "--retries", "1", "--low-level-retries", "1", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M"]
    run([*rc, "copy", str(src_dir), f"lampi:{unique}/d"], env)
    head = s3.head_object(Bucket=unique, Key="d/big.bin")
    assert head["ContentLength"] == 12 * MiB + 5 and head["ETag"].endswith('-3"')
    run([*rc, "check", str(src_dir), f"lampi:{unique}/d"], env)
    back = tmp_path / "back"
    run([*rc, "copy", f"lampi:{unique}/d", str(back)], env)
    assert md5_file(back / "big.bin") == md5_file(src)


# -- durability: fsck, abort, replace ------------------------------------------------------


def _blob_count(data_dir: Path) -> int:
    return sum(1 for p in (data_dir / "blobs").rglob("*") if p.is_file()) if (data_dir / "blobs").exists() else 0


def test_fsck_keeps_parts_and_abort_replace_release_them(fresh_server) -> None:  # noqa: ANN001
    srv = fresh_server
    srv.start()
    keys = json.loads(srv.cli("credential", "create", "admin", "admin", "--json").stdout)
    s3 = boto3.client("s3", endpoint_url=srv.url, aws_access_key_id=keys["access"],
                      aws_secret_access_key=keys["secret"], region_name="us-east-1")
    s3.create_bucket(Bucket="fsck-mpu")
    base = _blob_count(srv.data_dir)

    def upload(key: str, bodies: list[bytes], complete: bool = True) -> str:
        uid = s3.create_multipart_upload(Bucket="fsck-mpu", Key=key)["UploadId"]
        parts = [{"PartNumber": i + 1, "ETag": s3.upload_part(Bucket="fsck-mpu", Key=key, UploadId=uid,
                                                              PartNumber=i + 1, Body=b)["ETag"]}
                 for i, b in enumerate(bodies)]
        if complete:
            s3.complete_multipart_upload(Bucket="fsck-mpu", Key=key, UploadId=uid, MultipartUpload={"Parts": parts})
        return uid

    done = [os.urandom(5 * MiB), b"end"]
    upload("done", done)
    pending = upload("pending", [b"a" * 100, b"b" * 100], complete=False)
    assert _blob_count(srv.data_dir) == base + 3 + 2  # 2 parts + manifest body; 2 pending parts
    rep = srv.cli("fsck", "--grace", "0", "--json", check=False)
    assert rep.returncode == 0, rep.stdout + rep.stderr
    report = json.loads(rep.stdout)
    assert report["removed"] == 0 and report["orphan_blobs"] == [] and report["clean"]
    assert s3.get_object(Bucket="fsck-mpu", Key="done")["Body"].read() == b"".join(done)
    assert len(s3.list_parts(Bucket="fsck-mpu", Key="pending", UploadId=pending)["Parts"]) == 2
    # abort deletes the pending parts' blobs
    s3.abort_multipart_upload(Bucket="fsck-mpu", Key="pending", UploadId=pending)
    assert _blob_count(srv.data_dir) == base + 3
    # replacing the multipart object (by a plain PUT) releases its body and part blobs
    # (the replacement, 5 bytes, is an inline blob: no file)
    s3.put_object(Bucket="fsck-mpu", Key="done", Body=b"small")
    assert _blob_count(srv.data_dir) == base
    # bytes-used counts a multipart object's whole size
    upload("again", done)
    s3.delete_object(Bucket="fsck-mpu", Key="again")
    assert _blob_count(srv.data_dir) == base
    rep = json.loads(srv.cli("fsck", "--grace", "0", "--json").stdout)
    assert rep["removed"] == 0 and rep["clean"]
