"""SLO segments the manifest's writer could not read directly (issue 9, item 4).

A symlink stored as a segment was recorded as itself, a zero-byte object: the large object
read as 0 bytes of the link, whatever the link pointed to — into another project, too.
Swift's slo checks each segment with the writer's authority and reads it through the
symlink middleware. lampi now follows a link when the manifest is stored (its target is
what gets recorded), refuses a link into another account and any segment the writer may
not read (403 in the "Errors:" body, as Swift's HEAD of it would answer), and refuses to
serve a link segment of a manifest stored before (403, never 0 bytes).
"""

from __future__ import annotations

import json

import pytest
import requests
import swiftclient

from tests.functional.conftest import LampiServer
from tests.functional.swift_helpers import new_account


def put_slo(conn: swiftclient.Connection, container: str, name: str, paths: list[str]) -> None:
    conn.put_object(container, name, contents=json.dumps([{"path": p} for p in paths]),
                    query_string="multipart-manifest=put")


def refused(exc: swiftclient.ClientException) -> dict[str, str]:
    assert exc.http_status == 400, exc
    lines = exc.http_response_content.decode().splitlines()
    assert lines[0] == "Errors:"
    return dict(line.rsplit(", ", 1) for line in lines[1:])


@pytest.fixture(scope="module")
def accounts(server: LampiServer):  # noqa: ANN201
    return new_account(server), new_account(server), new_account(server)


def test_symlink_into_another_project_is_refused(accounts, unique: str) -> None:  # noqa: ANN001
    a, b, _ = accounts
    b.conn.put_container(unique + "-b")
    b.conn.put_object(unique + "-b", "secret", b"B's private data")
    a.conn.put_container(unique)
    a.conn.put_object(unique, "link", b"", headers={"X-Symlink-Target": f"{unique}-b/secret",
                                                    "X-Symlink-Target-Account": f"AUTH_{b.project_id}"})
    with pytest.raises(swiftclient.ClientException) as exc:  # a direct read of the link is a 403 too
        a.conn.get_object(unique, "link")
    assert exc.value.http_status == 403
    with pytest.raises(swiftclient.ClientException) as exc:
        put_slo(a.conn, unique, "large", [f"/{unique}/link"])
    assert refused(exc.value) == {f"/{unique}/link": "403 Forbidden"}
    with pytest.raises(swiftclient.ClientException) as exc:
        a.conn.head_object(unique, "large")
    assert exc.value.http_status == 404
    # readable by A (a read ACL): still refused, segments live in the manifest's account
    b.conn.post_container(unique + "-b", {"X-Container-Read": f"{a.project_id}:*"})
    assert a.conn.get_object(unique, "link")[1] == b"B's private data"
    with pytest.raises(swiftclient.ClientException) as exc:
        put_slo(a.conn, unique, "large", [f"/{unique}/link"])
    assert refused(exc.value) == {f"/{unique}/link": "403 Forbidden"}


def test_symlink_in_the_same_account_reads_its_target(accounts, unique: str) -> None:  # noqa: ANN001
    a, _, _ = accounts
    a.conn.put_container(unique)
    a.conn.put_object(unique, "data", b"the target's bytes")
    a.conn.put_object(unique, "link", b"", headers={"X-Symlink-Target": f"{unique}/data"})
    a.conn.put_object(unique, "tail", b"!")
    put_slo(a.conn, unique, "large", [f"/{unique}/link", f"/{unique}/tail"])
    headers, body = a.conn.get_object(unique, "large")
    assert body == b"the target's bytes!"
    assert headers["content-length"] == str(len(b"the target's bytes!"))
    manifest = json.loads(a.conn.get_object(unique, "large", query_string="multipart-manifest=get")[1])
    assert [s["name"] for s in manifest] == [f"/{unique}/data", f"/{unique}/tail"]  # the target is recorded


