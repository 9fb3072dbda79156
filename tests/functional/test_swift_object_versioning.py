"""Object versioning (Swift's ``object_versioning``: X-Versions-Enabled, ``?versions``,
``?version-id``) with python-swiftclient, the swift CLI and raw HTTP for bad input."""

from __future__ import annotations

import json
import subprocess

import pytest
import requests
from swiftclient import ClientException

from tests.functional.conftest import LampiServer
from tests.functional.swift_helpers import Raw, new_account

MARKER = "application/x-deleted;swift_versions_deleted=1"


def _versions(conn, container: str, limit: int | None = None, **kw) -> list[dict]:  # noqa: ANN001
    """Every version, paged with marker + version_marker as swiftclient's full listing
    does (which drops ``query_string`` on its follow-up requests, so it is done here)."""
    out: list[dict] = []
    marker, vm = None, None
    while True:
        page = conn.get_container(container, query_string="versions", limit=limit, marker=marker,
                                  version_marker=vm, **kw)[1]
        if not page:
            return out
        out += page
        marker = page[-1].get("name", page[-1].get("subdir"))
        vm = page[-1].get("version_id")


def _swift(server: LampiServer, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["swift", *args], env=env, capture_output=True, text=True, timeout=60, check=False)


def test_enable_overwrite_list_read_delete_restore_suspend(server: LampiServer) -> None:
    acct = new_account(server)
    conn, c = acct.conn, "docs"
    conn.put_container(c, headers={"X-Versions-Enabled": "true"})
    assert conn.head_container(c)["x-versions-enabled"] == "True"
    ids = []
    for body in (b"one", b"two-2", b"three-33"):
        resp: dict = {}
        conn.put_object(c, "o.txt", body, content_type="text/plain", response_dict=resp)
        ids.append(resp["headers"]["x-object-version-id"])
    assert len(set(ids)) == 3 and ids == sorted(ids)
    hdrs, body = conn.get_object(c, "o.txt")
    assert body == b"three-33" and hdrs["x-object-version-id"] == ids[2]
    assert hdrs["content-location"].endswith(f"/{c}/o.txt?version-id={ids[2]}")
    # the listing of versions: newest first, the current one is_latest
    vs = _versions(conn, c)
    assert [(v["name"], v["version_id"], v["is_latest"], v["bytes"]) for v in vs] == [
        ("o.txt", ids[2], True, 8), ("o.txt", ids[1], False, 5), ("o.txt", ids[0], False, 3)]
    # every version is readable; the plain listing shows one object; bytes count all versions
    for vid, want in zip(ids, (b"one", b"two-2", b"three-33")):
        hdrs, body = conn.get_object(c, "o.txt", query_string=f"version-id={vid}")
        assert body == want and hdrs["x-object-version-id"] == vid
        assert conn.head_object(c, "o.txt", query_string=f"version-id={vid}")["content-length"] == str(len(want))
    assert [o["name"] for o in conn.get_container(c)[1]] == ["o.txt"]
    ch = conn.head_container(c)
    assert (ch["x-container-object-count"], ch["x-container-bytes-used"]) == ("1", "16")
    assert conn.head_account()["x-account-bytes-used"] == "16"

    # DELETE writes a delete marker: 404 after, the versions stay
    resp = {}
    conn.delete_object(c, "o.txt", response_dict=resp)
    marker = resp["headers"]["x-object-version-id"]
    assert marker > ids[2]
    with pytest.raises(ClientException) as exc:
        conn.get_object(c, "o.txt")
    assert exc.value.http_status == 404 and exc.value.http_response_headers["x-object-version-id"] == "null"
    with pytest.raises(ClientException) as exc:
        conn.get_object(c, "o.txt", query_string=f"version-id={marker}")
    assert exc.value.http_status == 404
    assert exc.value.http_response_headers["x-object-version-id"] == marker
    assert exc.value.http_response_headers["content-type"] == MARKER
    vs = _versions(conn, c)
    assert (vs[0]["version_id"], vs[0]["content_type"], vs[0]["is_latest"], vs[0]["bytes"]) == (marker, MARKER, True, 0)
    assert conn.get_container(c)[1] == []
    assert conn.head_container(c)["x-container-bytes-used"] == "16"

    # restore an old version: PUT ?version-id with an empty body
    resp = {}
    conn.put_object(c, "o.txt", b"", query_string=f"version-id={ids[0]}", response_dict=resp)
    assert resp["status"] == 201 and resp["headers"]["x-object-version-id"] == ids[0]
    hdrs, body = conn.get_object(c, "o.txt")
    assert body == b"one" and hdrs["x-object-version-id"] == ids[0] and hdrs["content-type"] == "text/plain"
    assert [v["is_latest"] for v in _versions(conn, c)] == [False, False, False, True]

    # delete one non-current version: only it goes, its bytes are released
    resp = {}
    conn.delete_object(c, "o.txt", query_string=f"version-id={ids[1]}", response_dict=resp)
    assert resp["headers"]["x-object-current-version-id"] == ids[0]
    assert [v["version_id"] for v in _versions(conn, c)] == [marker, ids[2], ids[0]]
    assert conn.head_container(c)["x-container-bytes-used"] == "11"
    # deleting the current version removes the object too (Swift: link and data)
    conn.delete_object(c, "o.txt", query_string=f"version-id={ids[0]}", response_dict=resp)
    assert resp["headers"]["x-object-current-version-id"] == "null"
    with pytest.raises(ClientException) as exc:
        conn.get_object(c, "o.txt")
    assert exc.value.http_status == 404

    # suspend: new writes are "null" versions, old versions stay readable
    conn.post_container(c, headers={"X-Versions-Enabled": "false"})
    assert conn.head_container(c)["x-versions-enabled"] == "False"
    resp = {}
    conn.put_object(c, "o.txt", b"null-1", response_dict=resp)
    assert "x-object-version-id" not in resp["headers"]
    conn.put_object(c, "o.txt", b"null-22")
    hdrs, body = conn.get_object(c, "o.txt")
    assert body == b"null-22" and hdrs["x-object-version-id"] == "null"
    assert conn.get_object(c, "o.txt", query_string="version-id=null")[1] == b"null-22"
    assert conn.get_object(c, "o.txt", query_string=f"version-id={ids[2]}")[1] == b"three-33"
    vs = _versions(conn, c)
    assert [(v["version_id"], v["is_latest"]) for v in vs] == [("null", True), (marker, False), (ids[2], False)]
    assert conn.head_container(c)["x-container-bytes-used"] == str(7 + 8)
    # re-enabled: overwriting the null object keeps it as a version
    conn.post_container(c, headers={"X-Versions-Enabled": "true"})
    conn.put_object(c, "o.txt", b"four")
    vs = _versions(conn, c)
    assert [v["bytes"] for v in vs] == [4, 7, 0, 8] and vs[0]["is_latest"] and not vs[1]["is_latest"]
    nullkept = vs[1]["version_id"]
    assert conn.get_object(c, "o.txt", query_string=f"version-id={nullkept}")[1] == b"null-22"

    # a versioned container cannot be deleted while versions remain (Swift's 409)
    with pytest.raises(ClientException) as exc:
        conn.delete_container(c)
    assert exc.value.http_status == 409
    for v in _versions(conn, c):
        conn.delete_object(c, "o.txt", query_string=f"version-id={v['version_id']}")
    assert _versions(conn, c) == []
    assert conn.head_account()["x-account-bytes-used"] == "0"
    conn.delete_container(c)


