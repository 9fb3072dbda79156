"""Malformed input gets a 4xx in the protocol's own format, never a 500 (issue 9, item 2).

One regression test per cause the fuzz (tests/functional/test_fuzz.py) and the issue
found; each answered 500 before. Real clients where they can send the input
(python-swiftclient, boto3), requests otherwise (bytes header values go out as sent).
"""

from __future__ import annotations

import hashlib
import json
import hmac
import time
from xml.etree import ElementTree

import pytest
import requests
import swiftclient
from botocore.exceptions import ClientError

from tests.functional.conftest import LampiServer
from tests.functional.fuzz_support import S3Keys
from tests.functional.test_swift_formpost import form

DEEP = 100_000


def keystone_error(r: requests.Response, status: int) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    err = r.json()["error"]
    assert err["code"] == status
    return err


def s3_error(r: requests.Response, status: int, code: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    assert ElementTree.fromstring(r.content).findtext("Code") == code


def server_log_clean(server: LampiServer, since: int) -> None:
    """No unhandled error was logged since offset ``since`` of the server's log."""
    assert '"unhandled error"' not in server.log()[since:]


# -- JSON nested deeper than the parser can follow -----------------------------------------------


def test_slo_manifest_nested_too_deep_is_400(server: LampiServer, swift_conn, unique: str) -> None:  # noqa: ANN001
    swift_conn.put_container(unique)
    since = len(server.log())
    for body in ("[" * DEEP + "]" * DEEP, '{"a":' * DEEP + "1" + "}" * DEEP):
        with pytest.raises(swiftclient.ClientException) as exc:
            swift_conn.put_object(unique, "m", contents=body, query_string="multipart-manifest=put")
        assert exc.value.http_status == 400
        assert exc.value.http_response_content == b"Manifest must be valid JSON.\n"
    server_log_clean(server, since)
    assert swift_conn.get_container(unique)[1] == []


def test_keystone_bodies_nested_too_deep_or_not_unicode_are_400(server: LampiServer, token_and_url) -> None:  # noqa: ANN001
    """No token needed to send these: the auth body itself, nested deep (a RecursionError
    in json.loads), or naming a user with a lone surrogate (which no UTF-8 store holds)."""
    since = len(server.log())
    url = f"{server.url}/v3/auth/tokens"
    for body in ('{"auth":' * 20_000 + "1" + "}" * 20_000, "[" * 50_000):
        keystone_error(requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=30), 400)
    surrogate = ('{"auth": {"identity": {"methods": ["password"], "password": {"user": '
                 '{"name": "\\ud800", "domain": {"name": "Default"}, "password": "x"}}}}}')
    keystone_error(requests.post(url, data=surrogate, timeout=30), 400)
    token, _ = token_and_url
    r = requests.get(f"{server.url}/v3/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": token},
                     timeout=30)
    user_id = r.json()["token"]["user"]["id"]
    ec2 = f"{server.url}/v3/users/{user_id}/credentials/OS-EC2"
    keystone_error(requests.post(ec2, data="[" * 50_000, headers={"X-Auth-Token": token}, timeout=30), 400)
    server_log_clean(server, since)


def test_account_acl_nested_too_deep_is_400(server: LampiServer, token_and_url) -> None:  # noqa: ANN001
    token, url = token_and_url
    r = requests.post(url, headers={"X-Auth-Token": token, "X-Account-Access-Control": '{"read-only":' + "[" * 5000},
                      timeout=30)
    # tempauth's answer: "X-Account-Access-Control invalid: <why>"
    assert r.status_code == 400 and r.text.startswith("X-Account-Access-Control invalid: Syntax error in input")


# -- numbers ----------------------------------------------------------------------------------------