def test_dangling_symlink_segment_is_refused(accounts, unique: str) -> None:  # noqa: ANN001
    a, _, _ = accounts
    a.conn.put_container(unique)
    a.conn.put_object(unique, "link", b"", headers={"X-Symlink-Target": f"{unique}/missing"})
    with pytest.raises(swiftclient.ClientException) as exc:
        put_slo(a.conn, unique, "large", [f"/{unique}/link"])
    assert refused(exc.value) == {f"/{unique}/link": "404 Not Found"}


def test_segment_the_writer_cannot_read_is_refused(accounts, unique: str) -> None:  # noqa: ANN001
    """C may write into A's drop box (a write ACL) but not read A's segments container."""
    a, _, c = accounts
    a.conn.put_container(unique + "-segs")
    a.conn.put_object(unique + "-segs", "s1", b"A's segment")
    a.conn.put_container(unique + "-drop", headers={"X-Container-Write": f"{c.project_id}:*"})
    drop = f"{a.url}/{unique}-drop"
    manifest = json.dumps([{"path": f"/{unique}-segs/s1"}])
    with pytest.raises(swiftclient.ClientException) as exc:
        swiftclient.put_object(drop, c.token, None, "large", contents=manifest, query_string="multipart-manifest=put")
    assert refused(exc.value) == {f"/{unique}-segs/s1": "403 Forbidden"}
    assert [o["name"] for o in a.conn.get_container(unique + "-drop")[1]] == []
    # once C may read the segments, the same manifest is stored and reads whole
    a.conn.post_container(unique + "-segs", {"X-Container-Read": f"{c.project_id}:*"})
    swiftclient.put_object(drop, c.token, None, "large", contents=manifest, query_string="multipart-manifest=put")
    assert a.conn.get_object(unique + "-drop", "large")[1] == b"A's segment"


def test_referrer_acl_on_segment_container(server: LampiServer, unique: str) -> None:
    """A request that a ``.r:`` referrer ACL lets read a manifest also needs it on the
    segments' container, as in Swift's test_slo_referer_on_segment_container: a user of
    the account with a role of no storage rights, sending a matching Referer, gets 403
    for the manifest, then 409 (the manifest readable, its segments not: Swift's answer
    to a segment sub-request refused), then the data; anonymous callers alike (401 first)."""
    owner = new_account(server)
    role = "r" + unique[-10:]
    server.cli("role", "create", role)
    user = "u" + unique[-10:]
    server.cli("user", "create", user, "--password", "pw", "--project", owner.project, "--role", role)
    other = swiftclient.Connection(
        authurl=server.auth_url, user=user, key="pw", auth_version="3", retries=0,
        os_options={"user_domain_name": "Default", "project_domain_name": "Default", "project_name": owner.project})
    segs, c = unique + "-segs", unique
    owner.conn.put_container(segs)
    owner.conn.put_container(c)
    owner.conn.put_object(segs, "1", b"a" * 1024 * 1024)
    owner.conn.put_object(segs, "2", b"b")
    put_slo(owner.conn, c, "slo", [f"/{segs}/1", f"/{segs}/2"])
    url = f"{owner.url}/{c}/slo"
    referer = {"Referer": "http://blah.example.com"}
    who = (("user", {"X-Auth-Token": other.get_auth()[1]}, 403), ("anonymous", {}, 401))

    def status(headers: dict[str, str]) -> tuple[int, bytes]:
        r = requests.get(url, headers={**referer, **headers}, timeout=30)
        return r.status_code, r.content

    for name, headers, denied in who:
        assert status(headers)[0] == denied, name
    acl = {"X-Container-Read": ".r:*.example.com,.rlistings"}
    owner.conn.post_container(c, acl)
    for name, headers, _ in who:
        code, body = status(headers)
        assert code == 409 and b"a" * 100 not in body, name
    owner.conn.post_container(segs, acl)
    for name, headers, _ in who:
        code, body = status(headers)
        assert code == 200 and body == b"a" * 1024 * 1024 + b"b", name
    # another Referer is still refused the manifest
    r = requests.get(url, headers={"Referer": "http://example.org", "X-Auth-Token": other.get_auth()[1]},
                     timeout=30)
    assert r.status_code == 403
