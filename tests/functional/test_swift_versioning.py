"""Legacy versioned writes (X-Versions-Location stack mode, X-History-Location history
mode) with python-swiftclient and the swift CLI, as Swift's versioned_writes behaves."""

from __future__ import annotations

import subprocess

import pytest
import requests
from swiftclient import ClientException

from tests.functional.conftest import LampiServer


def _archived(conn, archive: str, name: str) -> list[dict]:  # noqa: ANN001
    prefix = "%03x%s/" % (len(name.encode()), name)
    return conn.get_container(archive, prefix=prefix)[1]


def test_stack_mode_overwrite_and_restore(swift_conn, unique: str) -> None:  # noqa: ANN001
    cur, arc = unique, unique + "-versions"
    swift_conn.put_container(arc)
    swift_conn.put_container(cur, headers={"X-Versions-Location": arc})
    assert swift_conn.head_container(cur)["x-versions-location"] == arc
    swift_conn.put_object(cur, "doc.txt", b"v1", content_type="text/plain", headers={"X-Object-Meta-Rev": "1"})
    swift_conn.put_object(cur, "doc.txt", b"v2-longer")
    swift_conn.put_object(cur, "doc.txt", b"v3")
    assert swift_conn.get_object(cur, "doc.txt")[1] == b"v3"
    versions = _archived(swift_conn, arc, "doc.txt")
    assert len(versions) == 2
    # <len(name) as 3 hex digits><name>/<X-Timestamp of the archived version>
    assert all(v["name"].startswith("007doc.txt/") for v in versions)
    ts = versions[0]["name"].split("/", 1)[1]
    assert len(ts) == 16 and ts[10] == "."
    hdrs, body = swift_conn.get_object(arc, versions[0]["name"])
    assert body == b"v1" and hdrs["x-object-meta-rev"] == "1" and hdrs["content-type"] == "text/plain"
    # DELETE pops the newest archived version back
    swift_conn.delete_object(cur, "doc.txt")
    assert swift_conn.get_object(cur, "doc.txt")[1] == b"v2-longer"
    assert len(_archived(swift_conn, arc, "doc.txt")) == 1
    swift_conn.delete_object(cur, "doc.txt")
    hdrs, body = swift_conn.get_object(cur, "doc.txt")
    assert body == b"v1" and hdrs["x-object-meta-rev"] == "1"
    assert _archived(swift_conn, arc, "doc.txt") == []
    # no versions left: a plain delete, then 404
    swift_conn.delete_object(cur, "doc.txt")
    with pytest.raises(ClientException) as exc:
        swift_conn.get_object(cur, "doc.txt")
    assert exc.value.http_status == 404
    with pytest.raises(ClientException) as exc:
        swift_conn.delete_object(cur, "doc.txt")
    assert exc.value.http_status == 404
    # the archive's counters follow
    assert swift_conn.head_container(arc)["x-container-object-count"] == "0"


def test_history_mode_archives_and_writes_delete_marker(swift_conn, unique: str) -> None:  # noqa: ANN001
    cur, arc = unique, unique + "-history"
    swift_conn.put_container(arc)
    swift_conn.put_container(cur, headers={"X-History-Location": arc})
    h = swift_conn.head_container(cur)
    assert h["x-history-location"] == arc and "x-versions-location" not in h
    swift_conn.put_object(cur, "o", b"one")
    swift_conn.put_object(cur, "o", b"two")
    swift_conn.delete_object(cur, "o")
    with pytest.raises(ClientException) as exc:
        swift_conn.get_object(cur, "o")
    assert exc.value.http_status == 404  # nothing restored in history mode
    versions = _archived(swift_conn, arc, "o")
    assert [v["content_type"] for v in versions] == [
        "application/octet-stream", "application/octet-stream",
        "application/x-deleted;swift_versions_deleted=1"]
    assert [swift_conn.get_object(arc, v["name"])[1] for v in versions[:2]] == [b"one", b"two"]
    assert versions[2]["bytes"] == 0


def test_copy_archives_the_destination(swift_conn, unique: str) -> None:  # noqa: ANN001
    cur, arc = unique, unique + "-v"
    swift_conn.put_container(arc)
    swift_conn.put_container(cur, headers={"X-Versions-Location": arc})
    swift_conn.put_object(cur, "src", b"source")
    swift_conn.put_object(cur, "dst", b"old")
    swift_conn.copy_object(cur, "src", f"/{cur}/dst")
    assert swift_conn.get_object(cur, "dst")[1] == b"source"
    assert [swift_conn.get_object(arc, v["name"])[1] for v in _archived(swift_conn, arc, "dst")] == [b"old"]
    swift_conn.put_object(cur, "dst2", b"old2")
    swift_conn.put_object(cur, "dst2", None, headers={"X-Copy-From": f"/{cur}/src"})
    assert [swift_conn.get_object(arc, v["name"])[1] for v in _archived(swift_conn, arc, "dst2")] == [b"old2"]


