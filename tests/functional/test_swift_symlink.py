"""Symlinks as Swift's symlink middleware: X-Symlink-Target(-Account/-Etag),
?symlink=get, following on GET/HEAD, dangling links, loops, bad input."""

from __future__ import annotations

import hashlib

import pytest
import requests
from swiftclient import ClientException

from tests.functional.conftest import LampiServer


def _err(fn, *a, **kw) -> ClientException:  # noqa: ANN001
    with pytest.raises(ClientException) as exc:
        fn(*a, **kw)
    return exc.value


def test_symlink_follow_and_get_link(swift_conn, unique: str) -> None:  # noqa: ANN001
    tc = unique + "-t"
    swift_conn.put_container(unique)
    swift_conn.put_container(tc)
    swift_conn.put_object(tc, "target.txt", b"target body", content_type="text/plain",
                          headers={"X-Object-Meta-Color": "blue"})
    swift_conn.put_object(unique, "link", b"", headers={"X-Symlink-Target": f"{tc}/target.txt"})
    hdrs, body = swift_conn.get_object(unique, "link")
    assert body == b"target body"
    assert hdrs["content-type"] == "text/plain" and hdrs["x-object-meta-color"] == "blue"
    assert hdrs["content-location"].endswith(f"/{tc}/target.txt")
    assert hdrs["content-location"].startswith("/v1/AUTH_")
    assert swift_conn.head_object(unique, "link")["content-length"] == "11"
    # ranged GET through the link
    assert swift_conn.get_object(unique, "link", headers={"Range": "bytes=0-5"})[1] == b"target"
    # ?symlink=get: the link itself
    hdrs, body = swift_conn.get_object(unique, "link", query_string="symlink=get")
    assert body == b"" and hdrs["x-symlink-target"] == f"{tc}/target.txt"
    assert hdrs["content-type"] == "application/symlink"
    assert hdrs["etag"] == hashlib.md5(b"").hexdigest()
    # a POST keeps the link a link
    swift_conn.post_object(unique, "link", headers={"X-Object-Meta-Note": "n"})
    assert swift_conn.get_object(unique, "link")[1] == b"target body"
    # overwriting the target is seen through the link; deleting the link leaves the target
    swift_conn.put_object(tc, "target.txt", b"new")
    assert swift_conn.get_object(unique, "link")[1] == b"new"
    swift_conn.delete_object(unique, "link")
    assert swift_conn.get_object(tc, "target.txt")[1] == b"new"


def test_dangling_link_and_loops(swift_conn, unique: str) -> None:  # noqa: ANN001
    swift_conn.put_container(unique)
    swift_conn.put_object(unique, "dangling", b"", headers={"X-Symlink-Target": f"{unique}/nothing"})
    e = _err(swift_conn.get_object, unique, "dangling")
    assert e.http_status == 404
    assert e.http_response_headers["Content-Location"].endswith(f"/{unique}/nothing")
    assert swift_conn.head_object(unique, "dangling", query_string="symlink=get")["x-symlink-target"]
    # a chain of two links is followed; three is one too many (symloop_max 2)
    swift_conn.put_object(unique, "real", b"real")
    swift_conn.put_object(unique, "l1", b"", headers={"X-Symlink-Target": f"{unique}/real"})
    swift_conn.put_object(unique, "l2", b"", headers={"X-Symlink-Target": f"{unique}/l1"})
    assert swift_conn.get_object(unique, "l2")[1] == b"real"
    swift_conn.put_object(unique, "l3", b"", headers={"X-Symlink-Target": f"{unique}/l2"})
    e = _err(swift_conn.get_object, unique, "l3")
    assert e.http_status == 409
    assert e.http_response_content == b"Too many levels of symbolic links, maximum allowed is 2"
    swift_conn.put_object(unique, "a", b"", headers={"X-Symlink-Target": f"{unique}/b"})
    swift_conn.put_object(unique, "b", b"", headers={"X-Symlink-Target": f"{unique}/a"})
    assert _err(swift_conn.get_object, unique, "a").http_status == 409


def test_static_link_etag(swift_conn, unique: str) -> None:  # noqa: ANN001
    swift_conn.put_container(unique)
    etag = swift_conn.put_object(unique, "t", b"static")
    swift_conn.put_object(unique, "s", b"", headers={"X-Symlink-Target": f"{unique}/t",
                                                     "X-Symlink-Target-Etag": etag})
    h = swift_conn.head_object(unique, "s", query_string="symlink=get")
    assert h["x-symlink-target-etag"] == etag and h["x-symlink-target-bytes"] == "6"
    assert swift_conn.get_object(unique, "s")[1] == b"static"
    e = _err(swift_conn.put_object, unique, "s2", b"", headers={"X-Symlink-Target": f"{unique}/t",
                                                                 "X-Symlink-Target-Etag": "0" * 32})
    assert e.http_status == 409
    assert e.http_response_content.decode() == (
        f"Object Etag '{etag}' does not match X-Symlink-Target-Etag header '{'0' * 32}'")
    e = _err(swift_conn.put_object, unique, "s3", b"", headers={"X-Symlink-Target": f"{unique}/none",
                                                                 "X-Symlink-Target-Etag": etag})
    assert e.http_status == 409 and e.http_response_content == b"X-Symlink-Target does not exist"
    # the target changes: the static link now answers 409
    swift_conn.put_object(unique, "t", b"changed")
    assert _err(swift_conn.get_object, unique, "s").http_status == 409
    assert [o["name"] for o in swift_conn.get_container(unique)[1]] == ["s", "t"]


