"""Each worker caches what an S3 key resolves to (lampi.s3.sigv4); any identity change
(role revoked or granted, user deleted) must take effect at once on every worker, also
when made by another process (the ``lampi`` admin CLI writes the database directly)."""

from __future__ import annotations

import json
import socket
import uuid

import boto3
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.functional.test_s3_features import signed_request, xml_code


def _answers(server, keys: dict[str, str], n: int = 30) -> set[tuple[int, str]]:  # noqa: ANN001
    # requests opens a new connection per call, so the kernel spreads them over both workers
    return {(r.status_code, xml_code(r)) for r in (signed_request("GET", server.url + "/", keys) for _ in range(n))}


def test_identity_changes_reach_every_worker_at_once(fresh_server) -> None:  # noqa: ANN001
    fresh_server.workers = 2
    fresh_server.start()
    name = "p" + uuid.uuid4().hex[:10]
    fresh_server.cli("project", "create", name)
    fresh_server.cli("user", "create", name, "--password", "pw-" + name, "--project", name)
    keys = json.loads(fresh_server.cli("credential", "create", name, name, "--json").stdout)
    assert _answers(fresh_server, keys) == {(200, "")}  # both workers have it cached now
    fresh_server.cli("role", "revoke", name, name, "member")
    assert _answers(fresh_server, keys) == {(403, "AccessDenied")}
    fresh_server.cli("role", "grant", name, name, "reader")
    assert _answers(fresh_server, keys) == {(200, "")}
    # a reader may not create a bucket: the cached principal carries the new roles
    r = signed_request("PUT", f"{fresh_server.url}/{name}-b", keys)
    assert (r.status_code, xml_code(r)) == (403, "AccessDenied")
    fresh_server.cli("user", "delete", name)  # the key goes with its user
    assert _answers(fresh_server, keys) == {(403, "InvalidAccessKeyId")}


def _pipelined(server, keys: dict[str, str], n: int) -> list[int]:  # noqa: ANN001
    """``n`` signed ListBuckets sent in one write on one connection (HTTP/1.1
    pipelining): the server parses their heads together. Their statuses, in order."""
    req = AWSRequest(method="GET", url=server.url + "/", headers={})
    S3SigV4Auth(Credentials(keys["access"], keys["secret"]), "s3", "us-east-1").add_auth(req)
    head = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in req.headers.items()) + "\r\n"
    statuses, buf = [], b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head.encode() * n)
        while len(statuses) < n:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                chunk = sock.recv(65536)
                assert chunk, f"connection closed after {len(statuses)} responses"
                buf += chunk
                continue
            lines = buf[:end].decode().split("\r\n")
            length = int(next(x.split(":", 1)[1] for x in lines if x.lower().startswith("content-length:")))
            if len(buf) < end + 4 + length:
                chunk = sock.recv(65536)
                assert chunk, "connection closed mid-body"
                buf += chunk
                continue
            statuses.append(int(lines[0].split()[1]))
            buf = buf[end + 4 + length:]
    return statuses


def test_identity_change_reaches_kept_alive_and_pipelined_requests(fresh_server) -> None:  # noqa: ANN001
    """Requests that arrive together share one read of the identity generation
    (lampi.store.meta.arrival); a request arriving after a change, on a connection kept alive
    or pipelined behind others, must still see it."""
    fresh_server.start()  # one worker: every request below meets the same key cache
    name = "p" + uuid.uuid4().hex[:10]
    fresh_server.cli("project", "create", name)
    fresh_server.cli("user", "create", name, "--password", "pw-" + name, "--project", name)
    keys = json.loads(fresh_server.cli("credential", "create", name, name, "--json").stdout)
    s3 = boto3.client("s3", endpoint_url=fresh_server.url, aws_access_key_id=keys["access"],
                      aws_secret_access_key=keys["secret"], region_name="us-east-1",
                      config=Config(max_pool_connections=1, retries={"max_attempts": 1}))
    assert _pipelined(fresh_server, keys, 8) == [200] * 8
    for _ in range(3):
        s3.list_buckets()  # one connection, kept alive
    fresh_server.cli("role", "revoke", name, name, "member")
    with pytest.raises(ClientError) as exc:
        s3.list_buckets()  # the same connection, after the change
    assert exc.value.response["Error"]["Code"] == "AccessDenied"
    assert _pipelined(fresh_server, keys, 8) == [403] * 8
    fresh_server.cli("role", "grant", name, name, "reader")
    assert s3.list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert _pipelined(fresh_server, keys, 8) == [200] * 8
