"""aws-chunked uploads: unsigned payload with checksum trailers (what boto3 >= 1.36
sends over HTTPS by default), signed chunks, and signed trailers. The framing must
never reach the stored bytes, and any bad chunk, signature or checksum stores nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import zlib

import pytest
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

EMPTY = hashlib.sha256(b"").hexdigest()


def _force_trailer(params, **kwargs) -> None:  # noqa: ANN001, ANN003
    """botocore picks trailer checksums only over https; make it do the same over http."""
    alg = params.get("context", {}).get("checksum", {}).get("request_algorithm")
    if isinstance(alg, dict) and alg.get("in") == "header":
        alg["in"] = "trailer"


@pytest.mark.parametrize("algorithm", ["CRC32", "SHA1", "SHA256"])  # CRC32C, CRC64NVME need awscrt in botocore
def test_boto3_trailer_checksums(s3, unique, algorithm) -> None:  # noqa: ANN001
    s3.meta.events.register("before-call.s3.PutObject", _force_trailer)
    s3.create_bucket(Bucket=unique)
    seen = {}
    s3.meta.events.register("before-send.s3.PutObject", lambda request, **kw: seen.update(request.headers))
    data = os.urandom(3 * 1024 * 1024 + 17)  # several 1 MiB aws-chunked chunks
    r = s3.put_object(Bucket=unique, Key="obj", Body=data, ChecksumAlgorithm=algorithm)
    assert seen.get("X-Amz-Content-SHA256") == b"STREAMING-UNSIGNED-PAYLOAD-TRAILER" or \
        seen.get("X-Amz-Content-SHA256") == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    assert r["ETag"] == '"%s"' % hashlib.md5(data).hexdigest()
    got = s3.get_object(Bucket=unique, Key="obj")
    assert got["Body"].read() == data  # no framing in the stored bytes
    assert got["ContentLength"] == len(data)
    assert "ContentEncoding" not in got  # aws-chunked is not the object's encoding


def _key(secret: str, date: str) -> bytes:
    k = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for p in ("us-east-1", "s3", "aws4_request"):
        k = hmac.new(k, p.encode(), hashlib.sha256).digest()
    return k


class _Streaming(S3SigV4Auth):
    def __init__(self, creds: Credentials, mode: str) -> None:
        super().__init__(creds, "s3", "us-east-1")
        self.mode = mode

    def payload(self, request) -> str:  # noqa: ANN001
        return self.mode


def _signed_upload(server, keys, path: str, data: bytes, chunk: int, *, trailer: bool = False,  # noqa: ANN001
                   tamper: str = "") -> requests.Response:
    """A STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER] body signed per AWS's documentation."""
    mode = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" + ("-TRAILER" if trailer else "")
    headers = {"Content-Encoding": "aws-chunked", "X-Amz-Decoded-Content-Length": str(len(data))}
    if trailer:
        headers["X-Amz-Trailer"] = "x-amz-checksum-crc32"
    req = AWSRequest(method="PUT", url=server.url + path, headers=headers)
    _Streaming(Credentials(keys["access"], keys["secret"]), mode).add_auth(req)
    amz_date = req.headers["X-Amz-Date"]
    scope = f"{amz_date[:8]}/us-east-1/s3/aws4_request"
    key = _key(keys["secret"], amz_date[:8])
    prev = req.headers["Authorization"].rsplit("Signature=", 1)[1]
    body = bytearray()
    pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)] + [b""]
    for i, piece in enumerate(pieces):
        sts = "\n".join(("AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, EMPTY, hashlib.sha256(piece).hexdigest()))
        sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
        prev = sig
        sent = piece
        if tamper == "chunk" and i == 1:
            sent = bytes([piece[0] ^ 1]) + piece[1:]
        body += f"{len(piece):x};chunk-signature={sig}\r\n".encode() + sent
        if piece or not trailer:
            body += b"\r\n"
    if trailer:
        crc = base64.b64encode(zlib.crc32(data if tamper != "checksum" else data + b"x").to_bytes(4, "big")).decode()
        canon = f"x-amz-checksum-crc32:{crc}\n"
        sts = "\n".join(("AWS4-HMAC-SHA256-TRAILER", amz_date, scope, prev, hashlib.sha256(canon.encode()).hexdigest()))
        tsig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
        if tamper == "trailer":
            tsig = "0" * 64
        body += f"x-amz-checksum-crc32:{crc}\r\nx-amz-trailer-signature:{tsig}\r\n\r\n".encode()
    h = dict(req.headers.items())
    h["Content-Length"] = str(len(body))
    return requests.put(server.url + path, data=bytes(body), headers=h)


def test_signed_chunks(server, s3, unique, ec2_keys) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    data = os.urandom(200_000)
    r = _signed_upload(server, ec2_keys, f"/{unique}/signed", data, 64 * 1024)
    assert r.status_code == 200, r.text
    assert s3.get_object(Bucket=unique, Key="signed")["Body"].read() == data
    r = _signed_upload(server, ec2_keys, f"/{unique}/trailer", data, 65536, trailer=True)
    assert r.status_code == 200, r.text
    assert r.headers["x-amz-checksum-crc32"]
    assert s3.get_object(Bucket=unique, Key="trailer")["Body"].read() == data


@pytest.mark.parametrize("tamper,trailer,status,err", [
    ("chunk", False, 403, "SignatureDoesNotMatch"),
    ("chunk", True, 403, "SignatureDoesNotMatch"),
    ("trailer", True, 403, "SignatureDoesNotMatch"),
    ("checksum", True, 400, "BadDigest"),
])
def test_tampered_chunks_store_nothing(server, s3, unique, ec2_keys, tamper, trailer, status, err) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    s3.put_object(Bucket=unique, Key="k", Body=b"previous")
    r = _signed_upload(server, ec2_keys, f"/{unique}/k", os.urandom(150_000), 65536, trailer=trailer, tamper=tamper)
    assert r.status_code == status and f"<Code>{err}</Code>" in r.text, r.text
    assert s3.get_object(Bucket=unique, Key="k")["Body"].read() == b"previous"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=unique, Key="never")


def test_unsigned_trailer_bad_checksum(server, s3, unique, ec2_keys) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    req = AWSRequest(method="PUT", url=f"{server.url}/{unique}/u", headers={
        "Content-Encoding": "aws-chunked", "X-Amz-Decoded-Content-Length": "5",
        "X-Amz-Trailer": "x-amz-checksum-crc32c"})
    _Streaming(Credentials(ec2_keys["access"], ec2_keys["secret"]), "STREAMING-UNSIGNED-PAYLOAD-TRAILER").add_auth(req)
    body = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32c:AAAAAA==\r\n\r\n"
    r = requests.put(f"{server.url}/{unique}/u", data=body, headers=dict(req.headers.items()))
    assert r.status_code == 400 and "<Code>BadDigest</Code>" in r.text
    body = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32c:mnG7TA==\r\n\r\n"  # crc32c("hello")
    r = requests.put(f"{server.url}/{unique}/u", data=body, headers=dict(req.headers.items()))
    assert r.status_code == 200, r.text
    assert s3.get_object(Bucket=unique, Key="u")["Body"].read() == b"hello"
