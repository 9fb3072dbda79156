"""Names and limits lampi must refuse as Swift and AWS do (issue 9, item 4).

- extract-archive (bulk) created a container named ``..`` from a member ``../x``: a
  container no HTTP client can reach again (clients resolve dot segments);
- S3 CreateBucket accepted the names AWS now reserves (``xn--``, ``sthree-``, ...);
- a presigned SigV4 URL may be valid for at most 7 days (``X-Amz-Expires`` ≤ 604800).
"""

from __future__ import annotations

import io
import tarfile
from xml.etree import ElementTree

import pytest
import requests
from botocore.exceptions import ClientError

from tests.functional.conftest import LampiServer
from tests.functional.swift_helpers import raw_http, status_of


def _tar(names: list[str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = 4
            tar.addfile(info, io.BytesIO(b"data"))
    return buf.getvalue()


def test_extract_archive_makes_no_dot_containers(server: LampiServer, swift_conn, unique: str) -> None:  # noqa: ANN001
    url, token = swift_conn.get_auth()
    body = _tar(["../escaped", "./../also", f"./{unique}/../y", f"{unique}/ok", "../"])
    r = requests.put(f"{url}/?extract-archive=tar", data=body, timeout=60,
                     headers={"X-Auth-Token": token, "Accept": "application/json"})
    assert r.status_code == 200
    out = r.json()
    assert out["Number Files Created"] == 2, out
    assert out["Response Status"] == "400 Bad Request"
    assert dict(out["Errors"]) == {"../escaped": "400 Bad Request", "../also": "400 Bad Request",
                                   "../": "412 Precondition Failed"}, out
    names = [c["name"] for c in swift_conn.get_account()[1]]
    assert ".." not in names and "." not in names
    assert swift_conn.get_object(unique, "ok")[1] == b"data"
    # "<c>/../y" is object "../y" of container <c>: an object name Swift allows
    assert sorted(o["name"] for o in swift_conn.get_container(unique)[1]) == ["../y", "ok"]


@pytest.mark.parametrize("name", ["..", "."])
def test_container_put_refuses_dot_segments(server: LampiServer, swift_conn, name: str) -> None:  # noqa: ANN001
    """Sent by hand (every client resolves dot segments away before sending)."""
    url, token = swift_conn.get_auth()
    path = url.split("//", 1)[1].split("/", 1)[1]
    req = (f"PUT /{path}/{name} HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {token}\r\n"
           "Content-Length: 0\r\nConnection: close\r\n\r\n").encode()
    _, resp = raw_http(server.url, req)
    assert status_of(resp) == 400, resp
    assert resp.endswith(f"Container name cannot be {name!r}".encode()), resp
    assert name not in [c["name"] for c in swift_conn.get_account()[1]]


@pytest.mark.parametrize("name", ["xn--abc", "sthree-abc", "sthree-configurator-x", "amzn-s3-demo-abc",
                                  "abc-s3alias", "abc--ol-s3", "abc.mrap", "abc--table-s3"])
def test_s3_reserved_bucket_names(s3, name: str) -> None:  # noqa: ANN001
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=name)
    assert exc.value.response["Error"]["Code"] == "InvalidBucketName"
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def _signed_put(server: LampiServer, ec2_keys: dict[str, str], path: str) -> requests.Response:
    from tests.functional.fuzz_support import S3Keys

    keys = S3Keys(ec2_keys["access"], ec2_keys["secret"])
    host = server.url.split("//", 1)[1]
    return requests.put(server.url + path, headers=dict(keys.sign("PUT", path, "", host, "UNSIGNED-PAYLOAD")),
                        timeout=30)


def test_s3_directory_bucket_suffix_is_reserved(server: LampiServer, ec2_keys) -> None:  # noqa: ANN001
    """"--x-s3" names S3 Express directory buckets (boto3 sends those elsewhere)."""
    r = _signed_put(server, ec2_keys, "/abc--x-s3")
    assert r.status_code == 400 and ElementTree.fromstring(r.content).findtext("Code") == "InvalidBucketName"


def test_s3_bucket_name_with_trailing_newline(server: LampiServer, s3, ec2_keys, unique: str) -> None:  # noqa: ANN001
    """``re.match`` with ``$`` also matches before a final newline: "<name>\\n" passed the
    bucket name rules once a newline could reach them."""
    r = _signed_put(server, ec2_keys, f"/{unique}%0A")
    assert r.status_code == 400 and ElementTree.fromstring(r.content).findtext("Code") == "InvalidBucketName"


def test_presigned_url_valid_at_most_a_week(server: LampiServer, ec2_keys, unique: str) -> None:  # noqa: ANN001
    """SigV4 (``X-Amz-Expires``). boto3's default presigned URL is SigV2 (``Expires``, an
    absolute time), which AWS does not limit: neither does lampi."""
    import boto3
    from botocore.config import Config

    s3 = boto3.client("s3", endpoint_url=server.url, aws_access_key_id=ec2_keys["access"],
                      aws_secret_access_key=ec2_keys["secret"], region_name="us-east-1",
                      config=Config(signature_version="s3v4"))
    s3.create_bucket(Bucket=unique)
    s3.put_object(Bucket=unique, Key="k", Body=b"shared")
    week = s3.generate_presigned_url("get_object", Params={"Bucket": unique, "Key": "k"}, ExpiresIn=604800)
    assert requests.get(week, timeout=30).content == b"shared"
    longer = s3.generate_presigned_url("get_object", Params={"Bucket": unique, "Key": "k"}, ExpiresIn=604801)
    r = requests.get(longer, timeout=30)
    assert r.status_code == 403  # as RGW (Allas); AWS answers 400 AuthorizationQueryParametersError
    assert ElementTree.fromstring(r.content).findtext("Code") == "AccessDenied"
    negative = s3.generate_presigned_url("get_object", Params={"Bucket": unique, "Key": "k"}, ExpiresIn=-7)
    r = requests.get(negative, timeout=30)
    assert r.status_code == 403 and ElementTree.fromstring(r.content).findtext("Code") == "AccessDenied"
