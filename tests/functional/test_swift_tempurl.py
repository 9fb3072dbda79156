"""TempURL: `swift tempurl` URLs used with curl and requests; keys, digests, prefixes,
expiry and the 401 reasons."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import subprocess
import time
from urllib.parse import urlsplit

import pytest
import requests
from swiftclient.utils import generate_temp_url

from tests.functional.conftest import LampiServer
from tests.functional.swift_helpers import new_account


@pytest.fixture(scope="module")
def acct(server: LampiServer):  # noqa: ANN201
    a = new_account(server)
    a.conn.post_account({"X-Account-Meta-Temp-URL-Key": "acctkey", "X-Account-Meta-Temp-URL-Key-2": "acctkey2"})
    return a


def env_of(server: LampiServer, a) -> dict[str, str]:  # noqa: ANN001
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update({"OS_AUTH_URL": server.auth_url, "OS_IDENTITY_API_VERSION": "3", "OS_USERNAME": a.user,
                "OS_PASSWORD": a.password, "OS_PROJECT_NAME": a.project, "OS_USER_DOMAIN_NAME": "Default",
                "OS_PROJECT_DOMAIN_NAME": "Default"})
    return env


def path_of(a, *parts: str) -> str:  # noqa: ANN001
    return urlsplit(a.url).path + "/" + "/".join(parts)


def v1_path_of(a, *parts: str) -> str:  # noqa: ANN001
    """The object's path in Swift's /v1 form (the catalog's URL is Allas's /swift/v1):
    swiftclient's prefix temp URLs take the segment after /v1/<account>/ as container."""
    return path_of(a, *parts).removeprefix("/swift")


def test_swift_tempurl_with_curl_then_expires(server: LampiServer, acct, unique: str) -> None:  # noqa: ANN001
    acct.conn.put_container(unique)
    acct.conn.put_object(unique, "report.txt", b"temp data", headers={"X-Object-Meta-Secret": "s",
                                                                       "X-Object-Meta-Public-Ok": "y"})
    p = path_of(acct, unique, "report.txt")
    out = subprocess.run(["swift", "tempurl", "GET", "3", p, "acctkey"], env=env_of(server, acct),
                         capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    url = server.url + out
    r = subprocess.run(["curl", "-s", "-D", "-", url], capture_output=True, check=True, timeout=30)
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and body == b"temp data"
    assert b"attachment; filename=\"report.txt\"" in head
    assert b"x-object-meta-secret" not in head.lower() and b"x-object-meta-public-ok" in head.lower()
    assert requests.head(url, timeout=10).status_code == 200  # HEAD with a GET signature
    assert requests.put(url, data=b"x", timeout=10).status_code == 401  # GET signature only
    time.sleep(4)
    r = requests.get(url, timeout=10)
    assert r.status_code == 401 and "expired" in r.text


def test_put_tempurl_and_digests(server: LampiServer, acct, unique: str) -> None:  # noqa: ANN001
    acct.conn.put_container(unique)
    p = path_of(acct, unique, "up.bin")
    exp = int(time.time() + 60)
    for i, digest in enumerate(("sha1", "sha256", "sha512")):
        u = generate_temp_url(p, exp, "acctkey2", "PUT", digest=digest, absolute=True)
        r = requests.put(server.url + u, data=b"v%d" % i, timeout=10)
        assert r.status_code == 201, (digest, r.text)
    assert acct.conn.get_object(unique, "up.bin")[1] == b"v2"
    # <alg>:<base64> form of sha256, and the ISO 8601 expiry
    body = f"GET\n{exp}\n{p}".encode()
    sig = "sha256:" + base64.urlsafe_b64encode(hmac.new(b"acctkey", body, hashlib.sha256).digest()).decode().rstrip("=")
    r = requests.get(server.url + p, params={"temp_url_sig": sig, "temp_url_expires": exp}, timeout=10)
    assert r.status_code == 200 and r.content == b"v2"
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(exp))
    u = generate_temp_url(p, iso, "acctkey", "GET", iso8601=True)
    assert requests.get(server.url + u, timeout=10).content == b"v2"
    # DELETE
    u = generate_temp_url(p, exp, "acctkey", "DELETE", absolute=True)
    assert requests.delete(server.url + u, timeout=10).status_code == 204