def test_copy_post_and_large_objects_are_versioned(swift_conn, unique: str) -> None:  # noqa: ANN001
    c = unique
    swift_conn.put_container(c, headers={"X-Versions-Enabled": "yes"})
    swift_conn.put_object(c, "src", b"source-data")
    swift_conn.put_object(c, "dst", b"old")
    resp: dict = {}
    swift_conn.copy_object(c, "src", f"/{c}/dst", response_dict=resp)
    assert resp["headers"]["x-object-version-id"]
    swift_conn.put_object(c, "dst", b"", headers={"X-Copy-From": f"/{c}/src"}, response_dict=resp)
    assert swift_conn.get_object(c, "dst")[1] == b"source-data"
    assert [v["bytes"] for v in _versions(swift_conn, c, prefix="dst")] == [11, 11, 3]
    # POST changes the current version's metadata, makes no new version
    swift_conn.post_object(c, "dst", headers={"X-Object-Meta-Color": "blue"})
    vid = swift_conn.head_object(c, "dst")["x-object-version-id"]
    assert len(_versions(swift_conn, c, prefix="dst")) == 3
    assert swift_conn.head_object(c, "dst", query_string=f"version-id={vid}")["x-object-meta-color"] == "blue"
    # an SLO manifest is versioned as its manifest; each version reads the segments
    swift_conn.put_container(c + "_segments")
    seg = []
    for i, data in enumerate((b"a" * 10, b"b" * 10)):
        r = {}
        swift_conn.put_object(c + "_segments", f"s{i}", data, response_dict=r)
        seg.append({"path": f"/{c}_segments/s{i}", "etag": r["headers"]["etag"], "size_bytes": 10})
    swift_conn.put_object(c, "big", json.dumps(seg), query_string="multipart-manifest=put")
    swift_conn.put_object(c, "big", json.dumps(seg[:1]), query_string="multipart-manifest=put")
    old, new = _versions(swift_conn, c, prefix="big")[::-1]
    assert swift_conn.get_object(c, "big")[1] == b"a" * 10
    hdrs, body = swift_conn.get_object(c, "big", query_string=f"version-id={old['version_id']}")
    assert body == b"a" * 10 + b"b" * 10 and hdrs["x-static-large-object"] == "True"