def test_huge_x_delete_at_and_after_mean_never(server: LampiServer, swift_conn, unique: str) -> None:  # noqa: ANN001
    """Swift clamps expiry times to 9999999999 (normalize_delete_at_timestamp): a huge
    value is "never", not an integer SQLite cannot hold (nor a float overflow)."""
    swift_conn.put_container(unique)
    since = len(server.log())
    swift_conn.put_object(unique, "at", b"x", headers={"X-Delete-At": "9" * 40})
    assert swift_conn.head_object(unique, "at")["x-delete-at"] == "9999999999"
    swift_conn.put_object(unique, "after", b"x", headers={"X-Delete-After": "9" * 400})
    assert swift_conn.head_object(unique, "after")["x-delete-at"] == "9999999999"
    swift_conn.post_object(unique, "at", headers={"X-Delete-After": "9" * 40})
    assert swift_conn.head_object(unique, "at")["x-delete-at"] == "9999999999"
    for header, value in (("X-Delete-At", "9" * 5000), ("X-Delete-After", "\u00b2")):
        with pytest.raises(swiftclient.ClientException) as exc:
            swift_conn.put_object(unique, "bad", b"x", headers={header: value})
        assert exc.value.http_status == 400 and exc.value.http_response_content.startswith(b"Non-integer")
    assert swift_conn.get_object(unique, "at")[1] == b"x"
    server_log_clean(server, since)


def test_digits_int_refuses_are_not_numbers(server: LampiServer, swift_conn, unique: str) -> None:  # noqa: ANN001
    """"²".isdigit() is true and int("²") fails: a quota of "²" was stored, then every
    upload into the container answered 500. And ranges of thousands of digits."""
    swift_conn.put_container(unique)
    since = len(server.log())
    with pytest.raises(swiftclient.ClientException) as exc:
        swift_conn.post_container(unique, {"X-Container-Meta-Quota-Bytes": "\u00b2"})
    assert exc.value.http_status == 400 and exc.value.http_response_content == b"Invalid bytes quota."
    swift_conn.put_object(unique, "o", b"0123456789")
    for rng in ("bytes=0-" + "9" * 5000, "bytes=\u00b2-3"):  # up to the end; not a range: the whole
        assert swift_conn.get_object(unique, "o", headers={"Range": rng})[1] == b"0123456789", rng
    url, token = swift_conn.get_auth()
    r = requests.get(f"{url}/{unique}", params={"limit": "\u00b2", "format": "json"}, headers={"X-Auth-Token": token},
                     timeout=30)
    assert r.status_code == 200 and r.json()[0]["name"] == "o"  # not a number: the default limit
    server_log_clean(server, since)


def test_s3_numbers_of_thousands_of_digits(server: LampiServer, s3, ec2_keys, unique: str) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    s3.put_object(Bucket=unique, Key="o", Body=b"0123456789")
    upload = s3.create_multipart_upload(Bucket=unique, Key="m")["UploadId"]
    keys = S3Keys(ec2_keys["access"], ec2_keys["secret"])
    host = server.url.split("//", 1)[1]
    q = f"partNumber={'9' * 5000}&uploadId={upload}"
    r = requests.put(f"{server.url}/{unique}/m?{q}", data=b"x", timeout=30,
                     headers=dict(keys.sign("PUT", f"/{unique}/m", q, host, hashlib.sha256(b"x").hexdigest())))
    s3_error(r, 400, "InvalidArgument")
    got = s3.get_object(Bucket=unique, Key="o", Range="bytes=0-" + "9" * 5000)
    assert got["Body"].read() == b"0123456789"
    s3.abort_multipart_upload(Bucket=unique, Key="m", UploadId=upload)


# -- FormPost -----------------------------------------------------------------------------------------