def test_container_key_prefix_inline_filename_ip_range(server: LampiServer, acct, unique: str) -> None:  # noqa: ANN001
    acct.conn.put_container(unique, headers={"X-Container-Meta-Temp-URL-Key": "ckey"})
    acct.conn.put_object(unique, "dir/a.txt", b"A")
    acct.conn.put_object(unique, "other.txt", b"O")
    exp = int(time.time() + 60)
    u = generate_temp_url(v1_path_of(acct, unique, "dir/"), exp, "ckey", "GET", prefix=True, absolute=True)
    base, qs = u.split("?", 1)
    r = requests.get(server.url + path_of(acct, unique, "dir/a.txt") + "?" + qs + "&inline", timeout=10)
    assert r.status_code == 200 and r.content == b"A" and r.headers["Content-Disposition"] == "inline"
    r = requests.get(server.url + path_of(acct, unique, "other.txt") + "?" + qs, timeout=10)
    assert r.status_code == 401 and "prefix" in r.text
    u = generate_temp_url(path_of(acct, unique, "other.txt"), exp, "ckey", "GET", absolute=True)
    r = requests.get(server.url + u + "&filename=nice%20name.txt", timeout=10)
    assert r.status_code == 200 and "nice%20name.txt" in r.headers["Content-Disposition"]
    ok = generate_temp_url(path_of(acct, unique, "other.txt"), exp, "ckey", "GET", ip_range="127.0.0.0/8", absolute=True)
    assert requests.get(server.url + ok, timeout=10).status_code == 200
    bad = generate_temp_url(path_of(acct, unique, "other.txt"), exp, "ckey", "GET", ip_range="10.0.0.0/8", absolute=True)
    r = requests.get(server.url + bad, timeout=10)
    assert r.status_code == 401 and "temp_url_ip_range" in r.text
    # container keys are hidden from non-owners (a read grantee)
    g = new_account(server)
    acct.conn.post_container(unique, {"X-Container-Read": f"{g.project_id}:*"})
    h = requests.head(acct.url + "/" + unique, headers={"X-Auth-Token": g.token}, timeout=10)
    assert h.status_code == 204 and "X-Container-Meta-Temp-Url-Key" not in h.headers
    assert acct.conn.head_container(unique)["x-container-meta-temp-url-key"] == "ckey"
    ha = requests.head(acct.url, headers={"X-Auth-Token": g.token}, timeout=10)
    assert ha.status_code == 403


def test_rejections_say_why_and_store_nothing(server: LampiServer, acct, unique: str) -> None:  # noqa: ANN001
    acct.conn.put_container(unique)
    p = path_of(acct, unique, "x")
    exp = int(time.time() + 60)
    good = generate_temp_url(p, exp, "acctkey", "PUT", absolute=True)
    bad_sig = good.replace("temp_url_sig=", "temp_url_sig=0")  # 41 hex digits
    cases = [
        (generate_temp_url(p, exp, "wrongkey", "PUT", absolute=True), "signature does not match"),
        (generate_temp_url(p, int(time.time() - 10), "acctkey", "PUT", absolute=True), "expired"),
        (bad_sig, "signature"),
        (p + "?temp_url_sig=abc&temp_url_expires=" + str(exp), "signature"),
        (p + "?temp_url_expires=" + str(exp), "temp_url_sig missing"),
        (p + "?temp_url_sig=" + "0" * 40 + "&temp_url_expires=notatime", "temp_url_expires"),
    ]
    for u, reason in cases:
        r = requests.put(server.url + u, data=b"nope", timeout=10)
        assert r.status_code == 401 and reason in r.text, (u, r.text)
        assert r.text.startswith("401 Unauthorized: Temp URL invalid")
    assert acct.conn.get_container(unique)[1] == []
    # no key configured at all
    b = new_account(server)
    b.conn.put_container(unique + "b")
    u = generate_temp_url(path_of(b, unique + "b", "x"), exp, "acctkey", "GET", absolute=True)
    r = requests.get(server.url + u, timeout=10)
    assert r.status_code == 401 and "no temp URL key configured" in r.text
    # disallowed header on PUT
    r = requests.put(server.url + good, data=b"", headers={"X-Object-Manifest": f"{unique}/seg"}, timeout=10)
    assert r.status_code == 400 and "X-Object-Manifest" in r.text
    assert acct.conn.get_container(unique)[1] == []


def test_account_keys_hidden_from_non_owner(server: LampiServer, acct) -> None:  # noqa: ANN001
    g = new_account(server)
    r = requests.post(acct.url, headers={"X-Auth-Token": acct.token,
                                         "X-Account-Access-Control": f'{{"read-only": ["{g.project_id}:*"]}}'},
                      timeout=10)
    assert r.status_code == 204
    h = requests.head(acct.url, headers={"X-Auth-Token": g.token}, timeout=10)
    assert h.status_code == 204 and "X-Account-Meta-Temp-Url-Key" not in h.headers
    assert acct.conn.head_account()["x-account-meta-temp-url-key"] == "acctkey"
    requests.post(acct.url, headers={"X-Auth-Token": acct.token, "X-Account-Access-Control": "{}"}, timeout=10)


def test_signed_over_either_form_of_an_allas_url(server: LampiServer, acct, unique: str) -> None:  # noqa: ANN001
    """The catalog's storage URL is Allas's /swift/v1/AUTH_<id>: a temp URL under it may
    be signed over the path as requested or over its /v1 form (RGW accepts both), prefix
    temp URLs too; /v1 URLs are signed over /v1 only."""
    acct.conn.put_container(unique)
    acct.conn.put_object(unique, "d/o.txt", b"both")
    exp = int(time.time() + 60)
    swift_path, v1_path = path_of(acct, unique, "d/o.txt"), v1_path_of(acct, unique, "d/o.txt")
    assert swift_path.startswith("/swift/v1/") and v1_path.startswith("/v1/")
    for signed in (swift_path, v1_path):
        qs = generate_temp_url(signed, exp, "acctkey", "GET").split("?", 1)[1]
        r = requests.get(server.url + swift_path + "?" + qs, timeout=10)
        assert r.status_code == 200 and r.content == b"both", signed
    qs = generate_temp_url(swift_path, exp, "acctkey", "GET").split("?", 1)[1]
    assert requests.get(server.url + v1_path + "?" + qs, timeout=10).status_code == 401
    qs = generate_temp_url(v1_path_of(acct, unique, "d/"), exp, "acctkey", "GET", prefix=True).split("?", 1)[1]
    r = requests.get(server.url + swift_path + "?" + qs, timeout=10)
    assert r.status_code == 200 and r.content == b"both"