def test_listing_paging_formats_and_cli(server: LampiServer, openrc_env: dict[str, str], swift_conn,  # noqa: ANN001
                                        unique: str, tmp_path) -> None:  # noqa: ANN001
    c = unique
    swift_conn.put_container(c, headers={"X-Versions-Enabled": "true"})
    for name in ("a", "d/x", "d/y"):
        for i in range(2):
            swift_conn.put_object(c, name, f"{name}-{i}".encode())
    # full listing in pages of 2 (marker + version_marker)
    every = _versions(swift_conn, c)
    paged = _versions(swift_conn, c, limit=2)
    assert [(v["name"], v["version_id"]) for v in paged] == [(v["name"], v["version_id"]) for v in every]
    assert len(every) == 6
    assert [v.get("subdir", v.get("name")) for v in _versions(swift_conn, c, delimiter="/")] == ["a", "a", "d/"]
    token, url = swift_conn.get_auth()[1], swift_conn.get_auth()[0]
    raw = Raw(token, url)
    r = raw("GET", f"/{c}?versions")  # JSON whatever is asked, as Swift's object_versioning
    assert r.status_code == 200 and [v["name"] for v in r.json()] == [v["name"] for v in every]
    r = raw("GET", f"/{c}?versions", headers={"Accept": "application/xml, application/json;q=0.5"})
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json; charset=utf-8"
    assert len(r.json()) == 6
    assert raw("GET", f"/{c}?versions&format=xml").status_code == 406  # JSON only, as Swift
    # the swift CLI
    out = _swift(server, openrc_env, "list", "--versions", c)
    assert out.returncode == 0, out.stderr
    assert sum(1 for line in out.stdout.splitlines() if line.strip()) >= 6
    vid = every[-1]["version_id"]  # the older "d/y"
    out = _swift(server, openrc_env, "stat", c, "d/y", "--version-id", vid)
    assert out.returncode == 0 and vid in out.stdout, out.stderr
    dest = tmp_path / "dy"
    out = _swift(server, openrc_env, "download", c, "d/y", "--version-id", vid, "-o", str(dest))
    assert out.returncode == 0, out.stderr
    assert dest.read_bytes() == b"d/y-0"
    out = _swift(server, openrc_env, "delete", c, "d/y", "--version-id", vid)
    assert out.returncode == 0, out.stderr
    assert vid not in [v["version_id"] for v in _versions(swift_conn, c)]
    assert swift_conn.get_object(c, "d/y")[1] == b"d/y-1"