def test_formpost_malformed_part_header_is_400(server: LampiServer, token_and_url, unique: str) -> None:  # noqa: ANN001
    token, url = token_and_url
    requests.put(f"{url}/{unique}", headers={"X-Auth-Token": token,
                                            "X-Container-Meta-Temp-URL-Key": "k"}, timeout=30).raise_for_status()
    since = len(server.log())
    path = url.split("//", 1)[1].split("/", 1)[1]
    fields = form("/" + path + f"/{unique}/", key="k")
    good = b"".join(b'--XX\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (k.encode(), v.encode())
                    for k, v in fields.items())
    for part_headers in (b"bad header line", b"no-colon", b"A: " + b"a" * 20_000):
        body = good + b"--XX\r\n" + part_headers + b"\r\n\r\nvalue\r\n--XX--\r\n"
        r = requests.post(f"{url}/{unique}/", data=body, timeout=30,
                          headers={"Content-Type": "multipart/form-data; boundary=XX"})
        assert r.status_code == 400 and r.text.startswith("FormPost: malformed part header"), (r.status_code, r.text)
    body = good + (b'--XX\r\nContent-Disposition: form-data; name="x_delete_at"\r\n\r\n' + b"9" * 40 +
                   b'\r\n--XX\r\nContent-Disposition: form-data; name="file"; filename="f.txt"\r\n\r\ndata\r\n--XX--\r\n')
    r = requests.post(f"{url}/{unique}/", data=body, timeout=30,
                      headers={"Content-Type": "multipart/form-data; boundary=XX"})
    assert r.status_code == 201, r.text
    h = requests.head(f"{url}/{unique}/f.txt", headers={"X-Auth-Token": token}, timeout=30)
    assert h.headers["X-Delete-At"] == "9999999999"
    server_log_clean(server, since)


def test_tempurl_expiring_after_year_9999_is_401(server: LampiServer, token_and_url, unique: str) -> None:  # noqa: ANN001
    """The answer's Expires header names the URL's expiry: one past 9999 cannot be written."""
    token, url = token_and_url
    requests.put(f"{url}/{unique}", headers={"X-Auth-Token": token,
                                            "X-Container-Meta-Temp-URL-Key": "k"}, timeout=30).raise_for_status()
    requests.put(f"{url}/{unique}/o", data=b"x", headers={"X-Auth-Token": token}, timeout=30).raise_for_status()
    path = "/" + url.split("//", 1)[1].split("/", 1)[1] + f"/{unique}/o"
    for expires in (str(10**12), str(int(time.time()) + 60)):
        sig = hmac.new(b"k", f"GET\n{expires}\n{path}".encode(), hashlib.sha256).hexdigest()
        r = requests.get(server.url + path, params={"temp_url_sig": sig, "temp_url_expires": expires}, timeout=30)
        if expires == str(10**12):
            assert r.status_code == 401 and "9999" in r.text, (r.status_code, r.text)
        else:
            assert r.status_code == 200 and r.content == b"x"


# -- header values that are not UTF-8 ------------------------------------------------------------------


def test_swift_header_values_not_utf8(server: LampiServer, token_and_url, unique: str) -> None:  # noqa: ANN001
    """aiohttp passes such bytes on as surrogate escapes, which SQLite cannot store: a
    Content-Type of them answered 500 (Swift: 400 "Invalid Content-Type"), and an ACL or
    versions location of them was stored and broke every later request."""
    token, url = token_and_url
    h = {"X-Auth-Token": token}
    requests.put(f"{url}/{unique}", headers=h, timeout=30).raise_for_status()
    since = len(server.log())
    r = requests.put(f"{url}/{unique}/o", data=b"x", headers={**h, "Content-Type": b"text/\xff"}, timeout=30)
    assert r.status_code == 400 and r.text == "Invalid Content-Type"
    r = requests.put(f"{url}/{unique}/o", data=b"x", headers={**h, "Content-Disposition": b"\xe9"}, timeout=30)
    assert r.status_code == 400 and r.text == "Invalid Content-Disposition"
    for name in ("X-Copy-From", "X-Symlink-Target", "X-Object-Manifest"):
        r = requests.put(f"{url}/{unique}/o", data=b"", headers={**h, name: f"{unique}/".encode() + b"\xff"},
                         timeout=30)
        assert r.status_code == 412 and r.text == "Invalid UTF8 or contains NULL", (name, r.status_code, r.text)
    for name in ("X-Container-Read", "X-Versions-Location"):
        r = requests.post(f"{url}/{unique}", headers={**h, name: b"\xff:x"}, timeout=30)
        assert r.status_code in (400, 412), (name, r.status_code, r.text)
    r = requests.put(f"{url}/{unique}/o", data=b"x", headers={**h, "Content-Type": "text/caf\u00e9".encode()},
                     timeout=30)
    assert r.status_code == 201  # UTF-8 is fine
    r = requests.head(f"{url}/{unique}", headers=h, timeout=30)
    assert r.status_code == 204 and "X-Container-Read" not in r.headers
    server_log_clean(server, since)