def test_bad_symlink_requests(token_and_url, swift_conn, unique: str) -> None:  # noqa: ANN001
    token, url = token_and_url
    swift_conn.put_container(unique)
    h = {"X-Auth-Token": token}
    r = requests.put(f"{url}/{unique}/l", headers={**h, "X-Symlink-Target": "no-slash"})
    assert r.status_code == 412
    assert r.text == "X-Symlink-Target header must be of the form <container name>/<object name>"
    r = requests.put(f"{url}/{unique}/l", headers={**h, "X-Symlink-Target": f"{unique}/t"}, data=b"body")
    assert r.status_code == 400 and r.text == "Symlink requests require a zero byte body"
    r = requests.put(f"{url}/{unique}/l", headers={**h, "X-Symlink-Target": f"{unique}/l"})
    assert r.status_code == 400 and r.text == "Symlink cannot target itself"
    assert swift_conn.get_container(unique)[1] == []


def test_cross_account_link_needs_access(server: LampiServer, swift_conn, unique: str) -> None:  # noqa: ANN001
    from tests.functional.swift_helpers import new_account

    other = new_account(server)
    swift_conn.put_container(unique)
    other.conn.put_container(unique + "-mine")
    # other's link to the admin's object: the admin (cloud admin) can follow a link
    # in other's account to its own object; other cannot read admin's object through it
    swift_conn.put_object(unique, "mine", b"admin data")
    admin_acct = swift_conn.get_auth()[0].rsplit("/", 1)[1]
    other.conn.put_object(unique + "-mine", "link", b"", headers={"X-Symlink-Target": f"{unique}/mine",
                                                                  "X-Symlink-Target-Account": admin_acct})
    e = _err(other.conn.get_object, unique + "-mine", "link")
    assert e.http_status == 403
    # refused, the answer still says where the link points (Swift's Content-Location)
    assert e.http_response_headers["Content-Location"] == f"/v1/{admin_acct}/{unique}/mine"
    h = other.conn.head_object(unique + "-mine", "link", query_string="symlink=get")
    assert h["x-symlink-target-account"] == admin_acct


def test_static_link_to_static_link(swift_conn, unique: str) -> None:  # noqa: ANN001
    """A static link may target another static link with the same target ETag (Swift
    follows static links when it validates, not plain ones)."""
    swift_conn.put_container(unique)
    etag = hashlib.md5(b"the target").hexdigest()
    swift_conn.put_object(unique, "t", b"the target")
    swift_conn.put_object(unique, "a", b"", headers={"X-Symlink-Target": f"{unique}/t", "X-Symlink-Target-Etag": etag})
    swift_conn.put_object(unique, "b", b"", headers={"X-Symlink-Target": f"{unique}/a", "X-Symlink-Target-Etag": etag})
    hdrs, body = swift_conn.get_object(unique, "b")
    assert body == b"the target" and hdrs["content-location"].endswith(f"/{unique}/t")
    assert swift_conn.head_object(unique, "b")["etag"] == etag
    e = _err(swift_conn.put_object, unique, "c", b"", headers={"X-Symlink-Target": f"{unique}/a",
                                                               "X-Symlink-Target-Etag": "0" * 32})
    assert e.http_status == 409
    # a plain link is not followed: its own (empty) ETag is what a static link must match
    swift_conn.put_object(unique, "plain", b"", headers={"X-Symlink-Target": f"{unique}/t"})
    e = _err(swift_conn.put_object, unique, "d", b"", headers={"X-Symlink-Target": f"{unique}/plain",
                                                               "X-Symlink-Target-Etag": etag})
    assert e.http_status == 409


def test_copy_link_itself_with_target_account(server: LampiServer, swift_conn, unique: str) -> None:  # noqa: ANN001
    """COPY of a link with ?symlink=get and X-Symlink-Target-Account: the copy points
    into that account (the copy's PUT carries the header, as in Swift)."""
    from tests.functional.swift_helpers import new_account

    other = new_account(server)
    swift_conn.put_container(unique, headers={"X-Container-Read": f"{other.project_id}:*"})
    swift_conn.put_object(unique, "t", b"admin's target")
    swift_conn.put_object(unique, "link", b"", headers={"X-Symlink-Target": f"{unique}/t"})
    admin_acct = swift_conn.get_auth()[0].rsplit("/", 1)[1]
    other.conn.put_container(unique + "-o")
    other.conn.put_object(unique + "-o", "copy", b"", query_string="symlink=get",
                          headers={"X-Copy-From": f"{unique}/link", "X-Copy-From-Account": admin_acct,
                                   "X-Symlink-Target-Account": admin_acct})
    h = other.conn.head_object(unique + "-o", "copy", query_string="symlink=get")
    assert h["x-symlink-target-account"] == admin_acct and h["x-symlink-target"] == f"{unique}/t"
    assert other.conn.get_object(unique + "-o", "copy")[1] == b"admin's target"


def test_info_advertises_symlink(server: LampiServer) -> None:
    assert requests.get(f"{server.url}/info").json()["symlink"] == {"symloop_max": 2}
