"""Request bodies are read chunk by chunk as received (``lampi.http.transfer.body_chunks``):
bodies of every shape arrive whole, and requests without a body never hang the worker.

aiohttp hands every body-less request the same empty reader, whose ``readchunk`` says
"end" only once per process: reading it with ``iter_chunks`` made the second body-less
PUT of a worker spin its event loop forever (the whole worker stopped answering)."""

from __future__ import annotations

import hashlib
import os

import requests

from tests.functional.conftest import LampiServer

TIMEOUT = 60  # generous: a busy machine; a hang never answers at all


def test_bodyless_and_empty_puts_keep_answering(fresh_server: LampiServer, unique: str) -> None:
    import boto3
    from botocore.config import Config

    fresh_server.workers = 1  # one worker, one event loop: a request that spins it stops everything
    fresh_server.extra_args = ["--s3-access-key", "BODYLESS1", "--s3-secret-key", "bodyless-secret"]
    fresh_server.start()

    rc = fresh_server.openrc()
    r = requests.post(f"{fresh_server.url}/v3/auth/tokens", timeout=TIMEOUT, json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": rc["OS_USERNAME"], "domain": {"name": "Default"}, "password": rc["OS_PASSWORD"]}}},
        "scope": {"project": {"name": rc["OS_PROJECT_NAME"], "domain": {"name": "Default"}}}}})
    token = r.headers["X-Subject-Token"]
    storage = next(e["url"] for s in r.json()["token"]["catalog"] if s["type"] == "object-store"
                   for e in s["endpoints"] if e["interface"] == "public")
    h = {"X-Auth-Token": token}
    # Swift: container PUTs and zero-byte object PUTs, all without a body
    for i in range(3):
        assert requests.put(f"{storage}/{unique}-{i}", headers=h, timeout=TIMEOUT).status_code in (201, 202)
        resp = requests.put(f"{storage}/{unique}-0/empty{i}", headers=h, data=b"", timeout=TIMEOUT)
        assert resp.status_code == 201 and resp.headers["Etag"] == hashlib.md5(b"").hexdigest()
    # S3: bucket creations and empty objects, without a body
    s3 = boto3.client("s3", endpoint_url=fresh_server.url, aws_access_key_id="BODYLESS1",
                      aws_secret_access_key="bodyless-secret", region_name="regionOne",
                      config=Config(retries={"max_attempts": 0}, read_timeout=TIMEOUT, connect_timeout=TIMEOUT))
    for i in range(3):
        s3.create_bucket(Bucket=f"{unique}-s3-{i}")
        s3.put_object(Bucket=f"{unique}-s3-0", Key=f"empty{i}", Body=b"")
    assert len(s3.list_objects_v2(Bucket=f"{unique}-s3-0")["Contents"]) == 3
    assert requests.get(f"{fresh_server.url}/healthcheck", timeout=TIMEOUT).status_code == 200


def test_bodies_of_every_shape_arrive_whole(server: LampiServer, swift_conn, s3, unique: str) -> None:  # noqa: ANN001
    """Chunked transfer encoding with many small chunks and empty-looking boundaries, and
    large bodies received in many socket reads: stored byte for byte, MD5 ETag as sent."""
    swift_conn.put_container(unique)
    big = os.urandom(5 * 1024 * 1024 + 123)
    pieces = [big[i:i + 7_000] for i in range(0, len(big), 7_000)]
    etag = swift_conn.put_object(unique, "chunked", contents=iter(pieces))  # Transfer-Encoding: chunked
    assert etag == hashlib.md5(big).hexdigest()
    assert swift_conn.get_object(unique, "chunked")[1] == big
    assert swift_conn.put_object(unique, "plain", contents=big, content_length=len(big)) == hashlib.md5(big).hexdigest()
    assert swift_conn.get_object(unique, "plain")[1] == big
    s3.create_bucket(Bucket=f"{unique}-s3")
    assert s3.put_object(Bucket=f"{unique}-s3", Key="big", Body=big)["ETag"] == f'"{hashlib.md5(big).hexdigest()}"'
    assert s3.get_object(Bucket=f"{unique}-s3", Key="big")["Body"].read() == big