def test_s3_header_values_not_utf8(server: LampiServer, s3, ec2_keys, unique: str) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=unique)
    keys = S3Keys(ec2_keys["access"], ec2_keys["secret"])
    host = server.url.split("//", 1)[1]
    since = len(server.log())
    for name, value in (("x-amz-meta-a", b"\xff"), ("Content-Type", b"\xe9"),
                        ("x-amz-copy-source", f"/{unique}/".encode() + b"\xff")):
        signed = dict(keys.sign("PUT", f"/{unique}/o", "", host, hashlib.sha256(b"x").hexdigest()))
        r = requests.put(f"{server.url}/{unique}/o", data=b"x", headers={**signed, name: value}, timeout=30)
        s3_error(r, 400, "InvalidArgument")
    # a signed header of such bytes: the signature is over the bytes as sent (was a 500)
    r = requests.get(f"{server.url}/{unique}/o", timeout=30, headers={
        "X-Amz-Date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()), "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD",
        "Authorization": (f"AWS4-HMAC-SHA256 Credential={keys.access}/{time.strftime('%Y%m%d', time.gmtime())}/"
                          "r\xe9gion/s3/aws4_request, SignedHeaders=host, Signature=" + "0" * 64).encode("latin-1")})
    s3_error(r, 403, "SignatureDoesNotMatch")
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=unique, Key="o")
    assert exc.value.response["Error"]["Code"] == "404"
    server_log_clean(server, since)


def test_s3_aws_chunked_without_a_body_is_400(server: LampiServer, ec2_keys, unique: str, s3) -> None:  # noqa: ANN001
    """An aws-chunked upload with an empty body (not even the final chunk): the empty body
    reader aiohttp gives has no readuntil (AttributeError, a 500)."""
    s3.create_bucket(Bucket=unique)
    keys = S3Keys(ec2_keys["access"], ec2_keys["secret"])
    host = server.url.split("//", 1)[1]
    payload = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    headers = dict(keys.sign("PUT", f"/{unique}/o", "", host, payload))
    headers.update({"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": "0", "Content-Length": "0"})
    s3_error(requests.put(f"{server.url}/{unique}/o", data=b"", headers=headers, timeout=30), 400, "IncompleteBody")


def test_expect_header_not_utf8_is_417(server: LampiServer, token_and_url) -> None:  # noqa: ANN001
    token, url = token_and_url
    r = requests.put(f"{url}/x/y", data=b"x", headers={"X-Auth-Token": token, "Expect": b"\xff-continue"}, timeout=30)
    assert r.status_code == 417


def test_v1_auth_user_not_utf8_is_401(server: LampiServer) -> None:
    """A user name in Latin-1 ("é" as one byte, which is not UTF-8): the user lookup could
    not hold it (a 500). swiftclient itself sends UTF-8, which works."""
    since = len(server.log())
    for user, key in ((b"admin:caf\xe9", b"pw"), (b"caf\xe9:admin", b"pw"), (b"admin:admin", b"caf\xe9")):
        r = requests.get(f"{server.url}/auth/v1.0", headers={"X-Auth-User": user, "X-Auth-Key": key}, timeout=60)
        assert r.status_code == 401, (user, key, r.status_code)
    with pytest.raises(swiftclient.ClientException) as exc:
        swiftclient.get_auth(f"{server.url}/auth/v1.0", "admin:caf\u00e9", "pw", auth_version="1.0")
    assert exc.value.http_status == 401
    server_log_clean(server, since)


