"""Container and account ACLs, public (anonymous) access and cross-project sharing,
with the real swift CLI, python-swiftclient and raw HTTP."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import pytest
import requests
import swiftclient

from tests.functional.conftest import LampiServer
from tests.functional.swift_helpers import Raw, new_account


def swift_cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["swift", *args], env=env, capture_output=True, text=True, timeout=60, check=check)


def account_env(server: LampiServer, acct) -> dict[str, str]:  # noqa: ANN001
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update({
        "OS_AUTH_URL": server.auth_url, "OS_IDENTITY_API_VERSION": "3", "OS_AUTH_TYPE": "password",
        "OS_USERNAME": acct.user, "OS_PASSWORD": acct.password, "OS_PROJECT_NAME": acct.project,
        "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_NAME": "Default",
    })
    return env


@pytest.fixture(scope="module")
def owner(server: LampiServer):  # noqa: ANN201
    return new_account(server)


@pytest.fixture(scope="module")
def other(server: LampiServer):  # noqa: ANN201
    return new_account(server)


def test_public_container_and_segments_anonymous_download(server: LampiServer, owner, unique: str,  # noqa: ANN001
                                                          tmp_path) -> None:
    """`swift post -r '.r:*,.rlistings'` on a container and its _segments, then anonymous
    curl download (by the storage URL and by Allas's /<bucket>/<object> link) and listing."""
    env = account_env(server, owner)
    data = os.urandom(300_000)
    f = tmp_path / "big.bin"
    f.write_bytes(data)
    swift_cli(env, "upload", unique, str(f), "--object-name", "big.bin", "-S", "100000")
    url = f"{owner.url}/{unique}/big.bin"
    # private: anonymous gets 401 (no credentials), listing too
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(f"{server.url}/{unique}/big.bin", timeout=10).status_code == 403  # S3 AccessDenied
    swift_cli(env, "post", "-r", ".r:*,.rlistings", unique)
    swift_cli(env, "post", "-r", ".r:*,.rlistings", unique + "_segments")
    stat = swift_cli(env, "stat", unique).stdout
    assert ".r:*,.rlistings" in stat
    # anonymous: the segments are readable; the manifest too (large-object assembly is
    # engineer A's; here each object is fetched as stored)
    listing = requests.get(f"{owner.url}/{unique}_segments", timeout=10)
    assert listing.status_code == 200 and listing.text.strip()
    seg_names = listing.text.split()
    out = b"".join(
        subprocess.run(["curl", "-sf", f"{owner.url}/{unique}_segments/{n}"], capture_output=True,
                       check=True, timeout=30).stdout
        for n in sorted(seg_names)
    )
    assert hashlib.md5(out).hexdigest() == hashlib.md5(data).hexdigest()
    # the large object itself, by curl, at the storage URL and at the public link
    for u in (url, f"{server.url}/{unique}/big.bin"):
        got = subprocess.run(["curl", "-sf", u], capture_output=True, check=True, timeout=30).stdout
        assert hashlib.md5(got).hexdigest() == hashlib.md5(data).hexdigest(), u
    # Allas's public link form
    for n in seg_names[:1]:
        r = requests.get(f"{server.url}/{unique}_segments/{n}", timeout=10)
        assert r.status_code == 200 and r.content == data[:100000]
        assert requests.head(f"{server.url}/{unique}_segments/{n}", timeout=10).status_code == 200
    r = requests.get(f"{owner.url}/{unique}?format=json", timeout=10)
    assert r.status_code == 200 and [o["name"] for o in r.json()] == ["big.bin"]
    # anonymous writes stay refused and nothing is stored
    assert requests.put(f"{owner.url}/{unique}/x", data=b"x", timeout=10).status_code == 401
    assert requests.delete(url, timeout=10).status_code == 401
    assert requests.post(f"{owner.url}/{unique}", headers={"X-Container-Read": ""}, timeout=10).status_code == 401
    names = [o["name"] for o in owner.conn.get_container(unique)[1]]
    assert names == ["big.bin"]
    # privileged headers are hidden from non-owners
    h = requests.head(f"{owner.url}/{unique}", timeout=10)
    assert h.status_code == 204 and "X-Container-Read" not in h.headers
    assert owner.conn.head_container(unique)["x-container-read"] == ".r:*,.rlistings"


def test_read_without_rlistings_and_private_again(owner, unique: str) -> None:  # noqa: ANN001
    owner.conn.put_container(unique, headers={"X-Container-Read": ".r:*"})
    owner.conn.put_object(unique, "o", b"hello")
    assert requests.get(f"{owner.url}/{unique}/o", timeout=10).content == b"hello"
    assert requests.get(f"{owner.url}/{unique}", timeout=10).status_code == 401  # no .rlistings
    owner.conn.post_container(unique, {"X-Remove-Container-Read": "x"})
    assert requests.get(f"{owner.url}/{unique}/o", timeout=10).status_code == 401
    assert "x-container-read" not in owner.conn.head_container(unique)


def test_referrer_allow_and_deny(owner, unique: str) -> None:  # noqa: ANN001
    owner.conn.put_container(unique, headers={"X-Container-Read": ".r:.example.com,.r:-bad.example.com"})
    owner.conn.put_object(unique, "o", b"ref")
    url = f"{owner.url}/{unique}/o"
    assert requests.get(url, headers={"Referer": "http://www.example.com/page"}, timeout=10).status_code == 200
    assert requests.get(url, headers={"Referer": "http://bad.example.com/"}, timeout=10).status_code == 401
    assert requests.get(url, headers={"Referer": "http://other.org/"}, timeout=10).status_code == 401
    assert requests.get(url, timeout=10).status_code == 401
    # and not at the public-link form either
    base = owner.url.rsplit("/v1/", 1)[0].removesuffix("/swift")  # the catalog's URL is Allas's /swift/v1
    assert requests.get(f"{base}/{unique}/o",
                        headers={"Referer": "http://other.org/"}, timeout=10).status_code == 403


@pytest.mark.parametrize("header,value,message", [
    ("X-Container-Read", ".r:", "No host/domain value after referrer designation in ACL: '.r:'"),
    ("X-Container-Read", ".r:-", "No host/domain value after referrer designation in ACL: '.r:-'"),
    ("X-Container-Read", ".bogus:x", "Unknown designator '.bogus' in ACL: '.bogus:x'"),
    ("X-Container-Write", ".r:*", "Referrers not allowed in write ACL: '.r:*'"),
])
def test_bad_acl_strings_400(owner, unique: str, header: str, value: str, message: str) -> None:  # noqa: ANN001
    owner.conn.put_container(unique, headers={"X-Container-Read": "a:b"})
    raw = Raw(owner.token, owner.url)
    r = raw("POST", f"/{unique}", headers={header: value})
    assert r.status_code == 400 and r.text == message
    r = raw("PUT", f"/{unique}x", headers={header: value})
    assert r.status_code == 400 and r.text == message
    assert raw("HEAD", f"/{unique}x").status_code == 404  # not created
    assert owner.conn.head_container(unique)["x-container-read"] == "a:b"  # unchanged


def test_acl_is_cleaned(owner, unique: str) -> None:  # noqa: ANN001
    owner.conn.put_container(unique, headers={"X-Container-Read": ".referrer : * , ,.rlistings, p:u"})
    assert owner.conn.head_container(unique)["x-container-read"] == ".r:*,.rlistings,p:u"


def test_cross_project_share_with_swift_cli(server: LampiServer, owner, other, unique: str,  # noqa: ANN001
                                            tmp_path) -> None:
    """`<project>:*` read then write share, used by the grantee's swift CLI with
    --os-storage-url and their own token."""
    owner.conn.put_container(unique)
    owner.conn.put_object(unique, "shared.txt", b"from owner")
    genv = account_env(server, other)
    args = ("--os-storage-url", owner.url)
    r = swift_cli(genv, *args, "list", unique, check=False)
    assert r.returncode != 0 and "403" in r.stderr
    owner.conn.post_container(unique, {"X-Container-Read": f"{other.project}:*"})  # by project name
    assert swift_cli(genv, *args, "list", unique).stdout.split() == ["shared.txt"]
    out = tmp_path / "dl.txt"
    swift_cli(genv, *args, "download", unique, "shared.txt", "-o", str(out))
    assert out.read_bytes() == b"from owner"
    # read grant does not allow writes, nor container metadata changes
    up = tmp_path / "up.txt"
    up.write_bytes(b"from grantee")
    r = swift_cli(genv, *args, "upload", unique, str(up), "--object-name", "up.txt", check=False)
    assert r.returncode != 0
    raw = Raw(other.token, owner.url)
    assert raw("POST", f"/{unique}", headers={"X-Container-Meta-X": "y"}).status_code == 403
    assert raw("HEAD", f"/{unique}").headers.get("X-Container-Read") is None  # privileged: hidden
    # write grant by project id: upload and delete, but still no container changes
    owner.conn.post_container(unique, {"X-Container-Read": f"{other.project_id}:*",
                                       "X-Container-Write": f"{other.project_id}:*"})
    swift_cli(genv, *args, "upload", unique, str(up), "--object-name", "up.txt")
    assert owner.conn.get_object(unique, "up.txt")[1] == b"from grantee"
    assert raw("DELETE", f"/{unique}/up.txt").status_code == 204
    assert raw("POST", f"/{unique}", headers={"X-Container-Write": "*:*"}).status_code == 403
    assert raw("DELETE", f"/{unique}").status_code == 403
    assert owner.conn.head_container(unique)["x-container-write"] == f"{other.project_id}:*"
    # the grantee's own account does not list the shared container
    assert unique not in [c["name"] for c in other.conn.get_account()[1]]


def test_user_grants_by_name_and_id(server: LampiServer, owner, unique: str) -> None:  # noqa: ANN001
    g = new_account(server)
    owner.conn.put_container(unique)
    owner.conn.put_object(unique, "o", b"x")
    raw = Raw(g.token, owner.url)
    for acl in (f"{g.project}:someone-else", f"{g.project_id}:nobody"):
        owner.conn.post_container(unique, {"X-Container-Read": acl})
        assert raw("GET", f"/{unique}/o").status_code == 403
    user_id = server.cli("user", "list", "--json").stdout
    uid = next(u["id"] for u in json.loads(user_id) if u["name"] == g.user)
    for acl in (f"{g.project}:{g.user}", f"{g.project_id}:{uid}", f"*:{g.user}", "*:*"):
        owner.conn.post_container(unique, {"X-Container-Read": acl})
        assert raw("GET", f"/{unique}/o").status_code == 200, acl
        assert raw("GET", f"/{unique}").status_code == 200, acl  # project grants imply listing


def test_only_owner_sets_acls_and_reader_is_read_only(server: LampiServer, owner, unique: str) -> None:  # noqa: ANN001
    owner.conn.put_container(unique)
    reader = new_account(server, role="reader")
    # a reader in another project, granted read, still cannot set ACLs
    owner.conn.post_container(unique, {"X-Container-Read": f"{reader.project_id}:*"})
    raw = Raw(reader.token, owner.url)
    assert raw("POST", f"/{unique}", headers={"X-Container-Read": ".r:*"}).status_code == 403
    assert raw("PUT", f"/{unique}/o", data=b"x").status_code == 403
    assert owner.conn.head_container(unique)["x-container-read"] == f"{reader.project_id}:*"


def test_account_acls(server: LampiServer, owner) -> None:  # noqa: ANN001
    ro, rw, adm = new_account(server), new_account(server), new_account(server)
    c = "acct" + os.urandom(4).hex()
    owner.conn.put_container(c)
    owner.conn.put_object(c, "o", b"data")
    raw_owner = Raw(owner.token, owner.url)
    acl = {"read-only": [f"{ro.project_id}:*"], "read-write": [f"{rw.project}:{rw.user}"],
           "admin": [f"{adm.project_id}:*"]}
    r = raw_owner("POST", "", headers={"X-Account-Access-Control": json.dumps(acl)})
    assert r.status_code == 204
    shown = json.loads(raw_owner("HEAD", "").headers["X-Account-Access-Control"])
    assert shown == acl
    # read-only: list and read everything, write nothing, see no privileged headers
    r_ro = Raw(ro.token, owner.url)
    assert c in r_ro("GET", "").text.split()
    assert "X-Account-Access-Control" not in r_ro("HEAD", "").headers
    assert r_ro("GET", f"/{c}/o").content == b"data"
    assert r_ro("PUT", f"/{c}/n", data=b"x").status_code == 403
    # read-write: objects and containers, not the account
    r_rw = Raw(rw.token, owner.url)
    assert r_rw("PUT", f"/{c}/n", data=b"x").status_code == 201
    assert r_rw("PUT", f"/{c}rw").status_code == 201
    assert r_rw("DELETE", f"/{c}rw").status_code == 204
    assert r_rw("POST", "", headers={"X-Account-Meta-A": "b"}).status_code == 403
    assert "X-Account-Access-Control" not in r_rw("HEAD", "").headers
    # admin: owner rights, sees and changes the ACL
    r_adm = Raw(adm.token, owner.url)
    assert "X-Account-Access-Control" in r_adm("HEAD", "").headers
    assert r_adm("POST", "", headers={"X-Account-Access-Control": json.dumps({"read-only": []})}).status_code == 204
    # shown as Swift's format_acl(version=2) shows what was stored: compact, keys sorted
    assert raw_owner("HEAD", "").headers["X-Account-Access-Control"] == '{"read-only":[]}'
    assert r_ro("GET", f"/{c}/o").status_code == 403
    # '{}' grants nothing: no header at all, as Swift (lampi answered '{}')
    assert raw_owner("POST", "", headers={"X-Account-Access-Control": "{}"}).status_code == 204
    assert "X-Account-Access-Control" not in raw_owner("HEAD", "").headers


@pytest.mark.parametrize("value,message", [
    ("{not json", "Syntax error in input ('{not json')"),
    ("invalid", "Syntax error in input ('invalid')"),
    ('["admin"]', """Syntax error in input ('["admin"]')"""),
    ('{"owner": []}', 'Key "owner" not recognized'),
    ('{"admin": "p:*"}', 'Value for key "admin" must be a list'),
    ('{"admin": [1]}', 'Elements of "admin" list must be strings'),
])
def test_bad_account_acl_400(owner, value: str, message: str) -> None:  # noqa: ANN001
    """tempauth's messages, word for word (lampi's quoted keys as Python does)."""
    raw = Raw(owner.token, owner.url)
    good = '{"admin":["nobody:nobody"]}'
    assert raw("POST", "", headers={"X-Account-Access-Control": good}).status_code == 204
    r = raw("POST", "", headers={"X-Account-Access-Control": value})
    assert r.status_code == 400
    assert r.text == f"X-Account-Access-Control invalid: {message}\n\nInput: {value}\n"
    assert "X-Account-Access-Control" not in r.headers
    assert raw("HEAD", "").headers.get("X-Account-Access-Control") == good  # the old ACL stays
    raw("POST", "", headers={"X-Account-Access-Control": ""})


def test_info_answers_options(server: LampiServer, owner) -> None:  # noqa: ANN001
    """As Swift's proxy (its RBAC tests ask with and without a token): 200 and Allow."""
    for headers in ({}, {"X-Auth-Token": owner.token}):
        r = requests.options(f"{server.url}/info", headers=headers)
        assert r.status_code == 200 and r.headers["Allow"] == "GET, HEAD, OPTIONS"


def test_info_advertises(server: LampiServer) -> None:
    info = swiftclient.Connection(preauthurl=server.url + "/v1/AUTH_x", preauthtoken="x").get_capabilities(
        server.url + "/info")
    assert info["tempauth"]["account_acls"] is True
    assert info["tempurl"]["methods"] == ["GET", "HEAD", "PUT", "POST", "DELETE"]
    assert set(info["tempurl"]["allowed_digests"]) == {"sha1", "sha256", "sha512"}
    assert info["tempurl"]["outgoing_remove_headers"] == ["x-object-meta-*"]
    assert "formpost" in info and "staticweb" in info


def _user_of(server: LampiServer, acct, role: str):  # noqa: ANN001, ANN202
    """Another user of ``acct``'s project, with ``role``; (name, token)."""
    import uuid

    name = "u" + uuid.uuid4().hex[:10]
    server.cli("user", "create", name, "--password", "pw", "--project", acct.project, "--role", role)
    conn = swiftclient.Connection(
        authurl=server.auth_url, user=name, key="pw", auth_version="3", retries=0,
        os_options={"user_domain_name": "Default", "project_domain_name": "Default", "project_name": acct.project})
    return name, conn.get_auth()[1]


def test_account_acl_levels_and_protected_metadata(server: LampiServer) -> None:
    """tempauth's account ACLs for a user of the account's own project who has no operator
    role (the suite's user 3): read-only and read-write read the account but see neither the
    temp-URL key nor the ACL; admin is swift_owner: sees and changes both."""
    acct = new_account(server)
    user, token = _user_of(server, acct, "reader")
    raw_owner, raw = Raw(acct.token, acct.url), Raw(token, acct.url)
    acct.conn.put_container("c")
    acct.conn.post_container("c", {"X-Container-Read": "jdoe", "X-Container-Meta-Temp-Url-Key": "ckey"})
    assert raw_owner("POST", "", headers={"X-Account-Meta-Temp-Url-Key": "secret",
                                          "X-Account-Meta-Test": "v"}).status_code == 204
    grantee = f"{acct.project}:{user}"
    for level in ("read-only", "read-write"):
        acl = json.dumps({level: [grantee]})
        assert raw_owner("POST", "", headers={"X-Account-Access-Control": acl}).status_code == 204
        h = raw("HEAD", "").headers
        assert h["X-Account-Meta-Test"] == "v"
        assert "X-Account-Meta-Temp-Url-Key" not in h and "X-Account-Access-Control" not in h
        ch = raw("HEAD", "/c").headers
        assert "X-Container-Read" not in ch and "X-Container-Meta-Temp-Url-Key" not in ch
        assert raw("POST", "", headers={"X-Account-Meta-Test": "w"}).status_code == 403
    acl = json.dumps({"admin": [grantee]})
    assert raw_owner("POST", "", headers={"X-Account-Access-Control": acl}).status_code == 204
    h = raw("HEAD", "").headers
    assert h["X-Account-Meta-Temp-Url-Key"] == "secret"
    assert h["X-Account-Access-Control"] == json.dumps({"admin": [grantee]}, separators=(",", ":"))
    assert raw("HEAD", "/c").headers["X-Container-Read"] == "jdoe"
    assert raw("POST", "", headers={"X-Account-Meta-Temp-Url-Key": "new"}).status_code == 204
    assert raw_owner("HEAD", "").headers["X-Account-Meta-Temp-Url-Key"] == "new"
    # an admin may even revoke its own access
    assert raw("POST", "", headers={"X-Account-Access-Control": "{}"}).status_code == 204
    assert raw("POST", "", headers={"X-Account-Meta-Test": "x"}).status_code == 403
    assert "X-Account-Meta-Temp-Url-Key" not in raw("HEAD", "").headers
    acct.conn.delete_container("c")


def test_account_acl_header_line_too_long(owner) -> None:  # noqa: ANN001
    """Swift reads at most max_header_size (8192) bytes per header line: 400 beyond."""
    raw = Raw(owner.token, owner.url)
    acl = {"admin": [c * 1024 for c in "abcdefgh"]}
    r = raw("POST", "", headers={"X-Account-Access-Control": json.dumps(acl, separators=(",", ":"))})
    assert r.status_code == 400
    acl = {"admin": [c * 1024 for c in "abcdefg"]}  # a touch smaller
    r = raw("POST", "", headers={"X-Account-Access-Control": json.dumps(acl, separators=(",", ":"))})
    assert r.status_code == 204
    assert raw("POST", "", headers={"X-Account-Access-Control": ""}).status_code == 204
    assert "X-Account-Access-Control" not in raw("HEAD", "").headers


@pytest.mark.parametrize("form", ["AUTH_<id>", "<id>", "<name>"])
def test_bare_account_grantee(server: LampiServer, owner, other, unique: str, form: str) -> None:  # noqa: ANN001
    """A bare account in a container ACL — ``AUTH_<project_id>``, the project's id or name,
    tempauth's groups of that account's admins (Swift's suite grants account 2 by its
    name) — names the project's operators, not its other users (keystoneauth's suite
    expects a bare name to give a user without an operator role nothing)."""
    grantee = {"AUTH_<id>": f"AUTH_{other.project_id}", "<id>": other.project_id, "<name>": other.project}[form]
    owner.conn.put_container(unique)
    owner.conn.put_object(unique, "o", b"shared")
    owner.conn.post_container(unique, {"X-Container-Read": grantee, "X-Container-Meta-Temp-Url-Key": "k"})
    r = Raw(other.token, owner.url)("GET", f"/{unique}/o")
    assert r.status_code == 200 and r.content == b"shared"
    h = Raw(other.token, owner.url)("HEAD", f"/{unique}").headers
    assert "X-Container-Meta-Temp-Url-Key" not in h  # read access only, no swift_owner
    _, reader_token = _user_of(server, other, "reader")
    assert Raw(reader_token, owner.url)("GET", f"/{unique}/o").status_code == 403


def test_container_sync_keys_stored_and_protected(server: LampiServer, owner, other, unique: str) -> None:  # noqa: ANN001
    owner.conn.put_container(unique, {"X-Container-Sync-Key": "secret",
                                      "X-Container-Sync-To": "https://example.org/v1/AUTH_x/c"})
    h = owner.conn.head_container(unique)
    assert h["x-container-sync-key"] == "secret"
    assert h["x-container-sync-to"] == "https://example.org/v1/AUTH_x/c"
    # hidden from (and not settable by) those who read or write through ACLs
    owner.conn.post_container(unique, {"X-Container-Read": f"{other.project_id}:*",
                                       "X-Container-Write": f"{other.project_id}:*"})
    raw = Raw(other.token, owner.url)
    seen = raw("HEAD", f"/{unique}").headers
    assert "X-Container-Sync-Key" not in seen and "X-Container-Sync-To" not in seen
    assert raw("POST", f"/{unique}", headers={"X-Container-Sync-Key": "mine"}).status_code == 403
    # Swift's validate_sync_to: a bad target is 400 and changes nothing
    raw_owner = Raw(owner.token, owner.url)
    for bad, msg in (("ftp://example.org/c", "Invalid scheme 'ftp'"), ("https://example.org", "Path required"),
                     ("https://example.org/c?x=1", "Params, queries, and fragments not allowed")):
        r = raw_owner("POST", f"/{unique}", headers={"X-Container-Sync-To": bad})
        assert r.status_code == 400 and msg in r.text, (bad, r.text)
    assert owner.conn.head_container(unique)["x-container-sync-to"] == "https://example.org/v1/AUTH_x/c"
    owner.conn.post_container(unique, {"X-Remove-Container-Sync-Key": "x", "X-Container-Sync-To": ""})
    h = owner.conn.head_container(unique)
    assert "x-container-sync-key" not in h and "x-container-sync-to" not in h
