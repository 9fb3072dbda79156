"""Container quotas, account quotas (cloud admins only) and per-project limits set with
``lampi project set-quota``: Swift's 413 "Upload exceeds quota." and 403 container
limit, checked before bytes are accepted, stored data intact."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
import requests
import swiftclient
from swiftclient import ClientException

from tests.functional.conftest import LampiServer
from tests.functional.swift_helpers import new_account


def _err(fn, *a, **kw) -> ClientException:  # noqa: ANN001
    with pytest.raises(ClientException) as exc:
        fn(*a, **kw)
    return exc.value


def test_container_quota_bytes_and_count(swift_conn, unique: str) -> None:  # noqa: ANN001
    swift_conn.put_container(unique, headers={"X-Container-Meta-Quota-Bytes": "10",
                                              "X-Container-Meta-Quota-Count": "3"})
    swift_conn.put_object(unique, "a", b"12345")
    e = _err(swift_conn.put_object, unique, "b", b"123456")  # 5 + 6 > 10
    assert e.http_status == 413 and e.http_response_content == b"Upload exceeds quota."
    swift_conn.put_object(unique, "b", b"12345")  # exactly at the quota
    # copy is counted with the source's size
    e = _err(swift_conn.copy_object, unique, "a", f"/{unique}/c")
    assert e.http_status == 413
    swift_conn.post_container(unique, headers={"X-Container-Meta-Quota-Bytes": "1000"})
    swift_conn.put_object(unique, "c", b"1")
    e = _err(swift_conn.put_object, unique, "d", b"1")  # the 4th object
    assert e.http_status == 413
    assert sorted(o["name"] for o in swift_conn.get_container(unique)[1]) == ["a", "b", "c"]
    assert swift_conn.get_object(unique, "a")[1] == b"12345"
    # removing the quota lifts it
    swift_conn.post_container(unique, headers={"X-Remove-Container-Meta-Quota-Count": "x"})
    swift_conn.put_object(unique, "d", b"1")


def test_container_quota_chunked_upload_stops_at_limit(token_and_url, swift_conn, unique: str) -> None:  # noqa: ANN001
    token, url = token_and_url
    swift_conn.put_container(unique, headers={"X-Container-Meta-Quota-Bytes": "100000"})

    def gen():  # noqa: ANN202
        for _ in range(50):
            yield b"z" * 10000

    r = requests.put(f"{url}/{unique}/big", headers={"X-Auth-Token": token}, data=gen())
    assert r.status_code == 413 and r.text == "Upload exceeds quota."
    assert swift_conn.get_container(unique)[1] == []
    assert swift_conn.head_container(unique)["x-container-bytes-used"] == "0"


def test_bad_container_quota_values(token_and_url, swift_conn, unique: str) -> None:  # noqa: ANN001
    token, url = token_and_url
    r = requests.put(f"{url}/{unique}", headers={"X-Auth-Token": token, "X-Container-Meta-Quota-Bytes": "abc"})
    assert r.status_code == 400 and r.text == "Invalid bytes quota."
    swift_conn.put_container(unique)
    r = requests.post(f"{url}/{unique}", headers={"X-Auth-Token": token, "X-Container-Meta-Quota-Count": "-1"})
    assert r.status_code == 400 and r.text == "Invalid count quota."
    assert "x-container-meta-quota-count" not in swift_conn.head_container(unique)


def test_account_quota_set_by_admin_only(server: LampiServer, swift_conn, unique: str) -> None:  # noqa: ANN001
    acct = new_account(server)
    e = _err(acct.conn.post_account, headers={"X-Account-Meta-Quota-Bytes": "100"})
    assert e.http_status == 403
    e = _err(acct.conn.post_account, headers={"X-Remove-Account-Meta-Quota-Bytes": "x"})
    assert e.http_status == 403
    # the cloud admin (admin role on the admin project) sets it on the user's account
    admin_url = swift_conn.get_auth()[0].rsplit("/", 1)[0] + "/AUTH_" + acct.project_id
    token = swift_conn.get_auth()[1]
    r = requests.post(admin_url, headers={"X-Auth-Token": token, "X-Account-Meta-Quota-Bytes": "100"})
    assert r.status_code == 204
    r = requests.post(admin_url, headers={"X-Auth-Token": token, "X-Account-Meta-Quota-Bytes": "lots"})
    assert r.status_code == 400
    assert acct.conn.head_account()["x-account-meta-quota-bytes"] == "100"
    acct.conn.put_container(unique)
    acct.conn.put_object(unique, "a", b"x" * 60)
    e = _err(acct.conn.put_object, unique, "b", b"x" * 50)
    assert e.http_status == 413 and e.http_response_content == b"Upload exceeds quota."
    acct.conn.put_object(unique, "b", b"x" * 40)
    assert acct.conn.head_account()["x-account-bytes-used"] == "100"
    r = requests.post(admin_url, headers={"X-Auth-Token": token, "X-Remove-Account-Meta-Quota-Bytes": "x"})
    assert r.status_code == 204
    acct.conn.put_object(unique, "c", b"x" * 50)


def test_account_quota_bytes_count_and_policy_headers(server: LampiServer, unique: str) -> None:
    """account_quotas' newer headers, X-Account-Quota-Bytes / -Count and their
    -Policy-<name> forms: set and removed by a reseller (the ResellerAdmin role) only,
    shown to the account's users, enforced with 413."""
    acct = new_account(server)
    policy = swiftclient_info(server)["swift"]["policies"][0]["name"]
    for header in ("X-Account-Quota-Bytes", "X-Account-Quota-Count", f"X-Account-Quota-Bytes-Policy-{policy}",
                   f"X-Account-Quota-Count-Policy-{policy}"):
        for h in (header, header.replace("X-", "X-Remove-", 1)):
            e = _err(acct.conn.post_account, headers={h: "0"})
            assert e.http_status == 403, h
    server.cli("user", "create", f"ra{unique}", "--password", "pw", "--project", acct.project, "--role",
               "ResellerAdmin")
    reseller = swiftclient.Connection(
        authurl=server.auth_url, user=f"ra{unique}", key="pw", auth_version="3", retries=0,
        os_options={"user_domain_name": "Default", "project_domain_name": "Default", "project_name": acct.project})
    url, token = reseller.get_auth()

    def post(headers: dict[str, str]) -> int:
        return requests.post(url, headers={"X-Auth-Token": token, **headers}).status_code

    assert post({"X-Account-Quota-Count": "lots"}) == 400
    assert post({"X-Account-Quota-Count": "2", "X-Account-Quota-Bytes": "100"}) == 204
    h = acct.conn.head_account()  # the user sees them (and cannot change them)
    assert h["x-account-quota-count"] == "2" and h["x-account-quota-bytes"] == "100"
    acct.conn.put_container(unique)
    acct.conn.put_object(unique, "a", b"x")
    acct.conn.put_object(unique, "b", b"x")
    e = _err(acct.conn.put_object, unique, "c", b"x")  # a third object
    assert e.http_status == 413 and e.http_response_content == b"Upload exceeds quota."
    assert post({"X-Remove-Account-Quota-Count": "t"}) == 204
    assert "x-account-quota-count" not in acct.conn.head_account()
    e = _err(acct.conn.put_object, unique, "c", b"x" * 99)  # 2 + 99 > 100
    assert e.http_status == 413
    assert post({"X-Account-Quota-Bytes": ""}) == 204  # an empty value removes it too
    acct.conn.put_object(unique, "c", b"x" * 99)
    # per policy
    assert post({f"X-Account-Quota-Count-Policy-{policy}": "3"}) == 204
    assert acct.conn.head_account()[f"x-account-quota-count-policy-{policy}".lower()] == "3"
    e = _err(acct.conn.put_object, unique, "d", b"x")
    assert e.http_status == 413
    assert post({f"X-Remove-Account-Quota-Count-Policy-{policy}": "t"}) == 204
    acct.conn.put_object(unique, "d", b"x")
    # the legacy header is shown both ways, as Swift's middleware answers
    assert post({"X-Account-Meta-Quota-Bytes": "123"}) == 204
    h = acct.conn.head_account()
    assert h["x-account-quota-bytes"] == "123" and h["x-account-meta-quota-bytes"] == "123"
    assert post({"X-Remove-Account-Meta-Quota-Bytes": "t"}) == 204
    h = acct.conn.head_account()
    assert "x-account-quota-bytes" not in h and "x-account-meta-quota-bytes" not in h