def test_s3_access_key_not_utf8_is_403(server: LampiServer) -> None:
    """The access key of a SigV4 or SigV2 Authorization header is looked up as given:
    bytes that are not UTF-8 reached the metadata store (a 500)."""
    since = len(server.log())
    now = time.gmtime()
    v4 = (b"AWS4-HMAC-SHA256 Credential=\xff/" + time.strftime("%Y%m%d", now).encode()
          + b"/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=" + b"0" * 64)
    r = requests.get(f"{server.url}/b/k", timeout=30, headers={
        "Authorization": v4, "X-Amz-Date": time.strftime("%Y%m%dT%H%M%SZ", now), "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    s3_error(r, 403, "InvalidAccessKeyId")
    r = requests.get(f"{server.url}/b/k", timeout=30, headers={
        "Authorization": b"AWS \xff:c2ln", "Date": time.strftime("%a, %d %b %Y %H:%M:%S GMT", now)})
    s3_error(r, 403, "InvalidAccessKeyId")
    server_log_clean(server, since)


def test_s3_response_header_overrides_with_control_characters(server: LampiServer, s3, unique: str) -> None:  # noqa: ANN001
    """``response-content-type=a%0D%0AX-Injected: 1``: a header cannot carry CR, LF or NUL
    (aiohttp refused to send it: a 500); now 400 InvalidArgument, and no header is split."""
    s3.create_bucket(Bucket=unique)
    s3.put_object(Bucket=unique, Key="o", Body=b"x")
    since = len(server.log())
    for value in ("a\r\nX-Injected: 1", "\n", "a\x00b"):
        with pytest.raises(ClientError) as exc:
            s3.get_object(Bucket=unique, Key="o", ResponseContentType=value)
        assert exc.value.response["Error"]["Code"] == "InvalidArgument"
        assert "X-Injected" not in exc.value.response["ResponseMetadata"]["HTTPHeaders"]
    got = s3.get_object(Bucket=unique, Key="o", ResponseContentType="text/plain;\tcharset=utf-8")
    assert got["ContentType"] == "text/plain;\tcharset=utf-8"  # a tab is fine
    server_log_clean(server, since)


def test_a_fault_no_parser_knows_is_still_a_logged_500(fresh_server: LampiServer, unique: str) -> None:
    """The fixes are at the parsers, not a catch-all turning errors into 4xx: a request
    that fails for a reason no parser knows of (here a metadata row damaged behind the
    server's back) is still a 500 in the protocol's format, logged with its trans id."""
    import sqlite3

    fresh_server.start(timeout=120)
    rc = fresh_server.openrc()
    conn = swiftclient.Connection(authurl=rc["OS_AUTH_URL"], user=rc["OS_USERNAME"], key=rc["OS_PASSWORD"],
                                  os_options={"user_domain_name": "Default", "project_domain_name": "Default",
                                              "project_name": rc["OS_PROJECT_NAME"]}, auth_version="3", retries=0)
    conn.put_container(unique)
    conn.put_object(unique, "o", b"data")
    db = sqlite3.connect(fresh_server.data_dir / "meta.db")
    with db:
        db.execute("UPDATE objects SET sysmeta = 'not json' WHERE container = ? AND name = 'o'", (unique,))
    db.close()
    with pytest.raises(swiftclient.ClientException) as exc:
        conn.get_object(unique, "o")
    assert exc.value.http_status == 500
    tid = exc.value.http_response_headers["x-trans-id"]
    logged = [json.loads(line) for line in fresh_server.log().splitlines() if '"unhandled error"' in line]
    assert [e["trans_id"] for e in logged] == [tid] and "JSONDecodeError" in logged[0]["exc"]