def test_bad_input_is_refused_and_data_stays(swift_conn, unique: str) -> None:  # noqa: ANN001
    c, legacy = unique, unique + "-legacy"
    swift_conn.put_container(c, headers={"X-Versions-Enabled": "true"})
    swift_conn.put_object(c, "o", b"v1")
    swift_conn.put_object(c, "o", b"v2")
    before = _versions(swift_conn, c)
    token, url = swift_conn.get_auth()[1], swift_conn.get_auth()[0]
    raw = Raw(token, url)

    def intact() -> None:
        assert swift_conn.get_object(c, "o")[1] == b"v2"
        assert _versions(swift_conn, c) == before

    for q in ("version-id=abc", "version-id=-1", "version-id=1e12"):
        for method in ("GET", "HEAD", "DELETE"):
            assert raw(method, f"/{c}/o?{q}").status_code == 400, (method, q)
        intact()
    r = raw("POST", f"/{c}/o?version-id={before[1]['version_id']}", headers={"X-Object-Meta-A": "b"})
    assert r.status_code == 400 and "not allowed" in r.text
    r = raw("PUT", f"/{c}/o?version-id={before[1]['version_id']}", data=b"body")
    assert r.status_code == 400 and "zero byte body" in r.text
    intact()
    # an unknown version: 404
    for method in ("GET", "HEAD", "DELETE"):
        assert raw(method, f"/{c}/o?version-id=1000000000.00000").status_code == 404
    r = raw("PUT", f"/{c}/o?version-id=1000000000.00000", data=b"")
    assert r.status_code == 404 and "does not exist" in r.text
    intact()
    # listing parameters
    assert raw("GET", f"/{c}?versions&version_marker=null").status_code == 400
    assert raw("GET", f"/{c}?versions&marker=o&version_marker=zzz").status_code == 400
    assert raw("GET", f"/{c}?versions&delimiter=1").status_code == 400
    # legacy and new mode exclude each other
    swift_conn.put_container(legacy + "-arc")
    swift_conn.put_container(legacy, headers={"X-Versions-Location": legacy + "-arc"})
    r = raw("POST", f"/{legacy}", headers={"X-Versions-Enabled": "true"})
    assert r.status_code == 400 and "legacy" in r.text
    assert "x-versions-enabled" not in swift_conn.head_container(legacy)
    r = raw("POST", f"/{c}", headers={"X-Versions-Location": legacy + "-arc"})
    assert r.status_code == 400
    hc = swift_conn.head_container(c)
    assert hc["x-versions-enabled"] == "True" and "x-versions-location" not in hc
    intact()
    # version-aware requests need a versioned container
    swift_conn.put_object(legacy + "-arc", "p", b"plain")
    assert raw("GET", f"/{legacy}-arc/p?version-id=1700000000.00000").status_code == 400
    assert raw("GET", f"/{legacy}-arc/p?version-id=null").status_code == 200


def test_info_advertises_object_versioning(server: LampiServer) -> None:
    info = requests.get(server.url + "/info", timeout=10).json()
    assert info["object_versioning"] == {}