def swiftclient_info(server: LampiServer) -> dict:
    return requests.get(f"{server.url}/info").json()


def test_project_quotas_with_cli(server: LampiServer, unique: str) -> None:
    acct = new_account(server)
    out = server.cli("project", "set-quota", acct.project, "--json")
    shown = json.loads(out.stdout)
    assert (shown["bytes"], shown["containers"], shown["objects_per_container"]) == (10 * 1024**4, 1000, 500000)
    server.cli("project", "set-quota", acct.project, "--containers", "2", "--bytes", "1000",
               "--objects-per-container", "2")
    acct.conn.put_container(unique + "-1")
    acct.conn.put_container(unique + "-2")
    e = _err(acct.conn.put_container, unique + "-3")
    assert e.http_status == 403 and e.http_response_content == b"Reached container limit of 2"
    acct.conn.put_container(unique + "-2")  # an existing one: still 202
    acct.conn.put_object(unique + "-1", "a", b"a")
    acct.conn.put_object(unique + "-1", "b", b"b")
    e = _err(acct.conn.put_object, unique + "-1", "c", b"c")
    assert e.http_status == 413
    e = _err(acct.conn.put_object, unique + "-2", "big", b"x" * 1000)
    assert e.http_status == 413
    # back to the defaults / unlimited
    server.cli("project", "set-quota", acct.project, "--containers", "default", "--bytes", "unlimited",
               "--objects-per-container", "default")
    acct.conn.put_container(unique + "-3")
    acct.conn.put_object(unique + "-2", "big", b"x" * 1000)
    acct.conn.put_object(unique + "-1", "c", b"c")
    bad = server.cli("project", "set-quota", acct.project, "--bytes", "ten", check=False)
    assert bad.returncode == 2 and "expected a whole number" in bad.stderr


def test_extract_archive_counts_against_quota(token_and_url, swift_conn, unique: str) -> None:  # noqa: ANN001
    token, url = token_and_url
    swift_conn.put_container(unique, headers={"X-Container-Meta-Quota-Count": "1"})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("one", "two"):
            info = tarfile.TarInfo(f"{unique}/{name}")
            info.size = 3
            tar.addfile(info, io.BytesIO(b"abc"))
    r = requests.put(f"{url}?extract-archive=tar", headers={"X-Auth-Token": token, "Accept": "application/json"},
                     data=buf.getvalue())
    res = r.json()
    assert res["Number Files Created"] == 1
    assert res["Errors"] == [[f"{unique}/two", "413 Request Entity Too Large"]]
    assert [o["name"] for o in swift_conn.get_container(unique)[1]] == ["one"]


def test_info_advertises_quotas(server: LampiServer) -> None:
    info = requests.get(f"{server.url}/info").json()
    assert "container_quotas" in info and "account_quotas" in info