def test_missing_archive_container_is_412_and_data_intact(swift_conn, unique: str) -> None:  # noqa: ANN001
    swift_conn.put_container(unique, headers={"X-Versions-Location": unique + "-nope"})
    swift_conn.put_object(unique, "o", b"first")  # a new object needs no archive
    with pytest.raises(ClientException) as exc:
        swift_conn.put_object(unique, "o", b"second")
    assert exc.value.http_status == 412
    assert swift_conn.get_object(unique, "o")[1] == b"first"


def test_archive_container_of_another_project_is_412(swift_conn, server: LampiServer, unique: str) -> None:  # noqa: ANN001
    from tests.functional.swift_helpers import new_account

    other = new_account(server)
    other.conn.put_container(unique + "-theirs")
    swift_conn.put_container(unique, headers={"X-Versions-Location": unique + "-theirs"})
    swift_conn.put_object(unique, "o", b"first")
    with pytest.raises(ClientException) as exc:
        swift_conn.put_object(unique, "o", b"second")
    assert exc.value.http_status == 412
    assert swift_conn.get_object(unique, "o")[1] == b"first"
    assert other.conn.get_container(unique + "-theirs")[1] == []


def test_bad_versions_location_headers(swift_conn, token_and_url, unique: str) -> None:  # noqa: ANN001
    token, url = token_and_url
    r = requests.put(f"{url}/{unique}", headers={"X-Auth-Token": token, "X-Versions-Location": "a/b"})
    assert r.status_code == 412 and r.text == "Container name cannot contain slashes"
    r = requests.put(f"{url}/{unique}", headers={"X-Auth-Token": token, "X-Versions-Location": "a",
                                                 "X-History-Location": "b"})
    assert r.status_code == 400
    assert r.text == "Only one of X-Versions-Location or X-History-Location may be specified"
    with pytest.raises(ClientException):
        swift_conn.head_container(unique)  # neither request created it


def test_switch_mode_and_remove(swift_conn, unique: str) -> None:  # noqa: ANN001
    arch = unique + "-arch"
    swift_conn.put_container(unique, headers={"X-Versions-Location": arch})
    swift_conn.post_container(unique, headers={"X-History-Location": arch + "2"})
    h = swift_conn.head_container(unique)
    assert h.get("x-history-location") == arch + "2" and "x-versions-location" not in h
    swift_conn.post_container(unique, headers={"X-Remove-History-Location": "x"})
    h = swift_conn.head_container(unique)
    assert "x-history-location" not in h and "x-versions-location" not in h
    swift_conn.post_container(unique, headers={"X-Versions-Location": arch})
    assert swift_conn.head_container(unique)["x-versions-location"] == arch
    swift_conn.post_container(unique, headers={"X-Versions-Location": ""})
    assert "x-versions-location" not in swift_conn.head_container(unique)
    # versioning off: overwrites are not archived
    swift_conn.put_container(arch)
    swift_conn.put_object(unique, "o", b"1")
    swift_conn.put_object(unique, "o", b"2")
    assert _archived(swift_conn, arch, "o") == []


def test_swift_cli_versioned_overwrite_and_restore(openrc_env, tmp_path, unique: str) -> None:  # noqa: ANN001
    from tests.functional.test_swift_cli import swift

    arc = unique + "-versions"
    swift(openrc_env, "post", arc)
    swift(openrc_env, "post", unique, "-H", f"X-Versions-Location: {arc}")
    f = tmp_path / "data.txt"
    f.write_text("version one")
    swift(openrc_env, "upload", unique, "data.txt", cwd=tmp_path)
    f.write_text("version two")
    swift(openrc_env, "upload", unique, "data.txt", cwd=tmp_path)
    listing = swift(openrc_env, "list", arc).stdout.split()
    assert len(listing) == 1 and listing[0].startswith("008data.txt/")
    swift(openrc_env, "delete", unique, "data.txt")
    out = subprocess.run(["swift", "download", unique, "data.txt", "-o", "-"], env=openrc_env,
                         capture_output=True, text=True, timeout=60)
    assert out.stdout == "version one"
    assert swift(openrc_env, "list", arc).stdout.split() == []


def test_info_advertises_versioned_writes(server: LampiServer) -> None:
    info = requests.get(f"{server.url}/info").json()
    assert info["versioned_writes"] == {"allowed_flags": ["x-versions-location", "x-history-location"]}
    assert info["object_versioning"] == {}  # the newer API: test_swift_object_versioning.py