def test_version_id_needs_more_than_a_container_acl(server: LampiServer) -> None:
    """Swift serves ``?version-id=<id>`` from the hidden versions container, which has no
    ACLs: a grantee of the container's read and write ACLs reads and writes the current
    object but gets 403 for a specific version (GET, HEAD, DELETE, a COPY of it), while
    ``version-id=null``, a restore (a PUT, written in the container itself) and an
    account ACL grantee are let through, as in Swift's test_container_acls."""
    owner, other = new_account(server), new_account(server)
    c = "acl-versions"
    owner.conn.put_container(c, headers={"X-Versions-Enabled": "true"})
    resp: dict = {}
    owner.conn.put_object(c, "o", b"one", response_dict=resp)
    v1 = resp["headers"]["x-object-version-id"]
    owner.conn.put_object(c, "o", b"two")
    grantee = f"{other.project}:{other.user}"
    owner.conn.post_container(c, {"X-Container-Read": grantee, "X-Container-Write": grantee})
    raw = Raw(other.token, owner.url)
    assert raw("GET", f"/{c}/o").content == b"two"
    for method in ("GET", "HEAD", "DELETE"):
        assert raw(method, f"/{c}/o?version-id={v1}").status_code == 403, method
    r = raw("COPY", f"/{c}/o?version-id={v1}", headers={"Destination": f"{c}/copy"})
    assert r.status_code == 403
    assert raw("GET", f"/{c}/o?version-id=null").status_code == 404  # the current one has a real id
    assert owner.conn.get_object(c, "o", query_string=f"version-id={v1}")[1] == b"one"  # still there
    r = raw("PUT", f"/{c}/o?version-id={v1}", data=b"")  # a restore writes the container itself
    assert r.status_code == 201
    assert owner.conn.get_object(c, "o")[1] == b"one"
    # an account ACL reaches every container of the account, the versions too
    acl = json.dumps({"read-only": [grantee]})
    owner.conn.post_account({"X-Account-Access-Control": acl})
    assert raw("GET", f"/{c}/o?version-id={v1}").content == b"one"
    assert raw("DELETE", f"/{c}/o?version-id={v1}").status_code == 403  # read-only
    owner.conn.post_account({"X-Account-Access-Control": json.dumps({"read-write": [grantee]})})
    assert raw("DELETE", f"/{c}/o?version-id={v1}").status_code == 204


def test_plain_listing_names_current_versions(swift_conn, unique: str) -> None:  # noqa: ANN001
    """A plain JSON listing of a versioned container lists an object whose current
    version has an id as Swift's object_versioning does: ``version_symlink`` and a
    ``symlink_path`` naming that version; an object from before versioning (a null
    version) without them; the SLO fields beside them (Swift's test_slo_manifest_version)."""
    c = unique
    swift_conn.put_container(c)
    swift_conn.put_object(c, "old", b"from before")
    swift_conn.put_container(c, headers={"X-Versions-Enabled": "true"})
    swift_conn.put_object(c, "a b", b"one")
    resp: dict = {}
    swift_conn.put_object(c, "a b", b"two", response_dict=resp)
    vid = resp["headers"]["x-object-version-id"]
    swift_conn.put_object(c, "seg", b"x" * 10)
    manifest = json.dumps([{"path": f"/{c}/seg"}])
    swift_conn.put_object(c, "slo", manifest, query_string="multipart-manifest=put", response_dict=resp)
    slo_vid = resp["headers"]["x-object-version-id"]
    listing = {o["name"]: o for o in swift_conn.get_container(c)[1]}
    account = swift_conn.get_auth()[0].rstrip("/").rsplit("/", 1)[1]
    ab = listing["a b"]
    assert ab["version_symlink"] is True and ab["bytes"] == 3
    assert ab["symlink_path"] == f"/v1/{account}/{c}/a%20b?version-id={vid}"
    assert "symlink_etag" not in ab and "symlink_bytes" not in ab
    assert "version_symlink" not in listing["old"] and "symlink_path" not in listing["old"]
    slo = listing["slo"]
    assert slo["version_symlink"] is True and slo["symlink_path"].endswith(f"/{c}/slo?version-id={slo_vid}")
    assert slo["bytes"] == 10 and slo["slo_etag"] == swift_conn.head_object(c, "slo")["etag"]
    # the listing of versions is as before
    assert all("version_symlink" not in v for v in _versions(swift_conn, c))
