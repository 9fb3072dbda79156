"""Object names with control characters (issue 9, item 4).

Swift and S3 store any valid UTF-8 name without NUL, newlines included. aiohttp's route
pattern ``.*`` did not match a newline, so such a name got aiohttp's bare "404: Not Found"
in both APIs before lampi saw the request.
"""

from __future__ import annotations

import pytest
import requests
import swiftclient

from tests.functional.conftest import LampiServer

NAMES = ["line1\nline2", "cr\r\nlf", "tab\tand\x01\x1f\x7fcontrols", "trailing newline\n", "\n"]


def test_swift_stores_and_serves_names_with_newlines(swift_conn, unique: str) -> None:  # noqa: ANN001
    swift_conn.put_container(unique)
    for i, name in enumerate(NAMES):
        swift_conn.put_object(unique, name, f"data {i}".encode())
        assert swift_conn.head_object(unique, name)["content-length"] == str(len(f"data {i}"))
        assert swift_conn.get_object(unique, name)[1] == f"data {i}".encode()
        swift_conn.post_object(unique, name, headers={"X-Object-Meta-N": str(i)})
        assert swift_conn.head_object(unique, name)["x-object-meta-n"] == str(i)
    listed = [o["name"] for o in swift_conn.get_container(unique)[1]]
    assert sorted(listed) == sorted(NAMES)
    swift_conn.copy_object(unique, NAMES[0], f"/{unique}/copy\nof")
    assert swift_conn.get_object(unique, "copy\nof")[1] == b"data 0"
    for name in [*NAMES, "copy\nof"]:
        swift_conn.delete_object(unique, name)
    assert swift_conn.get_container(unique)[1] == []


def test_swift_container_with_newline(swift_conn, unique: str) -> None:  # noqa: ANN001
    name = unique + "\nsecond line"
    swift_conn.put_container(name)
    swift_conn.put_object(name, "o", b"x")
    assert swift_conn.get_object(name, "o")[1] == b"x"
    assert name in [c["name"] for c in swift_conn.get_account(prefix=unique)[1]]
    swift_conn.delete_object(name, "o")
    swift_conn.delete_container(name)


def test_s3_stores_and_serves_keys_with_newlines(s3, unique: str) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    for i, key in enumerate(NAMES):
        s3.put_object(Bucket=unique, Key=key, Body=f"s3 {i}".encode())
        assert s3.get_object(Bucket=unique, Key=key)["Body"].read() == f"s3 {i}".encode()
        assert s3.head_object(Bucket=unique, Key=key)["ContentLength"] == len(f"s3 {i}")
    # botocore asks for url-encoded keys and decodes them
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=unique)["Contents"]) == sorted(NAMES)
    s3.copy_object(Bucket=unique, Key="copy\nof", CopySource={"Bucket": unique, "Key": NAMES[0]})
    assert s3.get_object(Bucket=unique, Key="copy\nof")["Body"].read() == b"s3 0"
    # a multi-object delete names keys in XML, where a CR does not survive parsing (as on AWS)
    gone = s3.delete_objects(Bucket=unique, Delete={"Objects": [{"Key": k} for k in (NAMES[0], "copy\nof")]})
    assert sorted(d["Key"] for d in gone["Deleted"]) == sorted([NAMES[0], "copy\nof"])
    for key in NAMES[1:]:
        s3.delete_object(Bucket=unique, Key=key)
    assert s3.list_objects_v2(Bucket=unique)["KeyCount"] == 0


def test_one_store_for_both_apis(swift_conn, s3, unique: str) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    s3.put_object(Bucket=unique, Key="from s3\n", Body=b"via s3")
    assert swift_conn.get_object(unique, "from s3\n")[1] == b"via s3"
    swift_conn.put_object(unique, "from swift\n", b"via swift")
    assert s3.get_object(Bucket=unique, Key="from swift\n")["Body"].read() == b"via swift"


@pytest.mark.parametrize("path", ["/v1/AUTH_x/c/a%00b", "/v1/AUTH_x/c%00/o"])
def test_nul_is_still_refused(server: LampiServer, token_and_url, path: str) -> None:  # noqa: ANN001
    token, url = token_and_url
    account = url.rsplit("/", 1)[1]
    r = requests.put(server.url + path.replace("AUTH_x", account), data=b"x", headers={"X-Auth-Token": token},
                     timeout=30)
    assert r.status_code == 412 and r.text == "Invalid UTF8 or contains NULL"


def test_swiftclient_sees_no_aiohttp_404(swift_conn, unique: str) -> None:  # noqa: ANN001
    """What the issue saw: a name with a newline answered aiohttp's own "404: Not Found"."""
    swift_conn.put_container(unique)
    with pytest.raises(swiftclient.ClientException) as exc:
        swift_conn.get_object(unique, "missing\nobject")
    assert exc.value.http_status == 404
    assert exc.value.http_response_content != b"404: Not Found"  # Swift's own 404 page
